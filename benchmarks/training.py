"""Fine-tuning throughput: SFT with LoRA on an author's instruction dataset, trl against axolotl.

    python benchmarks/training.py [--home TWIN_HOME] [--author paul-iusztin] [--steps 40] [--json results.json]

Reads what `twin train` (or `twin datasets build` and the models job) left in TWIN_HOME: the author's
instruction dataset and the base model, as the graph last produced them. Each trainer runs the same data
and settings for `--steps` steps, each as a child process as Dagster runs it: tokens per second (samples
per second times the mean tokens of a sample under the chat template), peak memory (the largest child's
resident set), final eval loss, and the achieved FLOP/s (about 4 x parameters x tokens for LoRA: the
forward pass and the backward pass through activations; frozen weights get no gradient) against this
machine's fp32 matmul peak, measured in the same run. axolotl runs where its environment exists
(`make axolotl-env`).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin_assets.training.run import AXOLOTL_ENV  # noqa: E402
from twin_assets.training.settings import SMALL_MODEL_DEFAULTS  # noqa: E402
from twin_resources.domain.templates import CHAT_TEMPLATE  # noqa: E402
from twin_resources.model_registry import default_registry  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def matmul_peak(size: int = 1024, repeats: int = 20) -> float:
    """fp32 FLOP/s of a square matmul on this machine (best of `repeats`)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def mean_tokens(model: Path, dataset: Path, max_length: int) -> float:
    """Tokens per train sample as the trainers see it: the chat template applied, cut at `max_length`."""
    tokenizer = AutoTokenizer.from_pretrained(model)
    rows = [json.loads(line) for line in (dataset / "train.jsonl").read_text().splitlines() if line.strip()]
    counts = [min(max_length, len(tokenizer.apply_chat_template(
        [{"role": "user", "content": r["instruction"]}, {"role": "assistant", "content": r["output"]}],
        return_dict=True)["input_ids"])) for r in rows]
    return sum(counts) / len(counts)


def run_trainer(trainer: str, model: Path, dataset: Path, steps: int, batch: int) -> dict:
    """One trainer as a child process (as Dagster runs it, less Pipes): seconds, peak memory, eval loss."""
    python = sys.executable if trainer == "trl" else str(AXOLOTL_ENV / "bin" / "python")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if trainer == "axolotl":
        env |= {"VIRTUAL_ENV": str(AXOLOTL_ENV), "PATH": f"{AXOLOTL_ENV / 'bin'}{os.pathsep}{env['PATH']}",
                "AXOLOTL_DO_NOT_TRACK": "1"}
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "out"
        output.mkdir()
        extras = {"stage": "sft", "model": str(model), "data": str(dataset), "output": str(output),
                  "chat_template": CHAT_TEMPLATE, "lora": SMALL_MODEL_DEFAULTS["lora"],
                  "sft": {**SMALL_MODEL_DEFAULTS["sft"], "max_steps": steps, "per_device_train_batch_size": batch}}
        (Path(scratch) / "extras.json").write_text(json.dumps(extras))
        started = time.perf_counter()
        child = subprocess.Popen([python, "-m", f"twin_assets.trainers.{trainer}_trainer", "--local",
                                  str(Path(scratch) / "extras.json")], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak (and its descendants')
        wall = time.perf_counter() - started
        if status:
            raise RuntimeError(f"the {trainer} trainer failed (status {status})")
        history = json.loads((output / "training.json").read_text())["history"]
    runtime = next((h["train_runtime"] for h in history if "train_runtime" in h), wall)
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    return {"train_s": float(runtime), "wall_s": wall, "samples_per_s": steps * batch / float(runtime),
            "peak_rss_mb": usage.ru_maxrss / 1024, "final_eval_loss": evals[-1] if evals else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default="", help="TWIN_HOME (default: the setting)")
    parser.add_argument("--author", default="paul-iusztin", help="the author's key")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()

    registry = default_registry(arguments.home)
    base = registry.output_of("base_model", None)
    dataset = registry.output_of("instruction_dataset", arguments.author)
    parameters = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(base.path).parameters())
    peak = matmul_peak()
    print(f"base {base.short} ({parameters / 1e6:.1f}M parameters), dataset {dataset.short}; "
          f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    tokens = mean_tokens(base.path, dataset.path, AutoConfig.from_pretrained(base.path).max_position_embeddings)
    results = {"matmul_peak_flops": peak, "parameters": parameters, "tokens_per_sample": tokens}
    for trainer in ("trl", "axolotl"):
        if trainer == "axolotl" and not (AXOLOTL_ENV / "bin" / "axolotl").exists():
            results[trainer] = "not run: its environment is absent (make axolotl-env)"
            print(f"axolotl: {results[trainer]}")
            continue
        figures = run_trainer(trainer, base.path, dataset.path, arguments.steps, arguments.batch)
        figures["tokens_per_s"] = figures["samples_per_s"] * tokens
        figures["achieved_flops"] = 4 * parameters * figures["tokens_per_s"]
        results[trainer] = figures
        print(f"{trainer}: {figures['tokens_per_s']:,.0f} tokens/s ({figures['train_s']:.1f} s training, "
              f"{figures['wall_s']:.1f} s in all), peak RSS {figures['peak_rss_mb']:,.0f} MB, final eval loss "
              f"{figures['final_eval_loss'] if figures['final_eval_loss'] is None else round(figures['final_eval_loss'], 3)}, "
              f"{figures['achieved_flops'] / 1e9:.2f} GFLOP/s = {figures['achieved_flops'] / peak:.1%} of the matmul peak")
    if isinstance(results["axolotl"], dict):
        ratio = results["axolotl"]["tokens_per_s"] / results["trl"]["tokens_per_s"]
        results["axolotl_over_trl_tokens_per_s"] = ratio
        print(f"axolotl / trl: {ratio:.2f}x tokens/s, "
              f"{results['axolotl']['peak_rss_mb'] / results['trl']['peak_rss_mb']:.2f}x peak memory")
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
