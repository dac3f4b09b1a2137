"""The model layer: the base model, its exports, all as registry versions."""

import dagster as dg

from twin_assets.models.assets import base_model, exl2_model, gguf_model

defs = dg.Definitions(assets=[base_model, gguf_model, exl2_model])
