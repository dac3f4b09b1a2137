"""SFT or DPO with axolotl and a LoRA adapter, as a Dagster Pipes child process in axolotl's own virtual
environment (it pins an older Hugging Face stack than the project's).

    .venv-axolotl/bin/python -m twin_assets.trainers.axolotl_trainer   (launched by the training assets)

It takes the same extras as the trl trainer and leaves the same files: the merged model in `output`, the
adapter in `output/adapter`, `output/training.json`. The settings, named as trl and peft name them, are
translated to axolotl's YAML; a setting axolotl has no name for is refused. The data goes in as chat
messages rendered by the model's own chat template (`chat_template: tokenizer_default`), as the trl trainer
and serving render it. The flags that make axolotl train on a CPU are set when no GPU is present; with one,
the adapter is QLoRA's (a 4-bit base) unless the extras say `qlora: false`. Terminated (a cancelled run), it
stops the `axolotl` processes it started before it exits.
"""

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from dagster_pipes import PipesContext, open_dagster_pipes

from twin_assets.trainers.local import local_pipes

FAILURE_FILE = "failure.txt"
# trl / peft names -> axolotl's
SETTINGS = {"learning_rate": "learning_rate", "num_train_epochs": "num_epochs", "per_device_train_batch_size":
            "micro_batch_size", "gradient_accumulation_steps": "gradient_accumulation_steps", "max_steps": "max_steps",
            "max_length": "sequence_len", "seed": "seed", "warmup_steps": "warmup_steps", "weight_decay": "weight_decay",
            "beta": "rl_beta"}
LORA = {"r": "lora_r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout"}
CPU_FLAGS = {"bf16": False, "fp16": False, "tf32": False, "dataloader_pin_memory": False, "lora_mlp_kernel": False,
             "lora_qkv_kernel": False, "lora_o_kernel": False, "lora_embedding_kernel": False}


def translate(settings: dict, names: dict, section: str) -> dict:
    unknown = sorted(set(settings) - set(names))
    if unknown:
        raise ValueError(f"axolotl has no setting for {', '.join(f'{section}.{k}' for k in unknown)}")
    return {names[key]: value for key, value in settings.items()}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_data(stage: str, data: Path, work: Path) -> dict[str, Path]:
    """The dataset's sides as axolotl reads them: chat messages, and for DPO the chosen and rejected answers."""
    files = {}
    for side in ("train", "test"):
        rows = _rows(data / f"{side}.jsonl")
        if not rows:
            continue
        if stage == "sft":
            rows = [{"messages": [{"role": "user", "content": r["instruction"]},
                                  {"role": "assistant", "content": r["output"]}]} for r in rows]
        else:
            rows = [{"messages": [{"role": "user", "content": r["prompt"]}], "chosen": r["chosen"],
                     "rejected": r["rejected"]} for r in rows]
        files[side] = work / f"{side}.jsonl"
        files[side].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    if "train" not in files:
        raise ValueError(f"the {stage} dataset's train split is empty: nothing to learn from")
    return files


def axolotl_config(extras: dict, files: dict[str, Path], work: Path, targets: list[str], cuda: bool) -> dict:
    stage = extras["stage"]
    qlora = cuda and extras.get("qlora", True)
    dataset = ({"type": "chat_template", "field_messages": "messages", "roles_to_train": ["assistant"]}
               if stage == "sft" else {"type": "chat_template.default", "field_messages": "messages",
                                       "field_chosen": "chosen", "field_rejected": "rejected"})
    config = {"base_model": extras["model"], "chat_template": "tokenizer_default",
              "datasets": [{"path": str(files["train"]), "ds_type": "json", **dataset}],
              "dataset_prepared_path": str(work / "prepared"), "output_dir": str(work / "out"),
              "adapter": "qlora" if qlora else "lora", "load_in_4bit": qlora, "lora_target_modules": targets, "val_set_size": 0, "logging_steps": 1,
              "save_strategy": "no", "gradient_accumulation_steps": 1, "optimizer": "adamw_torch",
              "lr_scheduler": "linear", "strict": False, "save_safetensors": True,
              **translate(extras[stage], SETTINGS, stage), **translate(extras["lora"], LORA, "lora")}
    if "test" in files:  # evaluated at each epoch's end, and at the last step (as the trl trainer is)
        config["test_datasets"] = [{"path": str(files["test"]), "ds_type": "json", "split": "train", **dataset}]
        config["eval_strategy"] = "steps"
        config["eval_steps"] = config.get("max_steps") or 1.0
    if stage == "dpo":
        config["rl"] = "dpo"
    if not cuda:
        config.update(CPU_FLAGS)
    return config


