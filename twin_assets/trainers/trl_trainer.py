"""SFT or DPO with trl and a LoRA adapter, as a Dagster Pipes child process.

    python -m twin_assets.trainers.trl_trainer   (launched by the `sft_model` and `dpo_model` assets)

The parent passes, as Pipes extras: `stage` (sft or dpo), `model` (the directory to start from), `data`
(the dataset version's directory: train.jsonl and test.jsonl), `output` (an empty directory), the settings
sections `sft`/`dpo` and `lora`, and `chat_template` (used when the model's tokenizer has none), `progress_bar` (a terminal is watching) and
`qlora` (default true: with CUDA and bitsandbytes, the start model is loaded in 4 bits, QLoRA). The child
writes the merged model (transformers format, with its tokenizer) in `output`, the adapter in
`output/adapter`, and `output/training.json` (the log history and answers to three test prompts, before and
after). Progress goes back as Pipes logs; a failure's reason goes to `output/failure.txt`. A NaN (or infinite) loss stops training with that reason; any
failure exits non-zero, and the parent registers nothing.
"""

import json
import math
import random
import shutil
import sys
import warnings
from pathlib import Path

import torch
from dagster_pipes import PipesContext, open_dagster_pipes
from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, ProgressCallback, TrainerCallback

from twin_assets.trainers.causal_lm import context_length, greedy_answers
from twin_assets.trainers.local import local_pipes
from twin_assets.trainers.lora import lora_targets

FAILURE_FILE = "failure.txt"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
SAMPLE_PROMPTS = 3
SAMPLE_TOKENS = 48


class NaNLoss(RuntimeError):
    pass


class BarOnly(ProgressCallback):
    """transformers' progress bar, less the log dict it prints under the bar at every step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


class ReportToPipes(TrainerCallback):
    """Each logged step to the parent's log; a NaN or infinite loss stops training."""

    def __init__(self, pipes: PipesContext, stage: str):
        self.pipes, self.stage, self.nan_at = pipes, stage, None

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        figures = ", ".join(f"{k} {v:.4g}" for k, v in logs.items() if isinstance(v, float) and "loss" in k)
        if figures:
            self.pipes.log.info(f"{self.stage} step {state.global_step}/{state.max_steps}: {figures}")
        if any(isinstance(v, float) and not math.isfinite(v) for k, v in logs.items() if "loss" in k):
            self.nan_at = state.global_step
            control.should_training_stop = True


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _conversations(rows: list[dict], stage: str) -> list[dict]:
    """trl's conversational format: the request as the user's turn, the author's words as the assistant's
    (SFT: prompt and completion, loss on the completion; DPO: chosen and rejected completions)."""
    if stage == "sft":
        return [{"prompt": [{"role": "user", "content": r["instruction"]}],
                 "completion": [{"role": "assistant", "content": r["output"]}]} for r in rows]
    return [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows]


def _has_bitsandbytes() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


def _load(directory: str, cuda: bool, quantized: bool):
    """The model: 4-bit NF4 for QLoRA (bitsandbytes, CUDA only), else bf16 on a GPU and fp32 on a CPU."""
    if quantized:
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                          bnb_4bit_compute_dtype=torch.bfloat16)
        return AutoModelForCausalLM.from_pretrained(directory, quantization_config=quantization, device_map="auto")
    return AutoModelForCausalLM.from_pretrained(directory, dtype=torch.bfloat16 if cuda else torch.float32,
                                                device_map="auto" if cuda else None)


