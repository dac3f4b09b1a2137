"""Retrieval's assets: the reranker fine-tuned on the corpus."""

import dagster as dg

from twin_assets.retrieval.assets import reranker_model

defs = dg.Definitions(assets=[reranker_model])

__all__ = ["defs", "reranker_model"]
