"""The retrieval half of the twin: request in, the author's most relevant passages and a prompt out.

Every step is timed and recorded as a span, which the serving layer sends to its trace store.
"""

import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from qdrant_client import models
from qdrant_client.hybrid.fusion import reciprocal_rank_fusion

from twin_resources.chunk_index import ChunkIndex
from twin_resources.domain.documents import Category, UserDocument
from twin_resources.domain.search import Hit, Source
from twin_resources.domain.templates import rag_messages
from twin_resources.lexical import LexicalEncoder
from twin_resources.llm import LLMError
from twin_serving.retrieval.expansion import expand_query
from twin_serving.retrieval.rerank import Reranker
from twin_serving.retrieval.self_query import match_author, match_category, request_subject, self_query


@dataclass
class Span:
    name: str
    seconds: float
    detail: dict = field(default_factory=dict)
    started_at: float = 0.0  # seconds since the epoch


@dataclass
class Retrieval:
    request: str
    hits: list[Hit] = field(default_factory=list)
    author: UserDocument | None = None
    category: Category | None = None
    queries: list[str] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    reason: str = ""  # why there are no hits, when there are none

    @contextmanager
    def span(self, name: str) -> Iterator[dict]:
        detail: dict = {}
        started_at, start = time.time(), time.perf_counter()
        try:
            yield detail
        finally:
            self.spans.append(Span(name, time.perf_counter() - start, detail, started_at))


@dataclass
class RetrievalSettings:
    k: int = 5
    candidates: int = 20  # per query and category before merging, and what the reranker sees
    expansions: int = 1  # queries searched in all (1: the request alone)
    hybrid: bool = True  # BM25 over the same text, fused with the dense ranking (reciprocal rank fusion)
    per_document: int = 1  # passages of one document among the k (0: no limit)


def fuse(rankings: list[list[Hit]], limit: int) -> list[Hit]:
    """Reciprocal rank fusion of rankings of the same passages (Qdrant's own, as its Query API fuses)."""
    if len(rankings) == 1:
        return rankings[0][:limit]
    hits = {hit.id: hit for ranking in rankings for hit in ranking}
    fused = reciprocal_rank_fusion([[models.ScoredPoint(id=h.id, version=0, score=h.score) for h in ranking]
                                    for ranking in rankings], limit=limit)
    return [hits[str(point.id)].rescored(point.score) for point in fused]


def per_document(hits: list[Hit], k: int, limit: int) -> list[Hit]:
    """The first `k` hits with at most `limit` from one document (0: any number)."""
    if limit <= 0:
        return hits[:k]
    taken: Counter[str] = Counter()
    chosen = []
    for hit in hits:
        if taken[hit.passage.document_id] < limit and len(chosen) < k:
            taken[hit.passage.document_id] += 1
            chosen.append(hit)
    return chosen


