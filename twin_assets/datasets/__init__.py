"""Datasets: the author's own words as answers to requests, split by document, curated, versioned."""

import dagster as dg

from twin_assets.datasets.assets import instruction_dataset, preference_dataset

defs = dg.Definitions(assets=[instruction_dataset, preference_dataset])
