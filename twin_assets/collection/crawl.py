"""Crawling one author's links into the warehouse, link by link, so that a failure or a kill midway
loses nothing: documents are stored before their link is marked crawled, and stores are upserts."""

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from twin_assets.collection.crawlers import CrawlerDispatcher, CrawlError
from twin_resources.domain.documents import Category, LinkRecord, LinkStatus, RawDocument, UserDocument
from twin_resources.links import LinkKind, classify_link
from twin_resources.warehouse import UpsertOutcome, Warehouse, WarehouseError

log = logging.getLogger(__name__)


@dataclass
class StoredDocument:
    document: RawDocument
    outcome: UpsertOutcome


@dataclass
class CrawlReport:
    stored: list[StoredDocument] = field(default_factory=list)
    failures: list[tuple[LinkRecord, str]] = field(default_factory=list)

    def outcomes(self, category: Category) -> Counter:
        counts = Counter({"new": 0, "updated": 0, "unchanged": 0})
        counts.update(s.outcome for s in self.stored if s.document.category == category)
        return counts

    def documents(self, category: Category) -> list[StoredDocument]:
        return [s for s in self.stored if s.document.category == category]

    def failures_for(self, category: Category) -> list[tuple[LinkRecord, str]]:
        return [(link, error) for link, error in self.failures if expected_category(link.url) == category]


def expected_category(url: str) -> Category:
    """The category a link should yield, for reporting a failure under the right asset."""
    try:
        kind = classify_link(url)
    except ValueError:
        return Category.ARTICLES
    if kind == LinkKind.GIT_REPOSITORY:
        return Category.REPOSITORIES
    if kind == LinkKind.LINKEDIN_EXPORT or "linkedin.com" in url:
        return Category.POSTS
    return Category.ARTICLES


def links_to_crawl(warehouse: Warehouse, author: UserDocument, recrawl: bool, max_attempts: int) -> list[LinkRecord]:
    """Pending links and failed ones with attempts left; every link when `recrawl`."""
    if recrawl:
        return warehouse.links(author.id)
    return [link for link in warehouse.links(author.id, statuses=(LinkStatus.PENDING, LinkStatus.FAILED))
            if link.status == LinkStatus.PENDING or link.attempts < max_attempts]


def crawl_links(author: UserDocument, links: list[LinkRecord], dispatcher: CrawlerDispatcher,
                warehouse: Warehouse, on_link: Callable[[LinkRecord, str | None], None] = lambda *_: None
                ) -> CrawlReport:
    """Crawl each link for `author` and store what it yields; a failing link is recorded and skipped."""
    report = CrawlReport()
    for link in links:
        error = None
        try:
            documents = dispatcher.crawler_for(link.url).crawl(link.url, author)
        except CrawlError as failure:
            error = str(failure)
        except Exception as failure:  # a crawler bug on one page must not stop the others
            log.exception("crawler crashed on %s", link.url)
            error = f"crawler crashed: {type(failure).__name__}: {failure}"
        if not error:
            stored, refused = [], []
            for document in documents:
                try:
                    report.stored.append(StoredDocument(document, warehouse.upsert_document(document)))
                    stored.append(document.id)
                except WarehouseError as refusal:  # another author's page: never moved to this one
                    refused.append(str(refusal))
            if refused:
                error = refused[0] + (f" (and {len(refused) - 1} more)" if len(refused) > 1 else "")
        if error:
            warehouse.record_attempt(link, error=error)
            report.failures.append((link, error))
        else:
            warehouse.record_attempt(link, document_ids=stored)
        on_link(link, error)
    return report
