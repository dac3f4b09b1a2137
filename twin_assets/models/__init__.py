"""The model layer: the base model, its exports, all as registry versions, and the default promotion."""

import dagster as dg

from twin_assets.models.assets import GPU_ONLY, base_model, exl2_model, gguf_model, served_model

defs = dg.Definitions(assets=[base_model, served_model, gguf_model, exl2_model])

__all__ = ["GPU_ONLY", "defs"]
