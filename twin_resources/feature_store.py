"""The feature store's collection names: shared by the pipeline that writes them and the code that reads them."""

from collections.abc import Callable

from qdrant_client import QdrantClient, models

from twin_resources.domain.documents import Category
from twin_resources.vector_store import scroll_all

# A chunk collection's two vectors: the embedding model's, and BM25 term weights (IDF applied at search)
DENSE = "dense"
LEXICAL = "lexical"


def cleaned_collection(category: Category) -> str:
    return f"cleaned_{category.value}"


def chunk_collection(category: Category) -> str:
    return f"embedded_{category.value}"


def every_category(client: QdrantClient, collection: Callable[[Category], str], payload: list[str],
                   vectors: bool = False) -> list[models.Record]:
    """All points of one kind (cleaned or chunks) across categories and authors, in a stable order."""
    records = []
    for category in Category:
        name = collection(category)
        if client.collection_exists(name):
            records += sorted(scroll_all(client, name, payload=payload, vectors=vectors), key=lambda r: str(r.id))
    return records
