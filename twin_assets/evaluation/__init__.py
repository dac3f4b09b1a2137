"""Evaluation of an author's fine-tuned candidate against what serves the author now and the base model, on
the author's held-out test split, and the gate before its promotion."""

import dagster as dg

from twin_assets.evaluation.assets import eval_report, promoted_model

defs = dg.Definitions(assets=[eval_report, promoted_model])
