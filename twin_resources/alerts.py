"""Alerts to Slack: dagster-slack's `SlackResource` (a bot token and a channel, through the Web API at a
configurable URL) or an incoming webhook. With neither set, an alert is logged and not sent."""

import logging

from dagster_slack import SlackResource
from pydantic import Field
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

log = logging.getLogger(__name__)


class SlackAlerts(SlackResource):
    token: str = Field("", description="a bot token (SLACK_BOT_TOKEN); empty: the webhook, or no Slack")
    channel: str = Field("", description="where the bot posts (TWIN_SLACK_CHANNEL)")
    api_url: str = Field("https://slack.com/api/", description="Slack's Web API (TWIN_SLACK_API_URL)")
    webhook_url: str = Field("", description="an incoming webhook (TWIN_SLACK_WEBHOOK_URL), used when set")

    def get_client(self) -> WebClient:
        return WebClient(self.token, base_url=self.api_url if self.api_url.endswith("/") else self.api_url + "/")

    @property
    def destination(self) -> str:
        if self.webhook_url:
            return "a Slack webhook"
        if self.token and self.channel:
            return f"Slack channel {self.channel}"
        return "the log only (no SLACK_BOT_TOKEN and TWIN_SLACK_CHANNEL, nor TWIN_SLACK_WEBHOOK_URL)"

    def post(self, text: str) -> bool:
        """Send `text`; True when Slack took it. A Slack that is down loses this alert, not the caller's work."""
        try:
            if self.webhook_url:
                response = WebhookClient(self.webhook_url, timeout=15).send(text=text)
                sent = response.status_code == 200
            elif self.token and self.channel:
                sent = bool(self.get_client().chat_postMessage(channel=self.channel, text=text).get("ok"))
            else:
                return False  # the caller logs it
        except Exception as error:  # slack_sdk's errors and the network's: the alert is logged instead
            log.warning("alert not sent to %s (%s): %s", self.destination, error, text)
            return False
        return sent
