"""`eval_report` scores the author's fine-tuned candidate against what serves the author now and the base
model, with the gate as a blocking check; `promoted_model` promotes a candidate that passed it (or, with
TWIN_PROMOTION=manual, leaves it waiting for a person's approval)."""

from contextlib import nullcontext
from typing import Any

import dagster as dg
from pydantic import Field

from twin_assets.datasets.build import read_instruction_samples
from twin_assets.evaluation.report import EvalReport, EvalSettings, Judging, evaluate
from twin_assets.evaluation.scoring import DESCRIPTIONS, METRICS
from twin_assets.metadata import markdown_table
from twin_assets.partitions import authors
from twin_assets.plots import bar_chart_markdown
from twin_resources.chunk_index import ChunkIndex
from twin_resources.domain.documents import Category
from twin_resources.domain.models import ModelVersion
from twin_resources.domain.search import Hit
from twin_resources.embedding import Embedder
from twin_resources.judge import Judge
from twin_resources.model_registry import ModelRegistry, RegistryError
from twin_resources.settings import load_settings
from twin_resources.vector_store import VectorStore
from twin_resources.warehouse import Warehouse

EVALUATION = dict(partitions_def=authors, group_name="evaluation", tags={"stage": "evaluation"})
# Automation: a new candidate is evaluated (other authors' new datasets do not re-open a decided one), and
# promoted only when its gate passed.
EVALUATE_NEW_CANDIDATES = dg.AutomationCondition.eager().allow(dg.AssetSelection.assets("dpo_model"))
PROMOTE_WHEN_GATE_PASSED = (dg.AutomationCondition.eager()
                            & dg.AutomationCondition.all_deps_blocking_checks_passed())
GATE = "gate"
GATE_DESCRIPTION = ("The candidate beats the model that serves the author now on held-out likelihood by the "
                    "margin, and regresses no other metric beyond its tolerance; a failure stops its promotion.")
SAMPLES_SHOWN = 5
PASSAGES = 5  # per RAG prompt, as the server retrieves by default


class EvalConfig(dg.Config):
    prompts: int = Field(20, description="test requests each model answers (the likelihood uses every one)")
    min_new_tokens: int = Field(16, description="a generated answer is at least this long (a small model would "
                                                "often end at once)")
    max_new_tokens: int = Field(96, description="the length of a generated answer")
    margin: float = Field(0.01, description="how much lower the candidate's held-out NLL per token must be than "
                                            "the author's promoted twin's")
    first_twin_tolerance: float = Field(0.25, description="an author's first twin, held to the base model: how much "
                                                          "higher its held-out NLL per token may be")
    tolerances: dict[str, float] = Field(
        default_factory=lambda: {"similarity": 0.05, "rouge_l": 0.05, "voice": 0.10},
        description="how far each other metric may fall below the served model's")


