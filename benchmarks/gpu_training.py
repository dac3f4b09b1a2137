"""Fine-tuning at a real size on a CUDA machine: a Llama of a few hundred million parameters trained from scratch
on the authors' train-side text (no hub is reachable there either), then the author's SFT (QLoRA, and plain
LoRA in bf16 as the baseline) and DPO with the book's settings, through the same trainer child processes the
assets launch, held-out likelihood before and after, and an EXL2 export (exllamav2) with its decode speed
against transformers'. Needs no Dagster (the trainers only need dagster-pipes): `scripts/gpu_check.sh` runs it
on the lent GPU machine over `twin datasets export` output.

    python benchmarks/gpu_training.py --data EXPORT_DIR --author paul-iusztin --out RESULTS_DIR
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin_assets.trainers.causal_lm import answer_log_likelihood  # noqa: E402
from twin_assets.trainers.pretrain import ChatTokens, pretrain_llama  # noqa: E402
from twin_assets.trainers.recipes import BOOK  # noqa: E402
from twin_resources.domain.templates import CHAT_TEMPLATE, END_OF_TEXT, IM_END, IM_START, PAD  # noqa: E402

# About 370M parameters: the generation benchmark's Llama with a vocabulary trained on the authors' text.
REAL_SIZE = {"vocab_size": 16000, "hidden_size": 1024, "intermediate_size": 2816, "layers": 24, "heads": 16,
             "context_length": 512, "steps": 200, "batch_size": 32, "learning_rate": 6e-4, "seed": 0}
# `--smoke`: the same stages at a size that runs on a CPU in a minute, to try the script before a GPU call
SMOKE_SIZE = {**REAL_SIZE, "vocab_size": 2048, "hidden_size": 64, "intermediate_size": 128, "layers": 2, "heads": 2,
              "context_length": 256, "steps": 4, "batch_size": 4}
DECODE_TOKENS = 128
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def bf16_matmul_peak(size: int = 8192, repeats: int = 10) -> float:
    """FLOP/s of a large bf16 matrix product on random data, the ceiling training is measured against."""
    if DEVICE != "cuda":
        return float("nan")
    a, b = (torch.randn(size, size, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * size**3 * repeats / (start.elapsed_time(end) / 1000)


def run_trainer(stage: str, model: Path, data: Path, output: Path, settings: dict, lora: dict, qlora: bool) -> dict:
    """One trainer child, as the `sft_model` / `dpo_model` assets launch it (less Pipes): its training.json."""
    output.mkdir(parents=True)
    extras = {"stage": stage, "model": str(model), "data": str(data), "output": str(output), stage: settings,
              "lora": lora, "chat_template": CHAT_TEMPLATE, "qlora": qlora}
    (output.parent / f"{output.name}.extras.json").write_text(json.dumps(extras))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "twin_assets.trainers.trl_trainer", "--local",
                    str(output.parent / f"{output.name}.extras.json")], check=True, cwd=ROOT)
    report = json.loads((output / "training.json").read_text())
    report["wall_s"] = time.perf_counter() - started
    return report


def summary(report: dict, tokens_per_row: float) -> dict:
    """Throughput, peak memory and the last losses of one training run."""
    final = next(h for h in reversed(report["history"]) if "train_runtime" in h)
    evals = [h["eval_loss"] for h in report["history"] if "eval_loss" in h]
    margins = [h["eval_rewards/margins"] for h in report["history"] if "eval_rewards/margins" in h]
    accuracies = [h["eval_rewards/accuracies"] for h in report["history"] if "eval_rewards/accuracies" in h]
    return {"qlora": report["qlora"], "train_s": final["train_runtime"], "wall_s": report["wall_s"],
            "tokens_per_s": final["train_samples_per_second"] * tokens_per_row,
            "peak_gpu_memory_gb": (report["peak_gpu_memory_bytes"] or 0) / 1e9,
            "final_eval_loss": evals[-1] if evals else None,
            "eval_reward_margin": margins[-1] if margins else None,
            "eval_reward_accuracy": accuracies[-1] if accuracies else None}


def mean_tokens(tokenizer, rows: list[dict], max_length: int) -> float:
    counts = [min(max_length, len(tokenizer.apply_chat_template(
        [{"role": "user", "content": r.get("instruction") or r["prompt"]},
         {"role": "assistant", "content": r.get("output") or r["chosen"]}], return_dict=True)["input_ids"]))
        for r in rows]
    return sum(counts) / len(counts)


def held_out_nll(model_dir: Path, rows: list[dict]) -> float:
    """Mean negative log-likelihood per token of the author's held-out answers (the evaluation's primary metric)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).to(DEVICE).eval()
    total = count = 0
    for row in rows:
        nll, tokens = answer_log_likelihood(model, tokenizer, row["instruction"], row["output"])
        total, count = total + nll, count + tokens
    del model
    torch.cuda.empty_cache()
    return total / max(count, 1)


