"""Filtered search over the embedded chunks, dense (the embedding model's vectors) or lexical (BM25 term
weights with Qdrant's IDF), fast on the embedded store and exact on both.

Qdrant's embedded mode evaluates payload filters by scanning every payload in Python, so a search for one
author's chunks gets slower with every author added. On the embedded store we therefore load each
collection once per published snapshot into a normalized matrix and a sparse term matrix grouped by author,
and search one author's rows with a matrix product: the same ranking Qdrant computes (cosine; BM25 with its
IDF over the whole collection), in a fraction of a millisecond. A Qdrant server gets the filter itself (its
payload indexes make it fast).
"""

from dataclasses import dataclass, field
from itertools import groupby

import numpy as np
from qdrant_client import QdrantClient, models
from scipy import sparse

from twin_resources.domain.documents import Category
from twin_resources.domain.search import PASSAGE_FIELDS, Hit, Passage
from twin_resources.feature_store import DENSE, LEXICAL, chunk_collection
from twin_resources.vector_store import VectorStoreError, field_filter, is_embedded, scroll_all

PAYLOAD = list(PASSAGE_FIELDS)
Terms = tuple[np.ndarray, np.ndarray]  # a sparse vector: (term indices, weights)


def idf(document_frequency: np.ndarray, documents: int) -> np.ndarray:
    """Qdrant's inverse document frequency (its `IDF` modifier), so both stores rank alike."""
    return np.log((documents - document_frequency + 0.5) / (document_frequency + 0.5) + 1.0)


@dataclass
class _Matrix:
    """One collection in memory: unit vectors and BM25 term weights sorted by author (so an author's rows are
    one slice, a view, not a copy), their ids and passages, and each author's slice."""

    vectors: np.ndarray
    ids: list[str]
    passages: list[Passage]
    slices: dict[str, slice] = field(default_factory=dict)
    terms: sparse.csc_matrix | None = None  # rows: points; columns: the collection's terms
    columns: dict[int, int] = field(default_factory=dict)  # term index -> column
    idf: np.ndarray | None = None  # per column

    @classmethod
    def load(cls, client: QdrantClient, name: str) -> "_Matrix":
        records = sorted(scroll_all(client, name, payload=PAYLOAD, vectors=True),
                         key=lambda r: (r.payload["author_id"], str(r.id)))
        if not records:
            return cls(np.zeros((0, 1), np.float32), [], [])
        if not isinstance(records[0].vector, dict):
            raise VectorStoreError(f"{name} was embedded before hybrid search (one unnamed vector per chunk): "
                                   "run `twin features` to embed it again")
        vectors = np.asarray([r.vector[DENSE] for r in records], dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
        slices, start = {}, 0
        for author, group in groupby(r.payload["author_id"] for r in records):
            end = start + sum(1 for _ in group)
            slices[author] = slice(start, end)
            start = end
        matrix = cls(vectors, [str(r.id) for r in records], [Passage.from_payload(r.payload) for r in records], slices)
        matrix._load_terms([r.vector.get(LEXICAL) for r in records])
        return matrix

    def _load_terms(self, vectors: list[models.SparseVector | None]) -> None:
        rows, columns, weights = [], [], []
        for row, vector in enumerate(vectors):
            for term, weight in zip(vector.indices, vector.values) if vector else ():
                rows.append(row)
                columns.append(self.columns.setdefault(term, len(self.columns)))
                weights.append(weight)
        self.terms = sparse.csr_matrix((np.asarray(weights, np.float32), (rows, columns)),
                                       shape=(len(vectors), len(self.columns))).tocsc()
        having = sum(1 for v in vectors if v is not None)  # Qdrant's corpus: the points with a sparse vector
        self.idf = idf(np.diff(self.terms.indptr).astype(np.float64), having).astype(np.float32)

    def _rows(self, author_id: str | None) -> slice:
        return self.slices.get(author_id, slice(0, 0)) if author_id else slice(0, len(self.ids))

    def _top(self, rows: slice, scores: np.ndarray, k: int) -> list[Hit]:
        top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [Hit(self.ids[rows.start + i], float(scores[i]), self.passages[rows.start + i]) for i in top]

    def search(self, query: np.ndarray, k: int, author_id: str | None) -> list[Hit]:
        rows = self._rows(author_id)
        if rows.stop == rows.start:
            return []
        return self._top(rows, self.vectors[rows] @ query, k)

    def lexical(self, query: Terms, k: int, author_id: str | None) -> list[Hit]:
        rows = self._rows(author_id)
        known = [(self.columns[int(t)], w) for t, w in zip(*query) if int(t) in self.columns]
        if rows.stop == rows.start or not known:
            return []
        columns = np.asarray([c for c, _ in known])
        weights = np.asarray([w for _, w in known], np.float32) * self.idf[columns]
        scores = np.asarray(self.terms[:, columns][rows] @ weights).ravel()
        return [hit for hit in self._top(rows, scores, k) if hit.score > 0]  # as a server: sharing a term


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
        """The `k` chunks nearest to `vector` (cosine), best first."""
        if self.embedded:
            matrix = self._matrix(category)
            query = vector / max(float(np.linalg.norm(vector)), 1e-12)
            return matrix.search(query.astype(np.float32), k, author_id) if matrix else []
        return self._query(category, vector.tolist(), DENSE, k, author_id)

    def lexical_search(self, terms: Terms, category: Category, k: int, author_id: str | None = None) -> list[Hit]:
        """The `k` chunks that score best under BM25 for the query's terms, best first; none share a term: []."""
        if self.embedded:
            matrix = self._matrix(category)
            return matrix.lexical(terms, k, author_id) if matrix else []
        query = models.SparseVector(indices=[int(t) for t in terms[0]], values=[float(w) for w in terms[1]])
        return self._query(category, query, LEXICAL, k, author_id)

    def _query(self, category: Category, query, using: str, k: int, author_id: str | None) -> list[Hit]:
        name = chunk_collection(category)
        if not self.client.collection_exists(name):
            return []
        points = self.client.query_points(name, query=query, using=using, limit=k, with_payload=PAYLOAD,
                                          query_filter=field_filter(author_id=author_id) if author_id else None).points
        return [Hit(str(p.id), p.score, Passage.from_payload(p.payload)) for p in points]