def run_axolotl(pipes: PipesContext, arguments: list[str]) -> list[dict]:
    """`axolotl ...`, its logged dicts forwarded to the parent and returned."""
    # a session of its own, so that stopping it reaches the processes axolotl launches (accelerate's workers)
    process = subprocess.Popen(["axolotl", *arguments], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "AXOLOTL_DO_NOT_TRACK": "1"}, start_new_session=True)
    try:
        return _follow(pipes, process, arguments[0])
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _follow(pipes: PipesContext, process: subprocess.Popen, command: str) -> list[dict]:
    history, tail = [], []
    for line in process.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        start = line.find("{'")
        if start >= 0 and line.rstrip().endswith("}"):
            try:
                logged = ast.literal_eval(line[start:].strip())
            except (ValueError, SyntaxError):
                continue
            logged = {k: float(v) if isinstance(v, str) and _number(v) else v for k, v in logged.items()}
            history.append(logged)
            losses = ", ".join(f"{k} {v:.4g}" for k, v in logged.items() if "loss" in k and isinstance(v, float))
            if losses:
                pipes.log.info(f"axolotl: {losses}")
    if process.wait():
        raise RuntimeError(f"axolotl {command} failed: " + " | ".join(tail[-5:]))
    return history


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def train(pipes: PipesContext) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from twin_assets.trainers.lora import lora_targets

    extras = pipes.extras
    stage, output = extras["stage"], Path(extras["output"])
    work = output / "axolotl"
    work.mkdir()
    files = write_data(stage, Path(extras["data"]), work)
    targets = lora_targets(AutoModelForCausalLM.from_pretrained(extras["model"]))
    config = axolotl_config(extras, files, work, targets, torch.cuda.is_available())
    (work / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    pipes.log.info(f"axolotl {stage}: LoRA on {', '.join(targets)}")
    history = run_axolotl(pipes, ["train", str(work / "config.yml")])
    run_axolotl(pipes, ["merge-lora", str(work / "config.yml"), "--lora-model-dir", str(work / "out")])
    merged = work / "out" / "merged"
    for path in merged.iterdir():
        shutil.move(str(path), output / path.name)
    (output / "adapter").mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copyfile(work / "out" / name, output / "adapter" / name)
    shutil.copyfile(work / "config.yml", output / "axolotl.yml")
    shutil.rmtree(work)
    for step, entry in enumerate((e for e in history if "loss" in e or "eval_loss" in e), 1):
        entry.setdefault("step", step)
    (output / "training.json").write_text(json.dumps({
        "stage": stage, "targets": targets, "history": history, "settings": extras[stage], "samples": [],
        "trainer": "axolotl", "qlora": config["load_in_4bit"]}, indent=2, default=str))


def _stop(signum, _frame) -> None:
    raise SystemExit(128 + signum)  # unwinds, so run_axolotl's `finally` stops axolotl too


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    local = local_pipes(sys.argv[1:])
    if local is not None:
        train(local)
        return
    with open_dagster_pipes() as pipes:
        try:
            train(pipes)
        except Exception as error:  # the reason, for the parent's one-line failure; Pipes reports the trace
            (Path(pipes.extras["output"]) / FAILURE_FILE).write_text(f"{type(error).__name__}: {error}")
            raise


if __name__ == "__main__":
    sys.exit(main())
