"""Notices links added to the registry (by the CLI, the web page or an import) and crawls their authors."""

import dagster as dg

from twin_assets.partitions import authors
from twin_resources import Warehouse
from twin_resources.domain.documents import LinkStatus


def build_new_links_sensor(job) -> dg.SensorDefinition:
    @dg.sensor(name="new_links_sensor", job=job, minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Requests a crawl of an author's partition when links are added for them.")
    def new_links_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse) -> dg.SensorResult:
        new_links = warehouse.links(statuses=(LinkStatus.PENDING,), added_after=context.cursor or None)
        if not new_links:
            return dg.SensorResult(skip_reason="no new links")
        keys_by_author = {user.id: user.key for user in warehouse.users()}
        author_keys = sorted({keys_by_author[link.author_id] for link in new_links if link.author_id in keys_by_author})
        known = set(context.instance.get_dynamic_partitions(authors.name))
        cursor = max(link.to_mongo()["added_at"] for link in new_links)  # compared as stored
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"{key}@{cursor}", partition_key=key) for key in author_keys],
            dynamic_partitions_requests=[authors.build_add_request([k for k in author_keys if k not in known])],
            cursor=cursor,
        )

    return new_links_sensor
