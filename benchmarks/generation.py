"""Generation speed on this machine: transformers fp32 against llama.cpp GGUF Q8_0 and Q4_K_M, one model.

The model is a Llama of realistic size (about 370M parameters; random weights: speed does not depend on
them). For each format: prompt processing and decode tokens/s, and the decode limit this machine's memory
bandwidth sets for the bytes each token must read. Targets: Q4_K_M decode >= 3x transformers fp32, and
>= 60% of its bandwidth limit.

    python benchmarks/generation.py [--layers 24] [--json results.json]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin_assets.models.gguf_export import quantize  # noqa: E402
from twin_assets.models.llama_cpp_converter import convert_to_gguf, converter_directory  # noqa: E402
from twin_assets.models.tiny_llama import CHAT_TEMPLATE, mark_trained_here, train_tokenizer  # noqa: E402
from twin_resources.settings import quiet_transformers  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent / "twin_assets" / "demo" / "corpus"
PROMPT_TOKENS, DECODE_TOKENS = 128, 48


def build_model(directory: Path, layers: int) -> int:
    """A random Llama-architecture model (fp32 safetensors) with a tokenizer; its parameter count."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer([p.read_text() for p in CORPUS.rglob("*.md")], 4096)
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=layers,
                         num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=2048,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    mark_trained_here(directory)
    return sum(p.numel() for p in model.parameters())


def read_bandwidth() -> float:
    """Bytes/s reading a 1 GiB array, best of a few runs, with all threads (torch) or one (numpy)."""
    data = torch.ones(256 * 1024 * 1024, dtype=torch.float32)
    best = 0.0
    for reduce in (lambda: data.sum(), lambda: np.add.reduce(data.numpy())):
        for _ in range(3):
            start = time.perf_counter()
            reduce()
            best = max(best, data.numel() * 4 / (time.perf_counter() - start))
    return best


def transformers_speed(directory: Path) -> dict:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    prompt = torch.randint(100, 4000, (1, PROMPT_TOKENS))
    with torch.inference_mode():
        model(prompt[:, :8])  # warm-up
        start = time.perf_counter()
        output = model(prompt, use_cache=True)
        prefill = time.perf_counter() - start
        cache, token = output.past_key_values, output.logits[:, -1:].argmax(-1)
        start = time.perf_counter()
        for _ in range(DECODE_TOKENS):
            output = model(token, past_key_values=cache, use_cache=True)
            cache, token = output.past_key_values, output.logits[:, -1:].argmax(-1)
        decode = time.perf_counter() - start
    bytes_per_token = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "embed_tokens" not in n)
    return {"prompt_tps": PROMPT_TOKENS / prefill, "decode_tps": DECODE_TOKENS / decode,
            "bytes_per_token": bytes_per_token}


def gguf_bytes_per_token(path: Path) -> int:
    """Every tensor's bytes except the token-embedding table, of which a token reads one row."""
    sys.path.insert(0, str(converter_directory() / "gguf-py"))
    from gguf import GGUFReader

    return sum(int(t.n_bytes) for t in GGUFReader(path).tensors if t.name != "token_embd.weight")


def llama_cpp_speed(path: Path, threads: int) -> dict:
    from llama_cpp import Llama

    llama = Llama(model_path=str(path), n_ctx=PROMPT_TOKENS + DECODE_TOKENS + 8, n_threads=threads,
                  n_batch=PROMPT_TOKENS, verbose=False)
    prompt = np.random.default_rng(0).integers(100, 4000, PROMPT_TOKENS).tolist()
    for _ in zip(range(2), llama.generate(prompt[:8], temp=0.0)):  # warm-up
        pass
    start = time.perf_counter()
    for produced, _ in enumerate(llama.generate(prompt, temp=0.0, top_k=1)):  # greedy, through llama.cpp's sampler
        if produced == 0:
            first_token = time.perf_counter()
        if produced == DECODE_TOKENS:
            break
    decode = time.perf_counter() - first_token
    prefill = first_token - start
    llama.close()
    return {"prompt_tps": PROMPT_TOKENS / prefill, "decode_tps": DECODE_TOKENS / decode,
            "bytes_per_token": gguf_bytes_per_token(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    arguments = parser.parse_args()
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    quiet_transformers()
    results: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        parameters = build_model(scratch / "model", arguments.layers)
        print(f"model: Llama, {parameters / 1e6:.0f}M parameters, random weights; {threads} threads", flush=True)
        f16 = convert_to_gguf(scratch / "model", scratch / "model-f16.gguf", "f16")
        files = {q: quantize(f16, scratch / f"model-{q}.gguf", q) for q in ("q8_0", "q4_k_m")}
        bandwidth = read_bandwidth()
        print(f"memory read bandwidth: {bandwidth / 1e9:.1f} GB/s", flush=True)
        results["transformers fp32"] = transformers_speed(scratch / "model")
        for quantization, path in files.items():
            results[f"llama.cpp {quantization.upper()}"] = llama_cpp_speed(path, threads)
        if threads > 1:  # memory-bound decoding would not get faster with a second thread
            results["llama.cpp Q4_K_M, 1 thread"] = llama_cpp_speed(files["q4_k_m"], 1)
    print("\n| format | MB read per token | prompt tok/s | decode tok/s | bandwidth limit tok/s | of limit |")
    print("|---|---|---|---|---|---|")
    for name, figures in results.items():
        figures["limit_tps"] = bandwidth / figures["bytes_per_token"]
        print(f"| {name} | {figures['bytes_per_token'] / 1e6:.0f} | {figures['prompt_tps']:.1f} | "
              f"{figures['decode_tps']:.1f} | {figures['limit_tps']:.1f} | "
              f"{figures['decode_tps'] / figures['limit_tps']:.0%} |")
    q4, fp32 = results["llama.cpp Q4_K_M"], results["transformers fp32"]
    speedup, of_limit = q4["decode_tps"] / fp32["decode_tps"], q4["decode_tps"] / q4["limit_tps"]
    print(f"\nQ4_K_M decode / transformers fp32 decode: {speedup:.2f}x (target >= 3x)")
    print(f"Q4_K_M decode / its bandwidth limit: {of_limit:.2f} (target >= 0.60)")
    if arguments.json:
        arguments.json.write_text(json.dumps({"parameters": parameters, "bandwidth": bandwidth,
                                              "results": results, "q4_vs_fp32": speedup,
                                              "q4_of_limit": of_limit}, indent=2))


if __name__ == "__main__":
    main()
