"""Continuous training once end to end, under a real Dagster daemon: new writing starts the author's datasets
(`new_writing_sensor`), declarative automation trains and evaluates the new candidate, and the promotion
follows only a gate that passed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from tests.fixtures.chain import prepared_home
from tests.fixtures.tiny_models import tiny_base
from twin_resources.domain.documents import UserDocument

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 600
INSTANCE = "telemetry:\n  enabled: false\nconcurrency:\n  runs:\n    max_concurrent_runs: 1\n"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def targets(run: dg.DagsterRun) -> set[str]:
    return {key.path[-1] for key in run.asset_selection or ()}


def finished(instance: dg.DagsterInstance, asset: str) -> list[dg.DagsterRun]:
    return [r for r in instance.get_runs() if asset in targets(r) and r.status in FINISHED]


@pytest.mark.timeout(DEADLINE_S + 120)
def test_under_the_daemon_new_writing_becomes_an_evaluated_twin_promoted_only_behind_its_gate(
        twin_home, warehouse, embedder, monkeypatch):
    dagster_home = twin_home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(INSTANCE)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    author = UserDocument.from_full_name("Ada Quill")
    warehouse.upsert_user(author)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        resources = prepared_home(twin_home, warehouse, author, instance, embedder, held_out=2)
        registry = resources["model_registry"].registry
        base = tiny_base(registry).entry  # a base model is there: the chain trains on it
        registry.record_output("base_model", None, base.version)
        registry.promote(base.version, "first model")
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="base_model"))
        environment = {**os.environ, "TWIN_RETRAIN_MIN_SAMPLES": "1", "TWIN_RETRAIN_COOLDOWN_HOURS": "0",
                       "TWIN_PROMOTION": "auto", "PYTHONPATH": str(ROOT)}
        log = (twin_home / "daemon.log").open("w")
        daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w",
                                   str(ROOT / "workspace.yaml")], cwd=ROOT, env=environment,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline and not finished(instance, "eval_report"):
                time.sleep(3)
            [evaluation] = finished(instance, "eval_report")
            # the evaluation's gate decides; a passed gate is followed by the promotion, a refused one never
            [passed] = [e.dagster_event.event_specific_data.passed for e in instance.all_logs(evaluation.run_id)
                        if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
                        and e.dagster_event.event_specific_data.check_name == "gate"]
            while passed and time.monotonic() < deadline and not finished(instance, "promoted_model"):
                time.sleep(3)
            promoted = registry.promoted(author.key)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=60)
        runs = instance.get_runs()
        [datasets] = [r for r in runs if r.job_name == "datasets_job"]
        assert datasets.status == dg.DagsterRunStatus.SUCCESS
        assert "no dataset yet" in datasets.tags["twin/reason"]  # started by new_writing_sensor
        automated = [r for r in runs if r.tags.get("dagster/from_automation_condition") == "true"]
        assert evaluation.run_id in {r.run_id for r in automated}
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in automated if r.run_id != evaluation.run_id)
        assert {"sft_model", "dpo_model", "eval_report"} <= {a for r in automated for a in targets(r)}
        candidate = registry.output_of("dpo_model", author.key)
        if passed:
            assert [r.status for r in finished(instance, "promoted_model")] == [dg.DagsterRunStatus.SUCCESS]
            assert promoted is not None and promoted.version == candidate.version
        else:
            assert evaluation.status == dg.DagsterRunStatus.FAILURE and promoted is None
            assert not finished(instance, "promoted_model")