def _figure(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def report_metadata(report: EvalReport, judge: str) -> dict[str, Any]:
    labels = {role: f"{role} {version[:12]}" for role, version in report.versions.items()}
    # a metric no model has a figure for (the judge's, with no judge) has no column
    shown = [m for m in METRICS if any(report.metrics(role)[m] is not None for role in report.versions)]
    rows = [[labels[role], *(_figure(report.metrics(role)[m]) for m in shown)] for role in report.versions]
    metadata: dict[str, Any] = {
        "table": dg.MetadataValue.md(markdown_table(["model", *shown], rows) + "\n\n" + "\n".join(
            f"- **{m}**: {DESCRIPTIONS[m]}" for m in shown)),
        "judge": judge, "judge_failures": len(report.judge_failures),
        "gate": "passed" if report.decision.passed else "refused", "decision": report.decision.summary,
        **{f"{role}_version": version for role, version in report.versions.items()},
        "test_samples": len(report.test),
        "voice_separation_auc": dg.MetadataValue.float(report.voice_separation) if report.voice_separation is not None
        else "not measured (no other text to tell the author from)",
    }
    for metric in METRICS:
        values = {labels[role]: report.metrics(role)[metric] for role in report.versions}
        if all(v is not None for v in values.values()):
            metadata[f"{metric}_chart"] = dg.MetadataValue.md(bar_chart_markdown(values, metric, metric))
        for role in report.versions:
            if (value := report.metrics(role)[metric]) is not None:
                metadata[f"{role}_{metric}"] = dg.MetadataValue.float(value)
    if report.judge_failures:
        metadata["judge_failed_on"] = dg.MetadataValue.md("\n".join(f"- {f}" for f in report.judge_failures[:10]))
    answers = {role: report.figures[version].answers for role, version in report.versions.items()}
    metadata["answers"] = dg.MetadataValue.md(markdown_table(
        ["test request", "the author", *report.versions],
        [[s.instruction[:80], s.answer[:160], *(answers[role][i][:160] if i < len(answers[role]) else ""
                                                 for role in report.versions)]
         for i, s in enumerate(report.test[:SAMPLES_SHOWN])]))
    return metadata


def author_retrieval(index: ChunkIndex, embed, author_id: str, k: int = PASSAGES):
    """A request's top passages of the author's, over every category, as the server searches without a
    category in the request (no query expansion, no reranking)."""
    def retrieve(request: str) -> list[Hit]:
        vector = embed([request])[0]
        hits = [hit for category in Category for hit in index.search(vector, category, k, author_id)]
        return sorted(hits, key=lambda h: -h.score)[:k]

    return retrieve


@dg.asset(kinds={"python"}, check_specs=[dg.AssetCheckSpec(GATE, asset="eval_report", blocking=True,
                                                           description=GATE_DESCRIPTION)],
          ins={"instruction_dataset": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
          automation_condition=EVALUATE_NEW_CANDIDATES, **EVALUATION)
def eval_report(context: dg.AssetExecutionContext, config: EvalConfig, model_registry: ModelRegistry,
                embedder: Embedder, judge: Judge, warehouse: Warehouse, vector_store: VectorStore,
                dpo_model: ModelVersion, base_model: ModelVersion,
                instruction_dataset: dict[str, ModelVersion]) -> dg.MaterializeResult:
    """The candidate (the author's DPO model), the model that serves the author now and the base model on the
    author's held-out test split: held-out likelihood, similarity and ROUGE-L of greedy answers to the
    author's, and a voice score; with a judge configured (TWIN_JUDGE_*), its accuracy and style grades and
    opik's RAG metrics on answers grounded in the author's retrieved passages. The gate (a blocking check)
    decides whether the candidate may be promoted; its verdict is also written on the candidate's version."""
    registry, author = model_registry.registry, context.partition_key
    if author not in instruction_dataset:
        raise dg.Failure(f"no instruction dataset for {author}: build it first (twin datasets build)")
    own = read_instruction_samples(instruction_dataset[author].path)
    others = {"train": [], "test": []}
    for key, dataset in instruction_dataset.items():
        if key != author:
            for side, samples in read_instruction_samples(dataset.path).items():
                others[side] += samples
    served = registry.get(registry.serving_version(author) or base_model.version)
    settings = EvalSettings(config.prompts, config.min_new_tokens, config.max_new_tokens, config.margin,
                            dict(config.tolerances), config.first_twin_tolerance)
    # the judge's RAG prompts search the author's passages as published now
    with vector_store.read() if judge.configured else nullcontext() as client:
        user = warehouse.require_user(author)
        judging = None if client is None else Judging(
            judge, author_retrieval(ChunkIndex(client), embedder.embed, user.id), user.full_name)
        report = evaluate(registry, dpo_model, served, base_model, own, others, embedder.embed, settings,
                          first_twin=registry.promoted(author) is None, progress=context.log.info, judging=judging)
    decision = report.decision
    registry.annotate(dpo_model.version, {
        "gate": "passed" if decision.passed else "failed", "gate_reason": decision.summary,
        **{f"eval_{m}": v for m, v in report.metrics("candidate").items() if v is not None},
        **{f"base_eval_{m}": v for m, v in report.metrics("base").items() if v is not None}})
    context.log.info(f"gate {'passed' if decision.passed else 'refused'}: {decision.summary}")
    return dg.MaterializeResult(
        metadata=report_metadata(report, f"{judge.model} at {judge.base_url}" if judge.configured
                                 else "not configured (TWIN_JUDGE_BASE_URL, TWIN_JUDGE_MODEL)"),
        check_results=[dg.AssetCheckResult(check_name=GATE, passed=decision.passed,
                                           severity=dg.AssetCheckSeverity.ERROR,
                                           description=decision.summary,
                                           metadata={m: dg.MetadataValue.float(v)
                                                     for m, v in report.metrics("candidate").items() if v is not None})])


@dg.asset(kinds={"python"}, deps=[eval_report], automation_condition=PROMOTE_WHEN_GATE_PASSED, **EVALUATION)
def promoted_model(context: dg.AssetExecutionContext, model_registry: ModelRegistry,
                   dpo_model: ModelVersion) -> dg.MaterializeResult:
    """The author's channel: the candidate that passed its gate is promoted there, with the evaluation's
    figures as the reason (TWIN_PROMOTION=manual: it waits for `twin models approve`). `twin serve` picks the
    promotion up without a restart."""
    registry, channel = model_registry.registry, context.partition_key
    candidate = registry.get(dpo_model.version)  # the manifest as the gate left it
    if candidate.metadata.get("gate") != "passed":
        raise dg.Failure(f"{candidate.short} has not passed its evaluation gate: it is never served")
    current = registry.promoted(channel)
    mode = load_settings().promotion
    reason = f"passed its evaluation gate: {candidate.metadata.get('gate_reason', '')}"
    if current is not None and current.version == candidate.version:
        action = "already promoted"
    elif mode == "manual":
        registry.propose(candidate.version, reason, channel)
        action = "waiting for approval"
        context.log.info(f"{candidate.short} waits for approval: twin models approve {candidate.short} "
                         f"--author {channel}")
    else:
        try:
            registry.promote(candidate.version, reason, channel)
        except RegistryError as error:
            raise dg.Failure(str(error)) from None
        action = "promoted now"
    served = registry.promoted(channel)
    return dg.MaterializeResult(
        metadata={"channel": channel, "version": served.version if served else "", "candidate": candidate.version,
                  "action": action, "promoted_now": action == "promoted now", "promotion": mode,
                  "from_scratch": served.from_scratch if served else True},
        data_version=dg.DataVersion(served.version if served else candidate.version))
