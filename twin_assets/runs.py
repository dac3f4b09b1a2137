"""Running a job of the graph in-process for authors' partitions, as the CLI and the demo do."""

from collections.abc import Callable

import dagster as dg

from twin_assets.alerts import post_new_alerts, start_alerts
from twin_assets.dead_runs import fail_dead_runs
from twin_assets.definitions import build_definitions
from twin_assets.evaluation.assets import GATE
from twin_assets.instance import local_instance
from twin_assets.partitions import authors
from twin_resources import resources_from_env
from twin_resources.configured import slack_alerts
from twin_resources.domain.documents import UserDocument
from twin_resources.progress import TqdmProgress
from twin_resources.settings import load_settings

# The progress bar tells the story in a terminal; warnings (a failed link) and errors still print.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_job_for_authors(job_name: str, authors_to_run: list[UserDocument], run_config: dict | None = None,
                        report: Callable[[str], None] = print,
                        asset_selection: list[dg.AssetKey] | None = None, refusal_fails: bool = True) -> bool:
    """Run `job_name` (only `asset_selection` of it, when given) once per author with a progress bar; report
    one line each; True if all succeeded (or, with `refusal_fails` false, failed only because the evaluation
    gate refused a candidate: what was served stays served)."""
    instance = local_instance()
    start_alerts(instance)
    for run_id in fail_dead_runs(instance):
        report(f"run {run_id[:8]} had died (its process is gone): marked failed")
    job = build_definitions({**resources_from_env(), "progress": TqdmProgress()}).resolve_job_def(job_name)
    all_passed = True
    for author in authors_to_run:
        if not instance.has_dynamic_partition(authors.name, author.key):
            instance.add_dynamic_partitions(authors.name, [author.key])
        result = job.execute_in_process(partition_key=author.key, instance=instance, raise_on_error=False,
                                        run_config={**QUIET_CONSOLE, **(run_config or {})},
                                        asset_selection=asset_selection)
        all_passed &= result.success or (not refusal_fails and gate_refusal(result) is not None)
        report(summarize_run(author, result))
        if table := evaluation_table(result):
            report(table)
    # as the daemon's alerts_sensor would (they share a cursor: each failure is posted once)
    post_new_alerts(instance, slack_alerts(), load_settings().serve.dagster_url, log=report)
    return all_passed


def gate_refusal(result: dg.ExecuteInProcessResult) -> str | None:
    """Why the evaluation gate refused the run's candidate, if it did."""
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if evaluation.check_name == GATE and not evaluation.passed:
                return evaluation.description or "see the eval_report"
    return None


def evaluation_table(result: dg.ExecuteInProcessResult) -> str | None:
    """The evaluation's table of figures (Markdown, without the metrics' descriptions), when the run made one."""
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key.path[-1] == "eval_report" and "table" in materialization.metadata:
            return materialization.metadata["table"].value.split("\n\n")[0]
    return None


def summarize_run(author: UserDocument, result: dg.ExecuteInProcessResult) -> str:
    """One line: what each asset stored, or why the run failed."""
    if (refusal := gate_refusal(result)) is not None:
        return f"{author.full_name}: run {result.run_id[:8]}: the evaluation gate refused the candidate ({refusal}); " \
               "the promoted model stays"
    if not result.success:
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        reason = failure.step_failure_data.error.message.strip().splitlines()[-1] if failure else "see its logs"
        return f"{author.full_name}: run {result.run_id[:8]} failed: {reason}"
    parts, failed = [], 0
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        meta = {key: value.value for key, value in materialization.metadata.items()}
        name = materialization.asset_key.to_user_string()
        if "stored" in meta:
            parts.append(f"{name} {meta['stored']} ({meta['new']} new, {meta['updated']} updated)")
            failed += meta.get("failed_links", 0)
        elif "train_samples" in meta or "train_triples" in meta:
            train, test = (meta["train_samples"], meta["test_samples"]) if "train_samples" in meta \
                else (meta["train_triples"], meta["test_triples"])
            parts.append(f"{name} {meta['version'][:12]} ({train} train, {test} test)")
        elif "gate" in meta:
            parts.append(f"{name} gate {meta['gate']} ({meta['decision']})")
        elif "promoted_now" in meta:
            parts.append(f"{name} {meta['version'][:12]}" + (f" ({meta['action']})" if meta.get("action")
                                                              else " (promoted now)" if meta["promoted_now"] else ""))
        elif "version" in meta:
            loss = f" (eval loss {meta['eval_loss']:.3f})" if isinstance(meta.get("eval_loss"), float) else ""
            parts.append(f"{name} {meta['version'][:12]}{loss}")
        elif exports := {k.removesuffix("_version"): v for k, v in meta.items() if k.endswith("_version")}:
            parts.append(f"{name} " + ", ".join(f"{kind} {version[:12]}" for kind, version in exports.items()))
    line = f"{author.full_name}: " + "; ".join(parts)
    return line + (f"; {failed} links failed (see: twin links list)" if failed else "")
