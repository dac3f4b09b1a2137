"""Continuous training: new writing starts an author's datasets (enough new samples, or enough time with
something new, once per cool-down), and declarative automation carries the chain from there: SFT, DPO, the
evaluation of a new candidate, and a promotion only behind a gate that passed."""

import json

import dagster as dg

from tests.fixtures.chain import run
from twin_assets.datasets.assets import instruction_dataset
from twin_assets.datasets.sensors import NewWriting, build_new_writing_sensor, due_reason
from twin_assets.definitions import build_definitions
from twin_assets.features.assets import cleaned_documents
from twin_resources.domain.documents import ArticleContent, ArticleDocument
from twin_resources.settings import load_settings

SENSOR_RESOURCES = ("warehouse", "vector_store", "model_registry")


def settings(monkeypatch, **values):
    for name, value in values.items():
        monkeypatch.setenv(f"TWIN_RETRAIN_{name.upper()}", str(value))
    return load_settings()


def test_new_writing_is_due_by_count_or_by_age_and_never_within_the_cool_down(monkeypatch):
    rules = settings(monkeypatch, min_samples=10, after_hours=24, cooldown_hours=6)
    some = NewWriting(["a", "b"], 4, hours_since_dataset=2.0)
    assert due_reason(NewWriting([], 0, 2.0), None, rules) == ""  # nothing new: nothing to do, however old
    assert due_reason(some, None, rules) == ""  # too few samples, too recent
    assert "at least 10" in due_reason(NewWriting(["a"], 12, 2.0), None, rules)
    assert "hours after the last dataset" in due_reason(NewWriting(["a"], 4, 30.0), None, rules)
    assert "no dataset yet" in due_reason(NewWriting(["a"], 1, None), None, rules)
    assert due_reason(NewWriting(["a"], 12, 2.0), 5.0, rules) == ""  # the cool-down holds it back
    assert due_reason(NewWriting(["a"], 12, 2.0), 7.0, rules) != ""


def evaluate_sensor(resources, instance, cursor=None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources={k: resources[k] for k in SENSOR_RESOURCES}) as context:
        return build_new_writing_sensor()(context)


def test_the_sensor_builds_datasets_for_new_writing_once_and_again_when_enough_has_arrived(
        trained_home, author, instance, warehouse, monkeypatch):
    settings(monkeypatch, min_samples=1, cooldown_hours=0)
    first = evaluate_sensor(trained_home, instance)
    assert [(r.partition_key, r.job_name) for r in first.run_requests] == [(author.key, None)]
    assert "no dataset yet" in first.run_requests[0].tags["twin/reason"]

    result, _, failure = run(trained_home, author, instance, [instruction_dataset])
    assert result.success, failure
    built = evaluate_sensor(trained_home, instance, first.cursor)
    assert not built.run_requests and built.skip_reason.skip_message == "no new writing"

    warehouse.upsert_document(ArticleDocument.create(
        link="https://blog.example.com/a-new-note-on-budgets", author=author, platform="blog",
        content=ArticleContent(title="A new note on budgets", body=" ".join(f"Stage {i} of a request gets a budget of its own." for i in range(60)))))
    assert dg.materialize([cleaned_documents], partition_key=author.key, instance=instance,
                          resources={k: trained_home[k] for k in ("warehouse", "vector_store")}).success
    settings(monkeypatch, min_samples=1000, cooldown_hours=0)
    waiting = evaluate_sensor(trained_home, instance, built.cursor)
    assert not waiting.run_requests and "new samples" in waiting.skip_reason.skip_message
    settings(monkeypatch, min_samples=1, cooldown_hours=0)
    due = evaluate_sensor(trained_home, instance, built.cursor)
    assert [r.partition_key for r in due.run_requests] == [author.key]
    assert "1 new documents" in due.run_requests[0].tags["twin/reason"]
    settings(monkeypatch, min_samples=1, cooldown_hours=6)
    assert not evaluate_sensor(trained_home, instance, due.cursor).run_requests  # cooling down
    assert json.loads(due.cursor)[author.key]["documents"]  # what was asked for is remembered


def materialized(instance, name: str, partition: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=name, partition=partition))


def gate(instance, partition: str, passed: bool) -> None:
    """The gate's verdict on the partition's latest evaluation."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    [record] = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey("eval_report"), asset_partitions=[partition]), limit=1).records
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("eval_report"), check_name="gate", passed=passed, blocking=True, partition=partition,
        severity=dg.AssetCheckSeverity.ERROR, target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp)))


def requested(result, name: str) -> set[str]:
    return result.get_requested_partitions(dg.AssetKey(name))


def test_automation_trains_evaluates_and_promotes_only_behind_a_passed_gate(trained_home, author, instance):
    defs = build_definitions({**trained_home, "http": None}, gpu=False)
    other = "maxime-labonne"
    instance.add_dynamic_partitions("authors", [other])
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="base_model"))
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    for key in (author.key, other):
        for name in ("instruction_dataset", "preference_dataset"):
            materialized(instance, name, key)
    datasets = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    # one tick asks for the chain up to the evaluation (one run per author); the promotion waits for the gate
    chain = ("sft_model", "dpo_model", "twin_gguf", "eval_report")
    assert {name: requested(datasets, name) for name in chain} == {name: {author.key, other} for name in chain}
    assert requested(datasets, "promoted_model") == set()

    for key in (author.key, other):
        for name in chain:
            materialized(instance, name, key)
    gate(instance, author.key, passed=False)
    refused = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=datasets.cursor)
    assert author.key not in requested(refused, "promoted_model")  # a refused candidate is never promoted
    assert requested(refused, "eval_report") == set()
    gate(instance, other, passed=True)
    decided = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=refused.cursor)
    assert other in requested(decided, "promoted_model")

    materialized(instance, "instruction_dataset", other)  # another author's data re-opens no decided evaluation
    elsewhere = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=decided.cursor)
    assert author.key not in requested(elsewhere, "eval_report")
    materialized(instance, "dpo_model", author.key)  # a new candidate is evaluated
    candidate = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=elsewhere.cursor)
    assert author.key in requested(candidate, "eval_report")


def test_trainers_share_one_pool():
    from twin_assets.evaluation.assets import eval_report
    from twin_assets.training.assets import dpo_model, sft_model

    assert (sft_model.op.pool, dpo_model.op.pool, eval_report.op.pool) == ("trainer", "trainer", None)
