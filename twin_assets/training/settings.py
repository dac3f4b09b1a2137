"""Fine-tuning settings: three sections named as the libraries name them (`sft` keys are trl's `SFTConfig`
fields, `dpo` keys `DPOConfig`'s, `lora` keys peft's `LoraConfig`'s), over defaults that train a small model
in about a minute on two cores; the values are in `twin_assets.trainers.recipes`, with the book's for
real-size models (`BOOK`).
"""

import dataclasses
from typing import Any

import dagster as dg
from pydantic import Field

from twin_assets.trainers.recipes import DECIDED_HERE, SMALL_MODEL_DEFAULTS


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
