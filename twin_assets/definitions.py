"""The one Definitions root: every stage's assets, jobs and sensors, with resources from the settings.

Jobs by scope: `collection_job`, `features_job`, `datasets_job` and `training_job` run per author (sensors
and automation start the first two as links and documents arrive); `models_job` builds what all authors share (the base model, its exports, the
default promotion), so adding an author never retrains it; `main_job` is the whole graph for one author,
from links to a served twin, as `make demo` runs it. The reranker has a job of its own, and GPU-only assets
join the jobs only where a GPU is present (TWIN_GPU).
"""

import dagster as dg
from dagster_k8s import k8s_job_executor

from twin_assets import collection, datasets, evaluation, features, models, retrieval, training
from twin_assets.alerts import build_alerts_sensor
from twin_assets.dead_runs import build_dead_runs_sensor
from twin_resources.configured import resources_from_env, slack_alerts
from twin_resources.model_io import ModelVersionIOManager
from twin_resources.settings import load_settings

GPU_ASSETS = dg.AssetSelection.tag("compute", models.GPU_ONLY["compute"])
RERANKER = dg.AssetSelection.assets(retrieval.reranker_model)


def build_definitions(resources: dict | None = None, gpu: bool | None = None) -> dg.Definitions:
    """The graph with `resources` (default: configured from the settings). The model IO manager follows the
    registry given, unless one is given too."""
    settings = load_settings()
    gpu = settings.gpu_assets if gpu is None else gpu
    resources = resources if resources is not None else resources_from_env()
    if "model_io" not in resources and "model_registry" in resources:
        resources = {**resources, "model_io": ModelVersionIOManager(model_registry=resources["model_registry"])}
    if "alerts" not in resources:
        resources = {**resources, "alerts": slack_alerts(in_dagster=True)}
    unavailable = dg.AssetSelection.all() - GPU_ASSETS if not gpu else dg.AssetSelection.all()
    cluster = settings.deployment == "cluster"
    model_wide = dg.AssetSelection.groups("models") & unavailable
    jobs = [
        dg.define_asset_job("main_job", selection=unavailable - RERANKER,
                            description="The whole graph for one author, from links to a served twin."),
        dg.define_asset_job("models_job", selection=model_wide,
                            description="What every author shares: the base model, its exports, the default "
                                        "promotion."),
        dg.define_asset_job("datasets_job", selection=dg.AssetSelection.groups("datasets"),
                            description="One author's instruction and preference datasets, from the features."),
        dg.define_asset_job("training_job", selection=(dg.AssetSelection.groups("datasets", "training", "evaluation")
                                                       | dg.AssetSelection.assets(models.base_model,
                                                                                  models.served_model)) & unavailable,
                            description="One author's twin from the features: datasets, the base model when "
                                        "missing, SFT, DPO, the evaluation and its gate, and the author's "
                                        "promotion (`twin train`). In a cluster each step is a pod.",
                            tags={"stage": "training"},  # what a cluster's run queue limits
                            executor_def=k8s_job_executor if cluster else None),
        dg.define_asset_job("reranker_job", selection=RERANKER,
                            description="Fine-tune the cross-encoder reranker on every author's chunks."),
    ]
    sensors = [build_alerts_sensor(settings.serve.dagster_url)]
    if not cluster:
        sensors.append(build_dead_runs_sensor())
    return dg.Definitions.merge(
        collection.defs,
        features.defs,
        datasets.defs,
        models.defs,
        retrieval.defs,
        training.defs,
        evaluation.defs,
        dg.Definitions(jobs=jobs, sensors=sensors, resources=resources),
    )


defs = build_definitions()
