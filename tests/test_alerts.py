"""Alerts: failed checks of any severity and failed runs, to Slack's Web API or a webhook (a local receiver
stands in for Slack), each once, from the daemon's sensor or after the CLI's runs; without Slack, logged."""

import dagster as dg

from tests.fixtures.slack_receiver import TOKEN, WEBHOOK_PATH, slack_receiver
from twin_assets.alerts import build_alerts_sensor, post_new_alerts, start_alerts
from twin_resources.alerts import SlackAlerts


@dg.asset(check_specs=[dg.AssetCheckSpec("enough_rows", asset="thin_table", description="at least 10 rows")])
def thin_table():
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(
        check_name="enough_rows", passed=False, severity=dg.AssetCheckSeverity.WARN, description="3 rows",
        metadata={"rows": 3})])


@dg.asset
def broken_table():
    raise ValueError("the source table is gone")


def materialize(instance, asset) -> dg.ExecuteInProcessResult:
    return dg.materialize([asset], instance=instance, raise_on_error=False)


def test_a_warning_check_and_a_failed_run_reach_a_webhook_once_each_from_the_sensor(instance):
    old = materialize(instance, broken_table)  # before alerts existed: history is not posted
    start_alerts(instance)
    warned, failed = materialize(instance, thin_table), materialize(instance, broken_table)
    assert warned.success and not failed.success and not old.success  # a WARN check leaves the run green
    with slack_receiver() as slack:
        alerts = SlackAlerts(webhook_url=slack.url + WEBHOOK_PATH)
        sensor = build_alerts_sensor("http://dagster.example:3000")
        for _ in range(2):  # a second tick finds nothing new
            sensor(dg.build_sensor_context(instance=instance, resources={"alerts": alerts}))
    texts = [m["text"] for m in slack.messages]
    assert len(texts) == 2 and all(m["via"] == "webhook" for m in slack.messages)
    assert "`enough_rows` on `thin_table` failed (WARN): 3 rows. Figures: rows 3." in texts[0]
    assert "Run of `__ephemeral_asset_job__` failed." in texts[1] and "the source table is gone" in texts[1]
    assert f"dagster.example:3000/runs/{failed.run_id}" in texts[1] and old.run_id not in texts[1]


def test_the_bot_token_path_and_no_slack_at_all(instance):
    start_alerts(instance)
    materialize(instance, broken_table)
    with slack_receiver() as slack:
        wrong = SlackAlerts(token="xoxb-wrong", channel="#twin", api_url=f"{slack.url}/api/")
        logged = []
        assert post_new_alerts(instance, wrong, log=logged.append) == 1  # Slack refused it: logged, not retried
        assert slack.messages == [] and logged[0].startswith("alert logged: :x: Run of")
        materialize(instance, broken_table)
        assert post_new_alerts(instance, SlackAlerts(token=TOKEN, channel="#twin", api_url=f"{slack.url}/api")) == 1
    assert [m["channel"] for m in slack.messages] == ["#twin"]
    materialize(instance, thin_table)
    quiet = []
    assert post_new_alerts(instance, SlackAlerts(), log=quiet.append) == 1
    assert quiet[0].startswith("alert logged: :warning: Check `enough_rows`")