def transformers_decode_speed(model_dir: Path, prompt: str) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).to(DEVICE).eval()
    ids = tokenizer(prompt, return_tensors="pt").input_ids.to(DEVICE)
    settings = dict(max_new_tokens=DECODE_TOKENS, min_new_tokens=DECODE_TOKENS, do_sample=False,
                    pad_token_id=tokenizer.pad_token_id)
    model.generate(ids, **settings)  # warm-up
    started = time.perf_counter()
    model.generate(ids, **settings)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    del model
    torch.cuda.empty_cache()
    return DECODE_TOKENS / (time.perf_counter() - started)


def exl2_export(model_dir: Path, work: Path, bits: float = 4.0, head_bits: int = 6) -> tuple[Path, float]:
    """exllamav2's converter with the arguments `export_exl2` passes; the compiled folder and its seconds."""
    compiled = work / "compiled"
    compiled.mkdir(parents=True)
    (work / "job").mkdir()
    started = time.perf_counter()
    length = str(min(2048, json.loads((model_dir / "config.json").read_text())["max_position_embeddings"]))
    subprocess.run([sys.executable, "-m", "exllamav2.conversion.convert_exl2", "-i", str(model_dir), "-o",
                    str(work / "job"), "-cf", str(compiled), "-b", str(bits), "-hb", str(head_bits),
                    "-l", length, "-ml", length], check=True)
    return compiled, time.perf_counter() - started


def exl2_decode_speed(compiled: Path, prompt: str) -> float:
    from exllamav2 import ExLlamaV2, ExLlamaV2Cache, ExLlamaV2Config, ExLlamaV2Tokenizer
    from exllamav2.generator import ExLlamaV2DynamicGenerator

    config = ExLlamaV2Config(str(compiled))
    model = ExLlamaV2(config)
    cache = ExLlamaV2Cache(model, lazy=True)
    model.load_autosplit(cache)
    # paged attention needs flash-attn, which the GPU image lacks (seen on an H200)
    generator = ExLlamaV2DynamicGenerator(model=model, cache=cache, tokenizer=ExLlamaV2Tokenizer(config), paged=False)
    generator.generate(prompt=prompt, max_new_tokens=DECODE_TOKENS, stop_conditions=[])  # warm-up
    started = time.perf_counter()
    generator.generate(prompt=prompt, max_new_tokens=DECODE_TOKENS, stop_conditions=[])
    return DECODE_TOKENS / (time.perf_counter() - started)


def exl2(model_dir: Path) -> dict:
    """The EXL2 export of `model_dir` and its decode speed against transformers' bf16 on the same prompt."""
    prompt = "Write a short post about latency budgets in LLM serving."
    compiled, seconds = exl2_export(model_dir, model_dir.parent / "exl2")
    exl2_speed, hf_speed = exl2_decode_speed(compiled, prompt), transformers_decode_speed(model_dir, prompt)
    size = sum(f.stat().st_size for f in compiled.glob("*.safetensors"))
    return {"convert_s": seconds, "bytes": size, "decode_tok_s": exl2_speed,
            "transformers_bf16_decode_tok_s": hf_speed, "speed_up": exl2_speed / hf_speed}


