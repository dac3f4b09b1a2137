"""Quality checks over the raw documents of one author and category."""

from collections import Counter

import dagster as dg

from twin_assets.checks import Check, CheckOutcome
from twin_resources.domain.documents import Category, UserDocument
from twin_resources.warehouse import Warehouse

RAW_CHECKS = (
    Check("content_not_empty", "Every stored document of this author and category has text."),
    Check("links_unique", "No link is stored twice for this category."),
    Check("authors_exist", "Every document's author exists in the users collection."),
    Check("links_crawled", "Every link crawled in this run succeeded; a failed one is retried on the next crawl.",
          dg.AssetCheckSeverity.WARN),
)


def failed_links_outcome(failures: list[tuple]) -> CheckOutcome:
    offenders = [f"{link.url}: {error}" for link, error in failures]
    return CheckOutcome("links_crawled", not failures,
                        f"{len(failures)} links failed (see: twin links list)" if failures else "every link crawled",
                        offenders)


def check_raw_documents(warehouse: Warehouse, category: Category, author: UserDocument) -> list[CheckOutcome]:
    documents = list(warehouse.documents(category, author.id))
    empty = [d.link for d in documents if d.is_empty]
    repeated = sorted(link for link, n in Counter(d.link for d in documents).items() if n > 1)
    orphans = sorted(set(warehouse.distinct(category.value, "author_id")) - set(warehouse.distinct("users", "_id")))
    return [
        CheckOutcome("content_not_empty", not empty, f"{len(empty)} of {len(documents)} documents have no text", empty),
        CheckOutcome("links_unique", not repeated, f"{len(repeated)} links stored more than once", repeated),
        CheckOutcome("authors_exist", not orphans, f"{len(orphans)} author ids in {category} with no user", orphans),
    ]
