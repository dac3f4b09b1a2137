"""Continuous training starts here. `new_writing_sensor` builds an author's datasets again once enough new
writing has arrived, or enough time has passed with something new, at most once per cool-down; declarative
automation carries on from the datasets (SFT, DPO, the evaluation and its gate, the promotion)."""

import json
import time
from dataclasses import dataclass

import dagster as dg

from twin_assets.datasets.assets import documents_in
from twin_assets.datasets.build import read_card
from twin_assets.datasets.extracts import cut_extracts
from twin_assets.datasets.split import SIDES
from twin_assets.partitions import authors
from twin_resources.domain.models import RegistryError
from twin_resources.model_registry import ModelRegistry, Registry
from twin_resources.settings import TwinSettings, load_settings
from twin_resources.vector_store import VectorStore
from twin_resources.warehouse import Warehouse, WarehouseError

HOUR = 3600.0


@dataclass(frozen=True)
class NewWriting:
    """What an author wrote that no dataset of theirs holds yet."""

    documents: list[str]  # ids
    samples: int  # the extracts those documents make (before curation)
    hours_since_dataset: float | None  # None: the author has no dataset yet


def dataset_documents(registry: Registry, author_key: str) -> tuple[set[str], float | None]:
    """The documents the author's last instruction dataset holds, and that dataset's age in hours."""
    try:
        last = registry.output_of("instruction_dataset", author_key)
    except RegistryError:
        return set(), None
    card = read_card(last.path)
    return {d for side in SIDES for d in card["documents"][side]}, (time.time() - last.created_at.timestamp()) / HOUR


def due_reason(new: NewWriting, hours_since_request: float | None, settings: TwinSettings) -> str:
    """Why the author's chain should start now, or "" when it should not."""
    if not new.documents:
        return ""
    if hours_since_request is not None and hours_since_request < settings.retrain_cooldown_hours:
        return ""
    what = f"{new.samples} new samples from {len(new.documents)} new documents"
    if new.hours_since_dataset is None:
        return f"{what}, and no dataset yet"
    if new.samples >= settings.retrain_min_samples:
        return f"{what} (at least {settings.retrain_min_samples})"
    if new.hours_since_dataset >= settings.retrain_after_hours:
        return f"{what}, {new.hours_since_dataset:.0f} hours after the last dataset"
    return ""


def build_new_writing_sensor() -> dg.SensorDefinition:
    @dg.sensor(name="new_writing_sensor", job_name="datasets_job", minimum_interval_seconds=300,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Builds an author's datasets again when enough new writing has arrived (or enough time "
                           "has passed with something new), at most once per cool-down; automation trains, "
                           "evaluates and promotes from there.")
    def new_writing_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse, vector_store: VectorStore,
                           model_registry: ModelRegistry) -> dg.SensorResult:
        """A run of datasets_job for each author whose new writing is due (see `due_reason`)."""
        settings, registry, now = load_settings(), model_registry.registry, time.time()
        cursor = json.loads(context.cursor) if context.cursor else {}  # author -> {at, documents} of the last request
        requests, waiting = [], []
        with vector_store.read() as client:  # one copy of the store for every author
            for key in context.instance.get_dynamic_partitions(authors.name):
                try:
                    author = warehouse.require_user(key)
                except WarehouseError:
                    continue
                held, age = dataset_documents(registry, key)
                seen = held | set(cursor.get(key, {}).get("documents", []))
                documents = [d for d in documents_in(client, author) if d.id not in seen]
                new = NewWriting([d.id for d in documents], sum(len(cut_extracts(d.id, d.content)) for d in documents), age)
                last = cursor.get(key, {}).get("at")
                reason = due_reason(new, None if last is None else (now - last) / HOUR, settings)
                if not reason:
                    if new.documents:
                        waiting.append(f"{key}: {new.samples} new samples")
                    continue
                context.log.info(f"{key}: {reason}: building the datasets again")
                requests.append(dg.RunRequest(run_key=f"{key}@{now:.0f}", partition_key=key, tags={"twin/reason": reason}))
                # documents that make no sample never reach a dataset: remembered here so they count as new only once
                cursor[key] = {"at": now, "documents": sorted((seen | set(new.documents)) - held)}
        if not requests:
            return dg.SensorResult(skip_reason="; ".join(waiting) or "no new writing", cursor=json.dumps(cursor))
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return new_writing_sensor
