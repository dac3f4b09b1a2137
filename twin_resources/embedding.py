"""The embedding model behind chunking and search: its tokenizer, its token limit and its vectors.

Two backends run the same weights: fastembed (ONNX Runtime, fp32 or int8) and sentence-transformers
(PyTorch, fp32 or bf16). `auto` (backend and precision both) picks the fastest that keeps the embeddings,
by measuring each on this machine once (`embedding_calibration`); with only one of them set, the other
follows a rule: PyTorch bf16 where the hardware computes in bf16 natively, else fastembed fp32.
"""

import os
import sys
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import dagster as dg
import numpy as np
from pydantic import Field, PrivateAttr
from tokenizers import Tokenizer

from twin_resources.embedding_calibration import Calibration, load_or_calibrate
from twin_resources.embedding_models import ModelFiles, onnx_export, resolve_model
from twin_resources.settings import quiet_transformers, twin_home

BACKENDS = ("auto", "fastembed", "sentence-transformers")
PRECISIONS = ("auto", "fp32", "int8", "bf16")


def native_bf16() -> bool:
    """True where bf16 matrix products run in hardware (then they are ~3x faster than fp32 here)."""
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except ImportError:
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


class Embedder(dg.ConfigurableResource):
    """Embeds text with one model; everything that must agree with the model (tokens, limit) comes from here."""

    model: str = Field(default="sentence-transformers/all-MiniLM-L6-v2",
                       description="hub id or local directory of a sentence-transformers model")
    backend: str = Field(default="auto", description="auto, fastembed or sentence-transformers")
    precision: str = Field(default="auto", description="auto, fp32, int8 (fastembed) or bf16 (sentence-transformers)")
    batch_size: int = Field(default=16, description="texts per forward pass (sorted by length first)")
    threads: int = Field(default=0, description="CPU threads for the model; 0 uses every core")
    home: str = Field(default_factory=lambda: str(twin_home()), description="where exported models are cached")

    _runner = PrivateAttr(default=None)

    @cached_property
    def files(self) -> ModelFiles:
        return resolve_model(self.model)

    @property
    def resolved_backend(self) -> str:
        if self.backend not in BACKENDS:
            raise ValueError(f"embedding backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"embedding precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.backend == "auto" and self.precision == "auto":
            return self.calibration.backend
        if self.backend != "auto":
            return self.backend
        return "sentence-transformers" if self.precision == "bf16" else "fastembed"

    @property
    def resolved_precision(self) -> str:
        if self.backend == "auto" and self.precision == "auto":
            return self.calibration.precision
        if self.precision != "auto":
            return self.precision
        return "bf16" if self.resolved_backend == "sentence-transformers" and native_bf16() else "fp32"

    @cached_property
    def calibration(self) -> Calibration:
        """This machine's measured choice for the model (see `embedding_calibration`)."""
        def make_embedder(backend: str, precision: str):
            return Embedder(model=self.model, backend=backend, precision=precision, batch_size=self.batch_size,
                            threads=self.threads, home=self.home).embed

        rule = ("sentence-transformers", "bf16") if native_bf16() else ("fastembed", "fp32")
        return load_or_calibrate(self.files, make_embedder, Calibration(*rule, "by rule: no texts to measure on"),
                                 log=lambda message: print(message, file=sys.stderr))

    @cached_property
    def tokenizer(self) -> Tokenizer:
        """The model's own tokenizer, without its padding or truncation: chunking counts every token."""
        tokenizer = Tokenizer.from_file(str(self.files.directory / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    @property
    def max_tokens(self) -> int:
        return self.files.max_tokens

    @property
    def dimension(self) -> int:
        return self.files.dimension

    @property
    def version(self) -> str:
        """Names the vectors: a chunk embedded under another version is embedded again."""
        return f"{self.files.name}:{self.files.fingerprint()}:{self.resolved_backend}:{self.resolved_precision}"

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text`, special tokens included."""
        return len(self.tokenizer.encode(text).ids)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length vectors, one row per text, in the order given."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Similar lengths in one batch waste no work on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.asarray(self._run([texts[i] for i in order]), dtype=np.float32)
        result = np.empty_like(vectors)
        result[order] = vectors
        return result

    def _run(self, texts: list[str]):
        if self._runner is None:
            self._runner = (self._load_sentence_transformers() if self.resolved_backend == "sentence-transformers"
                            else self._load_fastembed())
        return self._runner(texts)

    def _load_fastembed(self):
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        precision = self.resolved_precision
        if precision not in ("fp32", "int8"):
            raise ValueError(f"fastembed runs fp32 or int8, not {precision}")
        folder = onnx_export(self.files, Path(self.home) / "models" / "onnx", int8=precision == "int8")
        model_file = "model_int8.onnx" if precision == "int8" else "model.onnx"
        name = f"llm-twin/{folder.name}-{precision}"
        if name not in {description["model"] for description in TextEmbedding.list_supported_models()}:
            TextEmbedding.add_custom_model(
                name, pooling=PoolingType.CLS if self.files.pooling == "cls" else PoolingType.MEAN,
                normalization=True, sources=ModelSource(hf=name), dim=self.dimension, model_file=model_file)
        model = TextEmbedding(name, specific_model_path=str(folder), threads=self.threads or os.cpu_count())
        return lambda texts: list(model.embed(texts, batch_size=self.batch_size))

    def _load_sentence_transformers(self):
        import torch
        from sentence_transformers import SentenceTransformer

        quiet_transformers()

        precision = self.resolved_precision
        dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
        if precision not in dtypes:
            raise ValueError(f"sentence-transformers runs fp32 or bf16, not {precision}")
        if self.threads:
            torch.set_num_threads(self.threads)
        model = SentenceTransformer(str(self.files.directory), model_kwargs={"dtype": dtypes[precision]})

        def run(texts):
            vectors = model.encode(texts, batch_size=self.batch_size, convert_to_tensor=True).float().cpu().numpy()
            # Normalized in fp32: unit length in bf16 is only unit length to three digits.
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

        return run