def step(results: dict, out: Path, name: str, work) -> None:
    """Run one stage, keep its figures or its failure, and write everything so far (a cut-off run keeps it)."""
    started = time.perf_counter()
    try:
        results[name] = work()
    except Exception as error:  # the next stages that do not depend on this one still run
        results[name] = {"failed": f"{type(error).__name__}: {error}"[:2000]}
    print(f"== {name} ({time.perf_counter() - started:.0f} s): {json.dumps(results[name], default=str)[:600]}",
          flush=True)
    (out / "gpu_training.json").write_text(json.dumps(results, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="`twin datasets export` output")
    parser.add_argument("--author", default="paul-iusztin")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/twin-gpu"))
    parser.add_argument("--smoke", action="store_true", help="a tiny model, a few steps, no EXL2 (runs on a CPU)")
    parser.add_argument("--exl2-only", action="store_true", help="pretrain, then the EXL2 export of that model")
    arguments = parser.parse_args()
    size = SMOKE_SIZE if arguments.smoke else REAL_SIZE
    out, work, author = arguments.out, arguments.work, arguments.data / arguments.author
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"device": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu", "torch": torch.__version__}
    step(results, out, "bf16_matmul_peak_tflops", lambda: bf16_matmul_peak() / 1e12)

    # every author's train-side answers: held-out documents never reach the base model
    texts = sorted({r["output"] for d in arguments.data.iterdir() for r in read_jsonl(d / "instruct" / "train.jsonl")})
    base = work / "base"

    def pretrain() -> dict:
        started = time.perf_counter()
        losses = pretrain_llama(texts, size, ChatTokens(END_OF_TEXT, IM_START, IM_END, PAD, CHAT_TEMPLATE), base)
        seconds = time.perf_counter() - started
        from transformers import AutoModelForCausalLM

        parameters = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(base).parameters())
        tokens = size["steps"] * size["batch_size"] * size["context_length"]
        return {"parameters": parameters, "texts": len(texts), "seconds": seconds, "tokens_per_s": tokens / seconds,
                "achieved_tflops": 6 * parameters * tokens / seconds / 1e12, "first_loss": losses[0][1],
                "last_loss": losses[-1][1]}

    step(results, out, "pretrain", pretrain)
    if arguments.exl2_only:
        step(results, out, "exl2", lambda: exl2(base))
        return
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    instruct, preference = author / "instruct", author / "preference"
    length = size["context_length"]  # the book's 2048 and 1024 are longer than this model's positions
    short = {"max_steps": 2} if arguments.smoke else {}
    sft_settings = {**BOOK["sft"], "max_length": length, "per_device_train_batch_size": 8, "seed": 0, **short}
    dpo_settings = {**BOOK["dpo"], "max_length": length, "per_device_train_batch_size": 8, "seed": 0, **short}
    sft_tokens = mean_tokens(tokenizer, read_jsonl(instruct / "train.jsonl"), length)
    dpo_tokens = mean_tokens(tokenizer, read_jsonl(preference / "train.jsonl"), length)  # chosen; rejected alike
    for name, qlora in (("sft_qlora", True), ("sft_lora_bf16", False)):
        step(results, out, name, lambda q=qlora, n=name: summary(
            run_trainer("sft", base, instruct, work / n, sft_settings, BOOK["lora"], q), sft_tokens))
    step(results, out, "dpo_qlora", lambda: summary(
        run_trainer("dpo", work / "sft_qlora", preference, work / "dpo_qlora", dpo_settings, BOOK["lora"], True),
        2 * dpo_tokens))
    test_rows = read_jsonl(instruct / "test.jsonl")
    step(results, out, "held_out_nll", lambda: {name: held_out_nll(path, test_rows) for name, path in (
        ("base", base), ("sft_qlora", work / "sft_qlora"), ("sft_lora_bf16", work / "sft_lora_bf16"),
        ("dpo_qlora", work / "dpo_qlora")) if (path / "config.json").exists()})

    if not arguments.smoke:
        step(results, out, "exl2", lambda: exl2(work / "dpo_qlora"))
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
