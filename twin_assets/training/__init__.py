"""Fine-tuning: the twin per author, trained through Dagster Pipes."""

import dagster as dg

from twin_assets.training.assets import dpo_model, sft_model, twin_gguf

# Continuous training, after `new_writing_sensor` built an author's datasets: SFT, DPO and the GGUF files
# follow their inputs, the evaluation follows a new candidate, the promotion a gate that passed.
training_automation = dg.AutomationConditionSensorDefinition(
    "training_automation", target=dg.AssetSelection.groups("training", "evaluation"),
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
    description="Trains, evaluates and promotes an author's twin when their datasets (or the base model) change.")

defs = dg.Definitions(assets=[sft_model, dpo_model, twin_gguf], sensors=[training_automation])
