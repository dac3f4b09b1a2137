"""Datasets: the author's own words as answers to requests, split by document, curated, versioned."""

import dagster as dg

from twin_assets.datasets.assets import instruction_dataset, preference_dataset
from twin_assets.datasets.sensors import build_new_writing_sensor

defs = dg.Definitions(assets=[instruction_dataset, preference_dataset], sensors=[build_new_writing_sensor()])
