"""Fine-tuning: the twin per author, trained through Dagster Pipes."""

import dagster as dg

from twin_assets.training.assets import dpo_model, sft_model, twin_gguf

defs = dg.Definitions(assets=[sft_model, dpo_model, twin_gguf])
