"""GGUF exports: quantization through llama.cpp, and how closely each file agrees with the source model."""

import ctypes
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin_assets.models.llama_cpp_converter import ExportError
from twin_resources.settings import quiet_transformers

# llama.cpp's file types (enum llama_ftype) for the quantizations we produce from an f16 file.
FILE_TYPES = {"q8_0": 7, "q4_k_m": 15}
QUANTIZATIONS = ("f16", "q8_0", "q4_k_m")

# Fixed prompts for the agreement check: prose, code, chat markup, digits and punctuation.
AGREEMENT_PROMPTS = (
    "The best way to learn a new tool is to",
    "Retrieval-augmented generation works by first",
    "def chunk(text, size):\n    return [text[i:i + size] for i in",
    "<|im_start|>user\nWrite a short post about vector databases.<|im_end|>\n<|im_start|>assistant\n",
    "In 2024, the team shipped 3 releases and",
    "Here is what I learned after a year of writing every week:",
    "Fine-tuning a small model on your own posts",
    "The evaluation showed that the baseline",
    "When the crawler fails on a page, it",
    "Embeddings turn each chunk of text into",
    "Most of the time goes into cleaning the data, because",
    "A good system prompt tells the model",
    "import numpy as np\n\ndef cosine(a, b):\n    return",
    "My advice to anyone starting out: ship early,",
    "The results were surprising. First,",
)


def quantize(source: Path, target: Path, quantization: str, threads: int = 0) -> Path:
    """Quantize an f16 GGUF file with llama.cpp's own quantizer."""
    import llama_cpp

    if quantization not in FILE_TYPES:
        raise ExportError(f"unknown quantization {quantization!r}: choose from {', '.join(QUANTIZATIONS)}")
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's per-tensor log, unless it fails
    target.parent.mkdir(parents=True, exist_ok=True)
    parameters = llama_cpp.llama_model_quantize_default_params()
    parameters.ftype = FILE_TYPES[quantization]
    parameters.nthread = threads
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(parameters))
    if status != 0 or not target.is_file():
        target.unlink(missing_ok=True)
        raise ExportError(f"llama.cpp could not quantize {source.name} to {quantization} (status {status})")
    return target


@dataclass(frozen=True)
class Agreement:
    """How one GGUF file's next-token logits compare with the transformers model's on the fixed prompts."""

    quantization: str
    max_abs_diff: float  # in logits: grows with how sharp the model's predictions are
    mean_abs_diff: float
    mean_kl_divergence: float  # of the GGUF's next-token distribution from the reference: scale-free
    max_kl_divergence: float
    top1_agreement: float
    tokenization_matches: bool

    def within(self, max_mean_kl: float, min_top1: float) -> bool:
        return self.tokenization_matches and self.mean_kl_divergence <= max_mean_kl and self.top1_agreement >= min_top1


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def reference_logits(model_dir: Path, prompts=AGREEMENT_PROMPTS) -> tuple[list[list[int]], np.ndarray]:
    """Token ids of each prompt and the transformers model's fp32 logits for the next token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    with torch.inference_mode():
        logits = np.stack([model(torch.tensor([i])).logits[0, -1].numpy() for i in ids])
    return ids, logits


def gguf_agreement(path: Path, quantization: str, prompts, ids: list[list[int]], reference: np.ndarray) -> Agreement:
    from llama_cpp import Llama

    try:
        llama = Llama(model_path=str(path), n_ctx=max(256, max(map(len, ids)) + 8), logits_all=True,
                      verbose=False)
    except ValueError as error:
        raise ExportError(f"llama.cpp cannot load {path.name}: {error}") from None
    try:
        tokenization = all(llama.tokenize(p.encode(), add_bos=False, special=True) == i for p, i in zip(prompts, ids))
        rows = []
        for tokens in ids:
            llama.reset()
            llama.eval(tokens)
            rows.append(np.array(llama.scores[llama.n_tokens - 1], dtype=np.float32))
    finally:
        llama.close()
    logits = np.stack(rows).astype(np.float64)
    difference = np.abs(logits - reference)
    log_p, log_q = _log_softmax(reference.astype(np.float64)), _log_softmax(logits)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=1)
    return Agreement(quantization=quantization, max_abs_diff=float(difference.max()),
                     mean_abs_diff=float(difference.mean()), mean_kl_divergence=float(kl.mean()),
                     max_kl_divergence=float(kl.max()),
                     top1_agreement=float((logits.argmax(1) == reference.argmax(1)).mean()),
                     tokenization_matches=tokenization)