def train(pipes: PipesContext) -> None:
    from datasets import Dataset
    from peft import LoraConfig, PeftModel, prepare_model_for_kbit_training
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    extras = pipes.extras
    stage, output = extras["stage"], Path(extras["output"])
    data = Path(extras["data"])
    settings = dict(extras[stage])
    seed = int(settings.get("seed", 0))
    random.seed(seed)
    torch.manual_seed(seed)

    tokenizer = AutoTokenizer.from_pretrained(extras["model"])
    own_template = tokenizer.chat_template is not None
    if not own_template:
        tokenizer.chat_template = extras["chat_template"]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    cuda = torch.cuda.is_available()
    quantized = cuda and extras.get("qlora", True) and _has_bitsandbytes()
    model = _load(extras["model"], cuda, quantized)
    targets = lora_targets(model)
    train_rows, test_rows = _read_jsonl(data / "train.jsonl"), _read_jsonl(data / "test.jsonl")
    if not train_rows:
        raise ValueError(f"the {stage} dataset's train split is empty: nothing to learn from")
    sample_prompts = [r.get("instruction") or r["prompt"] for r in test_rows[:SAMPLE_PROMPTS]]
    before = greedy_answers(model, tokenizer, sample_prompts, SAMPLE_TOKENS)
    pipes.log.info(f"{stage}: {len(train_rows)} train and {len(test_rows)} test rows; LoRA on {', '.join(targets)}")

    settings.setdefault("max_length", context_length(model))
    common = dict(output_dir=str(output / "checkpoints"), use_cpu=not cuda, bf16=cuda, report_to="none",
                  save_strategy="no", logging_steps=1, gradient_checkpointing=False,
                  disable_tqdm=not extras.get("progress_bar", False),
                  eval_strategy="epoch" if test_rows else "no", **settings)
    lora = LoraConfig(task_type="CAUSAL_LM", target_modules=targets, **extras["lora"])
    train_set = Dataset.from_list(_conversations(train_rows, stage))
    test_set = Dataset.from_list(_conversations(test_rows, stage)) if test_rows else None
    report = ReportToPipes(pipes, stage)
    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if stage == "sft":
        trainer = SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=train_set, eval_dataset=test_set,
                             processing_class=tokenizer, peft_config=lora, callbacks=[report])
    else:
        trainer = DPOTrainer(model=model, ref_model=None, args=DPOConfig(**common), train_dataset=train_set,
                             eval_dataset=test_set, processing_class=tokenizer, peft_config=lora, callbacks=[report])
    if extras.get("progress_bar", False):  # a terminal is watching: the bar, without a printed dict per step
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(BarOnly())
    else:
        trainer.remove_callback(PrinterCallback)  # with no bar, transformers prints every log line instead
    trainer.train()
    history, steps = trainer.state.log_history, trainer.state.global_step
    peak_gpu_memory = torch.cuda.max_memory_allocated() if cuda else None
    if report.nan_at is not None:
        raise NaNLoss(f"the {stage} loss became NaN or infinite at step {report.nan_at}: lower the "
                      "learning rate")

    shutil.rmtree(output / "checkpoints", ignore_errors=True)
    trainer.model.save_pretrained(output / "adapter")
    del trainer, model
    # the adapter folded into a full-precision copy of the start model (a 4-bit base cannot be merged into)
    merged = PeftModel.from_pretrained(_load(extras["model"], cuda, quantized=False), output / "adapter").merge_and_unload()
    merged.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    if own_template:  # the start model's tokenizer files as they were (a converter may read marks in them)
        for name in TOKENIZER_FILES:
            if (Path(extras["model"]) / name).is_file():
                shutil.copyfile(Path(extras["model"]) / name, output / name)
    after = greedy_answers(merged, tokenizer, sample_prompts, SAMPLE_TOKENS)
    (output / "training.json").write_text(json.dumps({
        "stage": stage, "targets": targets, "history": history, "settings": settings, "qlora": quantized,
        "peak_gpu_memory_bytes": peak_gpu_memory, "samples": [{"prompt": p, "before": b, "after": a} for p, b, a in zip(sample_prompts, before, after)],
        "train_rows": len(train_rows), "test_rows": len(test_rows)}, indent=2, default=str))
    pipes.log.info(f"{stage}: done in {steps} steps")


def quiet_libraries() -> None:
    """Progress goes to the parent through Pipes: the libraries' own bars and notices would only clutter
    the terminal the parent shares."""
    import datasets
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def main() -> None:
    quiet_libraries()
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
    main()
