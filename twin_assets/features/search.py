"""Plain vector search over embedded chunks: the feature store as RAG will see it."""

from qdrant_client import QdrantClient

from twin_resources.chunk_index import ChunkIndex
from twin_resources.domain.documents import Category
from twin_resources.embedding import Embedder


def search_chunks(client: QdrantClient, embedder: Embedder, query: str, k: int = 5, author_id: str | None = None,
                  categories: list[Category] | None = None) -> list[dict]:
    """The `k` chunks nearest to `query`, best first: score, link, author, category, title, content."""
    if not query.strip():
        raise ValueError("the search text is empty")
    vector = embedder.embed([query])[0]
    index = ChunkIndex(client)
    hits = [hit for category in categories or list(Category) for hit in index.search(vector, category, k, author_id)]
    return [hit.as_dict() for hit in sorted(hits, key=lambda hit: -hit.score)[:k]]
