"""The one Definitions root: every stage's assets, jobs and sensors, with resources from the environment."""

import dagster as dg

from twin_assets import collection, features, models, retrieval
from twin_resources import resources_from_env

# Everything built so far, end to end, for one author: the README's first command runs this.
main_job = dg.define_asset_job("main_job", selection=dg.AssetSelection.all(),
                               description="The whole graph for one author, from links onwards.")


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """The graph with `resources` (default: configured from the environment)."""
    return dg.Definitions.merge(
        collection.defs,
        features.defs,
        models.defs,
        retrieval.defs,
        dg.Definitions(jobs=[main_job], resources=resources if resources is not None else resources_from_env()),
    )


defs = build_definitions()
