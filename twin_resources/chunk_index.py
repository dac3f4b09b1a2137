"""Filtered vector search over the embedded chunks, fast on the embedded store and exact on both.

Qdrant's embedded mode evaluates payload filters by scanning every payload in Python, so a search for one
author's chunks gets slower with every author added. On the embedded store we therefore load each
collection once per published snapshot into a normalized matrix grouped by author, and search one
author's rows with a matrix product: the same cosine ranking Qdrant computes, in a fraction of a
millisecond. A Qdrant server gets the filter itself (its payload indexes make it fast).
"""

from dataclasses import dataclass, field
from itertools import groupby

import numpy as np
from qdrant_client import QdrantClient

from twin_resources.domain.documents import Category
from twin_resources.domain.search import PASSAGE_FIELDS, Hit, Passage
from twin_resources.feature_store import chunk_collection
from twin_resources.vector_store import field_filter, is_embedded, scroll_all

PAYLOAD = list(PASSAGE_FIELDS)


@dataclass
class _Matrix:
    """One collection in memory: unit vectors sorted by author (so an author's rows are one slice, a view,
    not a copy), their ids and passages, and each author's slice."""

    vectors: np.ndarray
    ids: list[str]
    passages: list[Passage]
    slices: dict[str, slice] = field(default_factory=dict)

    @classmethod
    def load(cls, client: QdrantClient, name: str) -> "_Matrix":
        records = sorted(scroll_all(client, name, payload=PAYLOAD, vectors=True),
                         key=lambda r: (r.payload["author_id"], str(r.id)))
        if not records:
            return cls(np.zeros((0, 1), np.float32), [], [])
        vectors = np.asarray([r.vector for r in records], dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
        slices, start = {}, 0
        for author, group in groupby(r.payload["author_id"] for r in records):
            end = start + sum(1 for _ in group)
            slices[author] = slice(start, end)
            start = end
        return cls(vectors, [str(r.id) for r in records], [Passage.from_payload(r.payload) for r in records], slices)

    def search(self, query: np.ndarray, k: int, author_id: str | None) -> list[Hit]:
        rows = self.slices.get(author_id, slice(0, 0)) if author_id else slice(0, len(self.ids))
        if rows.stop == rows.start:
            return []
        scores = self.vectors[rows] @ query
        top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
        top = top[np.argsort(-scores[top])]
        return [Hit(self.ids[rows.start + i], float(scores[i]), self.passages[rows.start + i]) for i in top]


class ChunkIndex:
    """Search chunks by category with an optional author filter, over one client (one snapshot)."""

    def __init__(self, client: QdrantClient):
        self.client = client
        self.embedded = is_embedded(client)
        self._matrices: dict[Category, _Matrix | None] = {}  # None: no such collection in this snapshot

    def _matrix(self, category: Category) -> _Matrix | None:
        if category not in self._matrices:
            name = chunk_collection(category)
            self._matrices[category] = _Matrix.load(self.client, name) if self.client.collection_exists(name) else None
        return self._matrices[category]

    def warm(self) -> None:
        """Load every collection now rather than on the first query."""
        if self.embedded:
            for category in Category:
                self._matrix(category)

    def search(self, vector: np.ndarray, category: Category, k: int, author_id: str | None = None) -> list[Hit]:
        if self.embedded:
            matrix = self._matrix(category)
            query = vector / max(float(np.linalg.norm(vector)), 1e-12)
            return matrix.search(query.astype(np.float32), k, author_id) if matrix else []
        name = chunk_collection(category)
        if not self.client.collection_exists(name):
            return []
        points = self.client.query_points(name, query=vector.tolist(), limit=k, with_payload=PAYLOAD,
                                          query_filter=field_filter(author_id=author_id) if author_id else None).points
        return [Hit(str(p.id), p.score, Passage.from_payload(p.payload)) for p in points]
