"""Quality checks over the raw documents of one author and category."""

from collections import Counter
from dataclasses import dataclass, field

from twin_resources.domain.documents import Category, UserDocument
from twin_resources.warehouse import Warehouse

CHECK_NAMES = ("content_not_empty", "links_unique", "authors_exist")


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    description: str
    offenders: list[str] = field(default_factory=list)


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
