"""Plain vector search over embedded chunks: the feature store as RAG will see it."""

from qdrant_client import QdrantClient, models

from twin_resources.documents import Category
from twin_resources.embedding import Embedder
from twin_resources.feature_store import chunk_collection
from twin_resources.vector_store import field_filter


def search_chunks(client: QdrantClient, embedder: Embedder, query: str, k: int = 5, author_id: str | None = None,
                  categories: list[Category] | None = None) -> list[dict]:
    """The `k` chunks nearest to `query`, best first: score, link, author, category, title, content."""
    if not query.strip():
        raise ValueError("the search text is empty")
    vector = embedder.embed([query])[0].tolist()
    query_filter = field_filter(author_id=author_id) if author_id else None
    hits: list[models.ScoredPoint] = []
    for category in categories or list(Category):
        name = chunk_collection(category)
        if client.collection_exists(name):
            hits += client.query_points(name, query=vector, query_filter=query_filter, limit=k,
                                        with_payload=True).points
    hits.sort(key=lambda hit: hit.score, reverse=True)
    return [{"score": round(hit.score, 4), "link": hit.payload["link"], "author": hit.payload["author_name"],
             "category": hit.payload["category"], "title": hit.payload["title"], "chunk_index": hit.payload["chunk_index"],
             "content": hit.payload["content"]} for hit in hits[:k]]
