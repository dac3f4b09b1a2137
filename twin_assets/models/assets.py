"""The model layer's assets: the base model, its GGUF and EXL2 exports (each a registry version) and the
default channel's promotion. Model versions flow from asset to asset through the `model_io` IO manager."""


import dagster as dg
from pydantic import Field

from twin_assets.datasets.build import read_card
from twin_assets.features.assets import cleaned_documents
from twin_assets.metadata import markdown_table
from twin_assets.models.base_models import BaseModelOutcome, build_tiny_base, cleaned_texts, register_configured_base
from twin_assets.models.exports import Exl2Config, GgufConfig, export_exl2, export_gguf
from twin_assets.models.tiny_llama import TinyLlamaSpec
from twin_assets.plots import line_plot_markdown
from twin_resources.domain.models import DEFAULT_CHANNEL, ModelVersion
from twin_resources.model_registry import ModelRegistry, Registry
from twin_resources.progress import ProgressReporter
from twin_resources.settings import load_settings
from twin_resources.vector_store import VectorStore

MODELS = dict(group_name="models", tags={"stage": "training"})
GPU_ONLY = {"compute": "gpu"}  # left out of the jobs where no GPU is present


class BaseModelConfig(TinyLlamaSpec):
    model: str = Field(default="", description="A hub id or local model directory; empty: TWIN_BASE_MODEL, and "
                                               "when that is unset too, a tiny Llama trained from scratch.")


def version_metadata(entry: ModelVersion) -> dict:
    """What the UI shows for every model version: its identity, lineage and size."""
    return {"version": entry.version, "name": entry.name, "kind": entry.kind, "format": entry.format,
            "parents": ", ".join(p[:12] for p in entry.parents) or "none",
            "bytes": sum(entry.files.values()), "path": dg.MetadataValue.path(str(entry.path))}


