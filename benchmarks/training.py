"""Fine-tuning throughput: SFT with LoRA on an author's instruction dataset, per trainer, side by side.

    python benchmarks/training.py [--home TWIN_HOME] [--author paul-iusztin] [--steps 40] [--json results.json]

Reads what `twin train` (or `twin datasets build` and the models job) left in TWIN_HOME: the author's
instruction dataset and the base model, as the graph last produced them. Each trainer runs the same data
and settings for `--steps` steps: tokens per second, peak memory (the process's resident set), final eval
loss. For trl, the achieved FLOP/s (about 4 x parameters x tokens for LoRA: the forward pass and the
backward pass through activations; frozen weights get no gradient) against this machine's measured fp32
matmul peak, measured in the same run. The axolotl column waits for the axolotl trainer (not built yet:
it needs an environment of its own); until then it says so.
"""

import argparse
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin_assets.trainers.trl_trainer import quiet_libraries, train  # noqa: E402
from twin_assets.training.settings import SMALL_MODEL_DEFAULTS  # noqa: E402
from twin_resources.domain.templates import CHAT_TEMPLATE  # noqa: E402
from twin_resources.model_registry import default_registry  # noqa: E402


class LocalPipes:
    """What the trainer reads from Dagster Pipes, without a parent: its extras and a log."""

    def __init__(self, extras: dict):
        self.extras = extras
        self.log = logging.getLogger("trainer")


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


def run_trl(model: Path, dataset: Path, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as output:
        settings = {**SMALL_MODEL_DEFAULTS["sft"], "max_steps": steps}
        started = time.perf_counter()
        train(LocalPipes({"stage": "sft", "model": str(model), "data": str(dataset), "output": output,
                          "chat_template": CHAT_TEMPLATE, "sft": settings, "lora": SMALL_MODEL_DEFAULTS["lora"]}))
        wall = time.perf_counter() - started
        summary = json.loads((Path(output) / "training.json").read_text())
    history = summary["history"]
    runtime = next(h["train_runtime"] for h in history if "train_runtime" in h)
    tokens = max(h.get("num_tokens", 0) for h in history)
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    return {"tokens_per_s": tokens / runtime, "tokens": tokens, "train_s": runtime, "wall_s": wall,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "final_eval_loss": evals[-1] if evals else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default="", help="TWIN_HOME (default: the setting)")
    parser.add_argument("--author", default="paul-iusztin", help="the author's key")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    quiet_libraries()

    registry = default_registry(arguments.home)
    base = registry.output_of("base_model", None)
    dataset = registry.output_of("instruction_dataset", arguments.author)
    parameters = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(base.path).parameters())
    peak = matmul_peak()
    print(f"base {base.short} ({parameters / 1e6:.1f}M parameters), dataset {dataset.short}; "
          f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    results = {"trl": run_trl(base.path, dataset.path, arguments.steps), "matmul_peak_flops": peak,
               "parameters": parameters}
    trl = results["trl"]
    achieved = 4 * parameters * trl["tokens"] / trl["train_s"]
    trl["achieved_flops"] = achieved
    print(f"trl: {trl['tokens_per_s']:,.0f} tokens/s, peak RSS {trl['peak_rss_mb']:,.0f} MB, final eval loss "
          f"{trl['final_eval_loss']:.3f}, {achieved / 1e9:.2f} GFLOP/s = {achieved / peak:.1%} of the matmul peak")
    results["axolotl"] = "not run: the axolotl trainer is not built yet"
    print(f"axolotl: {results['axolotl']}")
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
