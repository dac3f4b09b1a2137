"""Failed runs and failed asset checks, of any severity, posted to Slack once each.

OSS Dagster alerts on failed runs only: a WARN check, or a failed check that blocks nothing, leaves the run
green. So one pass walks the runs that finished since a cursor kept in the instance itself and posts their
failed checks and their failure; the daemon runs it as `alerts_sensor`, and the CLI once after its in-process
runs. Because they share the cursor, a failure is posted once whichever of them sees it first. A run that
failed because a blocking check failed is told in that check's message, not twice.
"""

import dagster as dg
from dagster import DagsterEventType, DagsterRunStatus

from twin_resources.alerts import SlackAlerts

CURSOR = "twin_alerts_last_run"  # the last run whose failures were posted, in the instance's key-value store
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
BATCH = 100
FIGURES_SHOWN = 6


def _cursor(instance: dg.DagsterInstance) -> str | None:
    return instance.run_storage.get_cursor_values({CURSOR}).get(CURSOR)


def start_alerts(instance: dg.DagsterInstance) -> None:
    """The first time: alert from now on, not on the instance's history ("" when it has none)."""
    if _cursor(instance) is None:
        latest = instance.get_run_records(limit=1)
        instance.run_storage.set_cursor_values({CURSOR: latest[0].dagster_run.run_id if latest else ""})


def _run_link(dagster_url: str, run_id: str) -> str:
    return f" <{dagster_url.rstrip('/')}/runs/{run_id}|run {run_id[:8]}>" if dagster_url else f" (run {run_id[:8]})"


def _is_blocking_failure(evaluation) -> bool:
    return not evaluation.passed and evaluation.blocking and evaluation.severity.value == "ERROR"


def check_message(run: dg.DagsterRun, evaluation, dagster_url: str) -> str:
    run_id, author = run.run_id, run.tags.get("dagster/partition", "")
    figures = ", ".join(f"{k} {v.value:.3f}" if isinstance(v.value, float) else f"{k} {v.value}"
                        for k, v in list(evaluation.metadata.items())[:FIGURES_SHOWN])
    blocking = " It blocked what follows it." if _is_blocking_failure(evaluation) else ""
    return (f":warning: Check `{evaluation.check_name}` on `{evaluation.asset_key.to_user_string()}` failed "
            f"({evaluation.severity.value})" + (f" for {author}" if author else "") + ": "
            + (evaluation.description or "no description") + "." + (f" Figures: {figures}." if figures else "")
            + blocking + _run_link(dagster_url, run_id))


def failure_message(instance: dg.DagsterInstance, run: dg.DagsterRun, dagster_url: str) -> str:
    run_id, author = run.run_id, run.tags.get("dagster/partition", "")
    failed_steps = [r.event_log_entry.dagster_event for r in instance.get_records_for_run(
        run_id, of_type=DagsterEventType.STEP_FAILURE).records]
    reason = ""
    if failed_steps:
        step, error = failed_steps[0], failed_steps[0].step_failure_data.error
        while error is not None and error.cause is not None:  # the user's error, not Dagster's wrapper
            error = error.cause
        lines = error.message.strip().splitlines() if error is not None else []
        reason = f" Step `{step.step_key}`: {lines[-1][:300] if lines else 'see its logs'}."
    return (f":x: Run of `{run.job_name}` failed" + (f" for {author}" if author else "") + "." + reason
            + _run_link(dagster_url, run_id))


def run_alerts(instance: dg.DagsterInstance, run: dg.DagsterRun, dagster_url: str) -> list[str]:
    """A finished run's failed checks, then its failure unless a blocking check's message already tells it."""
    evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records]
    messages = [check_message(run, e, dagster_url) for e in evaluations if not e.passed]
    if run.status == DagsterRunStatus.FAILURE and not any(_is_blocking_failure(e) for e in evaluations):
        messages.append(failure_message(instance, run, dagster_url))
    return messages


def post_new_alerts(instance: dg.DagsterInstance, alerts: SlackAlerts, dagster_url: str = "",
                    log=print) -> int:
    """Post the failures of the runs that finished since the cursor, in order, and return how many alerts went
    out. A run still going holds the cursor back until it ends, so nothing is skipped."""
    cursor = _cursor(instance)
    if cursor is None:
        start_alerts(instance)
        return 0
    sent = 0
    for record in instance.get_run_records(limit=BATCH, ascending=True, cursor=cursor or None):
        run = record.dagster_run
        if run.status not in FINISHED:
            break
        messages = run_alerts(instance, run, dagster_url)
        # the cursor moves first: a Slack that is down loses an alert (it is logged), it never repeats one
        instance.run_storage.set_cursor_values({CURSOR: run.run_id})
        for message in messages:
            posted = alerts.post(message)
            log(f"alert {'sent to ' + alerts.destination if posted else 'logged'}: {message}")
        sent += len(messages)
    return sent


def build_alerts_sensor(dagster_url: str = "") -> dg.SensorDefinition:
    @dg.sensor(name="alerts_sensor", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Failed runs and failed asset checks (any severity) to Slack, each once.")
    def alerts_sensor(context: dg.SensorEvaluationContext, alerts: SlackAlerts) -> dg.SkipReason:
        posted = post_new_alerts(context.instance, alerts, dagster_url, log=context.log.info)
        return dg.SkipReason(f"{posted} alerts posted to {alerts.destination}")

    return alerts_sensor