def _train_with_progress(context: dg.AssetExecutionContext, registry: Registry, texts: list[str],
                         spec: TinyLlamaSpec, progress: ProgressReporter) -> BaseModelOutcome:
    progress.start(spec.steps, "training the base model", unit="step")

    def on_step(step: int, loss: float) -> None:
        progress.advance(f"loss {loss:.3f}" if loss == loss else "")  # NaN until the first logged loss
        if step % max(1, spec.steps // 10) == 0:
            context.log.info(f"step {step}/{spec.steps}: loss {loss:.3f}")

    try:
        return build_tiny_base(registry, texts, spec, on_step)
    finally:
        progress.finish()


def held_out_documents(datasets: dict[str, ModelVersion]) -> frozenset[str]:
    """Every author's test-side documents, from their instruction datasets' cards."""
    return frozenset(document for dataset in datasets.values() for document in read_card(dataset.path)["documents"]["test"])


@dg.asset(deps=[cleaned_documents], ins={"instruction_dataset": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
          kinds={"pytorch"}, io_manager_key="model_io", **MODELS)
def base_model(context: dg.AssetExecutionContext, config: BaseModelConfig, vector_store: VectorStore,
               model_registry: ModelRegistry, progress: dg.ResourceParam[ProgressReporter],
               instruction_dataset: dict[str, ModelVersion]) -> dg.Output[ModelVersion]:
    """The model everything is fine-tuned from: `TWIN_BASE_MODEL` (hub id or directory), else a small Llama
    trained here, with its own byte-level BPE tokenizer, on the authors' cleaned documents less every
    document their instruction datasets hold out for testing (an evaluation on held-out text must not
    score text the model trained on). An author without a dataset yet holds nothing out."""
    registry = model_registry.registry
    configured = config.model or load_settings().base_model
    held_out = held_out_documents(instruction_dataset)
    try:
        if configured:
            outcome = register_configured_base(registry, configured)
        else:
            with vector_store.read() as client:
                texts = cleaned_texts(client, held_out)
            context.log.info(f"training on {len(texts)} documents; {len(held_out)} held out by "
                             f"{len(instruction_dataset)} authors' datasets")
            outcome = _train_with_progress(context, registry, texts, config, progress)
    except ValueError as error:  # no text, a bad directory, an unknown hub id: the reason, not a trace
        raise dg.Failure(str(error)) from None
    entry = outcome.entry
    context.log.info(f"base model {entry.short} ({'reused' if outcome.reused else 'new'})")
    metadata = {**version_metadata(entry), "reused": outcome.reused, "held_out_documents": len(held_out),
                "parameters": entry.metadata.get("parameters", 0), "source": entry.metadata.get("source", "")}
    if outcome.losses:
        steps, losses = zip(*outcome.losses)
        metadata["final_loss"] = dg.MetadataValue.float(float(losses[-1]))
        metadata["loss_curve"] = dg.MetadataValue.md(
            line_plot_markdown(list(steps), list(losses), "base model training loss", "step", "loss"))
    return dg.Output(entry, metadata=metadata, data_version=dg.DataVersion(entry.version))


def promote_first(context: dg.AssetExecutionContext, registry: Registry, candidate: ModelVersion, channel: str,
                  reason: str) -> dg.MaterializeResult:
    """Promote `candidate` in `channel` when nothing is promoted there yet; what is promoted (by hand, or
    later by the evaluation gate) is left alone. The result names what `channel` serves now."""
    current = registry.promoted(channel)
    if current is None:
        registry.promote(candidate.version, reason, channel)
        context.log.info(f"promoted {candidate.short} in {channel}: {reason}")
    served = registry.promoted(channel)
    return dg.MaterializeResult(
        metadata={"channel": channel, "version": served.version, "promoted_now": current is None,
                  "candidate": candidate.version, "from_scratch": served.from_scratch},
        data_version=dg.DataVersion(served.version))


@dg.asset(kinds={"python"}, **MODELS)
def served_model(context: dg.AssetExecutionContext, model_registry: ModelRegistry,
                 base_model: ModelVersion) -> dg.MaterializeResult:
    """The default channel's promotion, its own step: the base model is promoted when nothing is promoted
    yet. A version promoted by hand (or, later, by the evaluation gate) is left alone."""
    return promote_first(context, model_registry.registry, base_model, DEFAULT_CHANNEL,
                         "first model: nothing was promoted before")


GGUF_CHECK = "logits_agree_with_transformers"
GGUF_CHECK_DESCRIPTION = ("Every GGUF file tokenizes like the transformers model, and its next-token distribution "
                          "on fixed prompts stays within the quantization's mean KL divergence and top-1 agreement "
                          "bounds.")


def gguf_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(GGUF_CHECK, asset=asset, blocking=True, description=GGUF_CHECK_DESCRIPTION)


def gguf_export_result(context: dg.AssetExecutionContext, registry: Registry, source: ModelVersion,
                       config: GgufConfig) -> dg.MaterializeResult:
    """`source` as GGUF files (each a registry version), with the agreement check's result."""
    try:
        export = export_gguf(registry, source, config, context.log.info)
    except Exception as error:  # a failed export registers nothing; the previous files stay in place
        raise dg.Failure(f"GGUF export of {source.short} failed: {error}") from None
    rows = [[a.quantization, e.short, f"{sum(e.files.values()) / 1e6:.1f}", f"{a.max_abs_diff:.4f}",
             f"{a.mean_kl_divergence:.5f}", f"{config.max_mean_kl_divergence[a.quantization]:g}", f"{a.top1_agreement:.0%}",
             f"{config.min_top1_agreement[a.quantization]:.0%}", "yes" if a.tokenization_matches else "NO"]
            for e, a in zip(export.entries, export.agreements)]
    table = markdown_table(["quantization", "version", "MB", "max logit diff", "mean KL", "allowed", "top-1",
                            "required", "same tokens"], rows)
    failing = [a.quantization for a in export.agreements
               if not a.within(config.max_mean_kl_divergence[a.quantization], config.min_top1_agreement[a.quantization])]
    figures = {f"{a.quantization}_{name}": dg.MetadataValue.float(float(value)) for a in export.agreements
               for name, value in (("mean_kl_divergence", a.mean_kl_divergence), ("top1_agreement", a.top1_agreement))}
    check = dg.AssetCheckResult(
        check_name=GGUF_CHECK, passed=not failing, metadata={"agreement": dg.MetadataValue.md(table), **figures},
        description="every file within its thresholds" if not failing else f"outside thresholds: {', '.join(failing)}")
    return dg.MaterializeResult(
        metadata={"source": source.version, "files": dg.MetadataValue.md(table), **figures,
                  **{f"{e.metadata['quantization']}_version": e.version for e in export.entries}},
        check_results=[check], data_version=dg.DataVersion(":".join(e.short for e in export.entries)))


@dg.asset(kinds={"gguf"}, check_specs=[gguf_check_spec("gguf_model")], **MODELS)
def gguf_model(context: dg.AssetExecutionContext, config: GgufConfig, model_registry: ModelRegistry,
               base_model: ModelVersion) -> dg.MaterializeResult:
    """The base model as GGUF files for llama.cpp (f16, Q8_0, Q4_K_M by default), each checked against the
    transformers model's next-token logits on fixed prompts."""
    return gguf_export_result(context, model_registry.registry, base_model, config)


@dg.asset(kinds={"exllamav2"}, group_name="models", tags={"stage": "training", **GPU_ONLY})
def exl2_model(context: dg.AssetExecutionContext, config: Exl2Config, model_registry: ModelRegistry,
               base_model: ModelVersion) -> dg.MaterializeResult:
    """The base model quantized with exllamav2 (EXL2) for fast GPU serving. GPU only: CPU jobs leave it out
    (TWIN_GPU), and run by hand without CUDA it fails saying why."""
    outcome = export_exl2(model_registry.registry, base_model, config)
    if outcome.skipped:
        raise dg.Failure(f"exl2_model needs a GPU: {outcome.skipped}")
    return dg.MaterializeResult(metadata={**version_metadata(outcome.entry),
                                          "bits_per_weight": config.bits_per_weight},
                                data_version=dg.DataVersion(outcome.entry.version))
