"""Registering an author's links: the one way in, shared by the CLI, the demo and (later) the web page."""

from dataclasses import dataclass

import dagster as dg

from twin_assets.collection.crawlers import classify_link
from twin_assets.partitions import authors
from twin_resources.documents import LinkRecord, UserDocument, normalize_link
from twin_resources.warehouse import Warehouse


@dataclass
class Registration:
    author: UserDocument
    author_is_new: bool
    added: list[str]
    already_registered: list[str]


def register_links(warehouse: Warehouse, instance: dg.DagsterInstance | None, author_name: str,
                   urls: list[str]) -> Registration:
    """Add `urls` for the author (created if new) and the author's partition; `ValueError` on a bad
    name or link, before anything is stored."""
    author = UserDocument.from_full_name(author_name)
    records = []
    for url in urls:
        classify_link(normalize_link(url))
        records.append(LinkRecord.create(url, author))
    author_is_new = warehouse.upsert_user(author)
    added, known = [], []
    for record in records:
        (added if warehouse.add_link(record) else known).append(record.url)
    if instance is not None and not instance.has_dynamic_partition(authors.name, author.key):
        instance.add_dynamic_partitions(authors.name, [author.key])
    return Registration(author, author_is_new, added, known)
