"""Runs whose process is gone: a `kill -9` or a crash leaves them STARTED for ever, and with one run at a
time (dagster.yaml) the daemon's queue would then never start another. Dagster's default run launcher
cannot check a run worker's health, so on one machine we check the process each run recorded itself:
before the CLI runs a job, and from a sensor in the daemon."""

import os
import time
from pathlib import Path

import dagster as dg

ALIVE = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)


def process_started_at(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    if fields[0] == "Z":  # a zombie has finished; only its exit status is left
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def run_process(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid that started the run and when it did, from the run's own RUN_START event."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    if not records or records[0].event_log_entry.dagster_event is None:
        return None
    entry = records[0].event_log_entry
    return entry.dagster_event.pid, entry.timestamp


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed, with the reason, every unfinished run whose process no longer exists (or is another
    program now, its pid reused). Returns their ids."""
    failed = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=list(ALIVE))):
        started = run_process(instance, run.run_id)
        if started is None:
            continue  # not started yet: Dagster's own start timeout is for those
        pid, at = started
        born = process_started_at(pid)
        if born is not None and born <= at + 1:
            continue  # still running
        instance.report_run_failed(run, f"its process (pid {pid}) is gone: killed or crashed; marked failed so "
                                        "the queue moves on")
        failed.append(run.run_id)
    return failed


def build_dead_runs_sensor() -> dg.SensorDefinition:
    @dg.sensor(name="dead_runs_sensor", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Fails runs whose process has died (kill -9, a crash) so that the one-at-a-time "
                           "queue moves on. Local deployments only: in a cluster, run monitoring does this.")
    def dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        failed = fail_dead_runs(context.instance)
        return dg.SkipReason(f"marked {len(failed)} dead runs failed: {', '.join(failed)}" if failed
                             else f"no dead runs ({time.strftime('%H:%M:%S')})")

    return dead_runs_sensor
