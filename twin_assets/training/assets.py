"""The twin per author: a LoRA adapter on the shared base model trained on the author's instructions
(`sft_model`), a second one on the merged SFT model trained on the author's preference triples
(`dpo_model`), both run as Pipes child processes, and its GGUF files (`twin_gguf`). Its promotion follows
its evaluation (`twin_assets/evaluation`)."""

import dagster as dg

from twin_assets.metadata import markdown_table
from twin_assets.models.assets import gguf_check_spec, gguf_export_result, version_metadata
from twin_assets.models.exports import GgufConfig
from twin_assets.partitions import authors
from twin_assets.plots import line_plot_markdown
from twin_assets.training.pods import gpu_step_tags
from twin_assets.training.run import StageOutcome, train_stage
from twin_assets.training.settings import TrainingConfig
from twin_resources.domain.models import ModelVersion
from twin_resources.model_registry import ModelRegistry
from twin_resources.progress import ProgressReporter
from twin_resources.settings import load_settings

TRAINING = dict(partitions_def=authors, group_name="training", tags={"stage": "training"},
                automation_condition=dg.AutomationCondition.eager())
# One training at a time across runs where the instance limits this pool (a cluster's: `dagster instance
# concurrency set trainer 1`); the laptop's instance runs one run at a time anyway.
TRAINER_POOL = "trainer"
# In a cluster under k8s_job_executor, each training step is a pod with a GPU (unless the trainer has its own)
GPU_STEP = gpu_step_tags(load_settings())


def _curve(history: list[dict], key: str) -> tuple[list[float], list[float]]:
    points = [(entry["step"], entry[key]) for entry in history if key in entry and "step" in entry]
    return [p[0] for p in points], [p[1] for p in points]


def stage_metadata(outcome: StageOutcome) -> dict:
    entry, summary = outcome.entry, outcome.summary
    metadata = {**version_metadata(entry), "reused": outcome.reused, "dataset": entry.dataset or "",
                "lora_targets": ", ".join(summary["targets"]),
                **{k: dg.MetadataValue.float(v) for k, v in entry.metadata.items() if isinstance(v, float)}}
    for key, title in (("loss", "train loss"), ("eval_loss", "eval loss")):
        steps, values = _curve(summary["history"], key)
        if len(steps) > 1:
            metadata[f"{key}_curve"] = dg.MetadataValue.md(line_plot_markdown(steps, values, title, "step", "loss"))
    rows = [[s["prompt"][:80], s["before"][:120], s["after"][:120]] for s in summary["samples"]]
    if rows:
        metadata["answers"] = dg.MetadataValue.md(markdown_table(["test request", "before", "after"], rows))
    return metadata


@dg.asset(io_manager_key="model_io", kinds={"pytorch"}, pool=TRAINER_POOL, op_tags=GPU_STEP, **TRAINING)
def sft_model(context: dg.AssetExecutionContext, config: TrainingConfig, model_registry: ModelRegistry,
              pipes_client: dg.ResourceParam[dg.PipesClient], progress: dg.ResourceParam[ProgressReporter], base_model: ModelVersion,
              instruction_dataset: ModelVersion) -> dg.Output[ModelVersion]:
    """A LoRA adapter on the base model, trained on the author's instruction train split with the chat
    template serving uses (loss on the answer only, eval loss on the test split), merged. Kind `sft`, with
    the base as parent and the dataset version."""
    outcome = train_stage(context, "sft", config, base_model, instruction_dataset, model_registry.registry,
                          pipes_client, context.partition_key, progress.shows_bars)
    return dg.Output(outcome.entry, metadata=stage_metadata(outcome), data_version=dg.DataVersion(outcome.entry.version))


@dg.asset(io_manager_key="model_io", kinds={"pytorch"}, pool=TRAINER_POOL, op_tags=GPU_STEP, **TRAINING)
def dpo_model(context: dg.AssetExecutionContext, config: TrainingConfig, model_registry: ModelRegistry,
              pipes_client: dg.ResourceParam[dg.PipesClient], progress: dg.ResourceParam[ProgressReporter], sft_model: ModelVersion,
              preference_dataset: ModelVersion) -> dg.Output[ModelVersion]:
    """A new LoRA adapter on the merged SFT model, trained on the author's preference triples (DPO, the
    SFT model as reference), merged. Kind `dpo`, with the SFT model as parent and the dataset version;
    reward margins and accuracies in the metadata."""
    outcome = train_stage(context, "dpo", config, sft_model, preference_dataset, model_registry.registry,
                          pipes_client, context.partition_key, progress.shows_bars)
    return dg.Output(outcome.entry, metadata=stage_metadata(outcome), data_version=dg.DataVersion(outcome.entry.version))


@dg.asset(kinds={"gguf"}, check_specs=[gguf_check_spec("twin_gguf")], **TRAINING)
def twin_gguf(context: dg.AssetExecutionContext, config: GgufConfig, model_registry: ModelRegistry,
              dpo_model: ModelVersion) -> dg.MaterializeResult:
    """The author's fine-tuned model as GGUF files for llama.cpp, through the base model's export and its
    agreement check, following the graph: the DPO version this run produced."""
    return gguf_export_result(context, model_registry.registry, dpo_model, config)
