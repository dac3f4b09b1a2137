"""Fine-tuning settings: three sections named as the libraries name them (`sft` keys are trl's `SFTConfig`
fields, `dpo` keys `DPOConfig`'s, `lora` keys peft's `LoraConfig`'s), over defaults that train a small model
in about a minute on two cores. The book's values for real-size models are `BOOK`, for reference.
"""

import dataclasses
from typing import Any

import dagster as dg
from pydantic import Field

SMALL_MODEL_DEFAULTS = {
    "sft": {"learning_rate": 2e-3, "num_train_epochs": 2, "per_device_train_batch_size": 4, "seed": 0},
    "dpo": {"learning_rate": 5e-4, "num_train_epochs": 1, "per_device_train_batch_size": 4, "beta": 0.5, "seed": 0},
    "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0},
}
# The LLM Engineer's Handbook's recipe for an 8B model (its repository): a reference, not a default here.
BOOK = {
    "sft": {"learning_rate": 3e-4, "num_train_epochs": 3, "max_length": 2048},
    "dpo": {"learning_rate": 2e-6, "num_train_epochs": 1, "beta": 0.5, "max_length": 1024},
    "lora": {"r": 32, "lora_alpha": 32, "lora_dropout": 0.0},
}
# What the trainer decides itself, from the model and the machine: not settable.
DECIDED_HERE = {"output_dir", "use_cpu", "bf16", "fp16", "report_to", "save_strategy", "target_modules",
                "task_type", "eval_strategy", "logging_steps", "gradient_checkpointing"}


class TrainingConfig(dg.Config):
    trainer: str = Field("", description="`trl` or `axolotl`; empty: TWIN_TRAINER")
    sft: dict[str, Any] = Field(default_factory=dict, description="trl SFTConfig fields, over the small-model "
                                                                  "defaults (learning_rate, num_train_epochs, ...)")
    dpo: dict[str, Any] = Field(default_factory=dict, description="trl DPOConfig fields (beta, learning_rate, ...)")
    lora: dict[str, Any] = Field(default_factory=dict, description="peft LoraConfig fields (r, lora_alpha, ...)")
    qlora: bool = Field(True, description="where CUDA is present, train on a 4-bit base (QLoRA, bitsandbytes); "
                                          "LoRA on a full-precision base elsewhere")

    def section(self, name: str) -> dict[str, Any]:
        """The section with the defaults under it."""
        return {**SMALL_MODEL_DEFAULTS[name], **getattr(self, name)}


def check_sections(config: TrainingConfig) -> None:
    """ValueError naming every key no library knows, or that the trainer decides."""
    from peft import LoraConfig
    from trl import DPOConfig, SFTConfig

    problems = []
    for name, known in (("sft", SFTConfig), ("dpo", DPOConfig), ("lora", LoraConfig)):
        fields = {field.name for field in dataclasses.fields(known)}
        for key in getattr(config, name):
            if key in DECIDED_HERE:
                problems.append(f"{name}.{key} is decided by the trainer")
            elif key not in fields:
                problems.append(f"{name}.{key} is not a {known.__name__} field")
    if problems:
        raise ValueError("bad training settings: " + "; ".join(problems))