class Retriever:
    def __init__(self, embedder, index: ChunkIndex, authors: list[UserDocument], llm=None,
                 reranker: Reranker | None = None, settings: RetrievalSettings | None = None,
                 lexical: LexicalEncoder | None = None):
        self.embedder, self.index, self.authors = embedder, index, authors
        self.llm, self.reranker, self.settings = llm, reranker, settings or RetrievalSettings()
        self.lexical = lexical or LexicalEncoder()

    def retrieve(self, request: str, author_name: str | None = None, k: int | None = None,
                 category: Category | None = None, per_document_limit: int | None = None) -> Retrieval:
        k = k or self.settings.k
        limit = self.settings.per_document if per_document_limit is None else per_document_limit
        result = Retrieval(request=request)
        if not request.strip():
            result.reason = "the request is empty"
            return result
        with result.span("self_query") as detail:
            if not self._find_author(result, request, author_name, category):
                return result
            detail.update(author=result.author.full_name if result.author else None,
                          category=result.category.value if result.category else None)
        with result.span("expansion") as detail:
            subject = request_subject(request)
            result.queries = self._expand(subject, detail)
            if subject != request:
                detail["subject"] = subject
        with result.span("search") as detail:
            candidates = self._search(result)
            if not candidates and result.category and category is None:
                # "write a post" names the output's form: the author's other writing still grounds it
                detail["category_dropped"], result.category = result.category.value, None
                candidates = self._search(result)
            detail.update(queries=len(result.queries), candidates=len(candidates), hybrid=self.settings.hybrid)
        if not candidates:
            who = result.author.full_name if result.author else "any author"
            result.reason = f"no embedded passages for {who}" + (
                f" in {result.category.value}" if result.category else "") + " yet"
            return result
        with result.span("rerank") as detail:
            if self.reranker:
                ranked = self.reranker.rerank(request, candidates[: self.settings.candidates], self.settings.candidates)
                detail["model"] = self.reranker.name
            else:
                ranked = candidates
            result.hits = per_document(ranked, k, limit)
            detail["per_document"] = limit
        with result.span("prompt") as detail:
            result.messages, result.sources = rag_messages(
                request, result.author.full_name if result.author else None, result.hits)
            detail["characters"] = sum(len(m["content"]) for m in result.messages)
        return result

    def _find_author(self, result: Retrieval, request: str, author_name: str | None,
                     category: Category | None) -> bool:
        if author_name:
            result.author = match_author(author_name, self.authors)
            if result.author is None:
                known = ", ".join(a.full_name for a in self.authors) or "none yet"
                result.reason = f"no author named {author_name!r} (known: {known})"
                return False
            result.category = category or match_category(request)
            return True
        try:
            found = self_query(request, self.authors, self.llm)
        except LLMError:
            found = self_query(request, self.authors, None)  # the model failed: names alone then
        result.author, result.category = found.author, category or found.category
        return True

    def _expand(self, request: str, detail: dict) -> list[str]:
        if self.llm is None or self.settings.expansions <= 1:
            return [request]
        try:
            return expand_query(self.llm, request, self.settings.expansions)
        except LLMError as error:  # retrieval goes on with the request alone
            detail["error"] = str(error)
            return [request]

    def _search(self, result: Retrieval) -> list[Hit]:
        """Every query's dense ranking and, with hybrid search, its BM25 ranking, over the categories
        searched, fused into one."""
        texts = [truncate_to_tokens(self.embedder, q) for q in result.queries]
        vectors = self.embedder.embed(texts)
        categories = [result.category] if result.category else list(Category)
        author_id = result.author.id if result.author else None
        jobs = [(self.index.search, vector, category) for vector in vectors for category in categories]
        if self.settings.hybrid:
            terms = [self.lexical.query(without_names(text, result.author)) for text in texts]
            jobs += [(self.index.lexical_search, query, category) for query in terms for category in categories]

        def search(job):
            method, query, category = job
            return method(query, category, self.settings.candidates, author_id)

        if self.index.embedded or len(jobs) == 1:
            batches = list(map(search, jobs))
        else:  # a server: the round trips overlap
            with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
                batches = list(pool.map(search, jobs))
        # one ranking per query and kind: the categories' hits merged by score (comparable within a kind)
        per_ranking = len(categories)
        rankings = [sorted((h for batch in batches[start:start + per_ranking] for h in batch), key=lambda h: -h.score)
                    for start in range(0, len(batches), per_ranking)]
        return fuse([r for r in rankings if r], self.settings.candidates * len(categories)) if any(rankings) else []


def without_names(request: str, author: UserDocument | None) -> str:
    """The request without the author's names: the filter already holds them, and as words they would match
    whatever passage happens to name the author."""
    if author is None:
        return request
    names = [n for n in (author.full_name, author.first_name, author.last_name) if n]
    return re.sub("|".join(re.escape(n) + r"(?:'s)?" for n in names), " ", request, flags=re.IGNORECASE)


def truncate_to_tokens(embedder, text: str) -> str:
    """`text` cut to what the embedding model reads (a longer request would be cut by the model anyway)."""
    encoding = embedder.tokenizer.encode(text)
    limit = embedder.max_tokens
    if len(encoding.ids) <= limit:
        return text
    end = encoding.offsets[limit - 2][1]  # room for the model's two special tokens
    return text[:end]
