"""The feature pipeline's two steps, incremental by content hash: warehouse -> cleaned documents ->
embedded chunks. Work grows with what changed: unchanged raw documents are not cleaned again, and
unchanged chunks are neither cut nor embedded again."""

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from qdrant_client import QdrantClient, models

from twin_assets.features.chunking import Chunker
from twin_assets.features.cleaned import CLEANER_VERSION, clean_document, without_repeated
from twin_assets.features.repeated import RepeatedLines
from twin_resources.domain.documents import Category, UserDocument
from twin_resources.domain.features import (
    Chunk,
    CleanedDocument,
    chunk_id,
    content_version,
    is_heading,
    searched_text,
    text_hash,
)
from twin_resources.embedding import Embedder
from twin_resources.feature_store import DENSE, LEXICAL, chunk_collection, cleaned_collection
from twin_resources.lexical import LEXICAL_VERSION, LexicalEncoder
from twin_resources.progress import ProgressReporter
from twin_resources.vector_store import (
    delete_points,
    ensure_collection,
    field_filter,
    scroll_all,
    upsert_in_batches,
)
from twin_resources.warehouse import Warehouse

EMBED_SLICE = 512
INDEXED_FIELDS = ["author_id", "document_id", "category", "platform"]
# what a chunk's vectors are made of besides the model and the chunking: bumped, every chunk is embedded again
SEARCHED_TEXT_VERSION = f"document-vector-1|{LEXICAL_VERSION}"
# A chunk's dense vector is its words' plus this much of its document's title and subtitle's, embedded once
# per document, rather than the title and subtitle written into every chunk: a quarter fewer tokens through
# the model for the same hit@1 and MRR (README "Retrieval: measured"; 1.0 against 0.7, which lost hit@1).
DOCUMENT_WEIGHT = 1.0
PARAGRAPH = re.compile(r"[^\n]+(?:\n(?!\s*\n)[^\n]*)*")


@dataclass
class StepReport:
    """What one step did for one author, per category."""

    stored: Counter = field(default_factory=Counter)
    added: Counter = field(default_factory=Counter)
    updated: Counter = field(default_factory=Counter)
    removed: Counter = field(default_factory=Counter)
    unchanged: Counter = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (link, reason)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    tokens_embedded: int = 0
    lines_removed: Counter = field(default_factory=Counter)  # lines repeated across the author's documents
    repeated_lines: Counter = field(default_factory=Counter)  # each removed line: in how many documents

    def total(self, name: str) -> int:
        return sum(getattr(self, name).values())

    @property
    def changed(self) -> bool:
        return bool(self.total("added") or self.total("updated") or self.total("removed"))

    @contextmanager
    def timed(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


def stored_content_version(client: QdrantClient, collection: Callable[[Category], str], author: UserDocument) -> str:
    """The author's points of one kind as a data version: it changes only when some content does."""
    pairs = []
    for category in Category:
        if client.collection_exists(collection(category)):
            pairs += [(str(r.id), r.payload.get("content_hash", "") + r.payload.get("features_version", ""))
                      for r in scroll_all(client, collection(category), field_filter(author_id=author.id),
                                          payload=["content_hash", "features_version"])]
    return content_version(pairs)


def _point(id_: str, payload: dict, vector: dict | None = None) -> models.PointStruct:
    return models.PointStruct(id=id_, vector=vector if vector is not None else {}, payload=payload)


def _chunk_vectors(dense: np.ndarray, sparse: tuple[np.ndarray, np.ndarray]) -> dict:
    return {DENSE: dense.tolist(), LEXICAL: models.SparseVector(indices=sparse[0].tolist(), values=sparse[1].tolist())}


def sync_cleaned_documents(warehouse: Warehouse, client: QdrantClient, author: UserDocument,
                           log: Callable[[str], None] = lambda message: None) -> StepReport:
    """Make the author's cleaned documents match their raw documents, without the lines that repeat across
    them (per category: each platform has its own chrome)."""
    report = StepReport()
    for category in Category:
        name = cleaned_collection(category)
        with report.timed("read"):
            ensure_collection(client, name, INDEXED_FIELDS)
            raws = list(warehouse.documents(category, author_id=author.id))
            stored = {r.id: r.payload for r in scroll_all(client, name, field_filter(author_id=author.id),
                                                          payload=["source_hash", "cleaner_version", "line_keys",
                                                                   "removal_key"])}
        with report.timed("clean"):
            alone = {raw.id: clean_document(raw) for raw in raws if not _cleaned_as_is(stored.get(raw.id), raw)}
            keys = {raw.id: alone[raw.id].line_keys if raw.id in alone else stored[raw.id].get("line_keys", [])
                    for raw in raws}
            repeated = RepeatedLines.find(keys.values()) if category is not Category.REPOSITORIES else RepeatedLines()
            fresh = [raw for raw in raws
                     if raw.id in alone or stored[raw.id].get("removal_key") != repeated.removal_key(keys[raw.id])]
            cleaned = []
            for raw in fresh:
                document, removed = without_repeated(alone.get(raw.id) or clean_document(raw), repeated)
                cleaned.append(document)
                report.repeated_lines.update({" ".join(line.split()): 1 for line in removed})
            report.lines_removed[category] = sum(document.removed_lines for document in cleaned)
        for document in cleaned:
            if document.is_empty:
                report.skipped.append((document.link, "nothing left after cleaning"))
                log(f"empty after cleaning, kept out of the features: {document.link}")
        keep = [document for document in cleaned if not document.is_empty]
        emptied = {d.id for d in cleaned if d.is_empty and d.id in stored}
        gone = list(stored.keys() - {raw.id for raw in raws} | emptied)
        with report.timed("write"):
            upsert_in_batches(client, name, [_point(d.id, d.model_dump(mode="json")) for d in keep])
            delete_points(client, name, gone)
        report.added[category] = sum(1 for d in keep if d.id not in stored)
        report.updated[category] = len(keep) - report.added[category]
        report.removed[category] = len(gone)
        report.unchanged[category] = len(raws) - len(fresh)
        report.stored[category] = client.count(name, count_filter=field_filter(author_id=author.id)).count
    return report


def _cleaned_as_is(stored: dict | None, raw) -> bool:
    """True when the stored cleaned document came from this raw text with this cleaner."""
    return bool(stored) and stored.get("source_hash") == raw.content_hash \
        and stored.get("cleaner_version") == CLEANER_VERSION


def sync_embedded_chunks(client: QdrantClient, embedder: Embedder, chunker: Chunker, author: UserDocument,
                         log: Callable[[str], None] = lambda message: None,
                         progress: ProgressReporter | None = None, lexical: LexicalEncoder | None = None,
                         context: bool = True) -> StepReport:
    """Make the author's embedded chunks match their cleaned documents; embed only new text. Each chunk gets
    two vectors: the model's, of its words plus its document's title and subtitle (`with_documents`), and
    BM25's, of its searched text (title, subtitle, heading, then the words). `context=False` searches the
    author's words alone (the benchmark's baseline)."""
    report = StepReport()
    lexical = lexical or LexicalEncoder()
    version = f"{embedder.version}|{chunker.fingerprint()}|{SEARCHED_TEXT_VERSION if context else 'words-only'}"
    for category in Category:
        name = chunk_collection(category)
        with report.timed("read"):
            if ensure_collection(client, name, INDEXED_FIELDS, dense=(DENSE, embedder.dimension), sparse=LEXICAL):
                log(f"{name}: created for {embedder.dimension}-dimensional vectors")
            documents = [CleanedDocument(**r.payload) for r in scroll_all(
                client, cleaned_collection(category), field_filter(author_id=author.id))]
            stored = {r.id: r.payload for r in scroll_all(
                client, name, field_filter(author_id=author.id),
                payload=["document_id", "document_hash", "content_hash", "features_version"])}
        current_docs = {d.id: d for d in documents}
        stored_by_doc: dict[str, dict[str, dict]] = defaultdict(dict)
        for point_id, payload in stored.items():
            stored_by_doc[payload["document_id"]][point_id] = payload

        wanted: list[Chunk] = []
        stale: list[str] = [pid for pid, p in stored.items() if p["document_id"] not in current_docs]
        unchanged = 0
        with report.timed("chunk"):
            changed = []
            for document in documents:
                previous = stored_by_doc.get(document.id, {})
                if previous and all(p["document_hash"] == document.content_hash and p["features_version"] == version
                                    for p in previous.values()):
                    unchanged += len(previous)
                else:
                    changed.append(document)
            for document, chunks in zip(changed, cut_documents(changed, category, chunker, version)):
                previous = stored_by_doc.get(document.id, {})
                ids = {c.id for c in chunks}
                stale += [pid for pid in previous if pid not in ids]
                kept = []  # same text in a changed document: keep the vector, record the new document hash
                for chunk in chunks:
                    before = previous.get(chunk.id)
                    if before and before["content_hash"] == chunk.content_hash and before["features_version"] == version:
                        kept.append(chunk.id)
                    else:
                        wanted.append(chunk)
                unchanged += len(kept)
                if kept:
                    client.set_payload(name, payload={"document_hash": document.content_hash}, points=kept, wait=True)
        with report.timed("embed"):
            words = [c.content for c in wanted]
            distinct = list(dict.fromkeys(words))  # the same words in two documents (a cross-post) once
            vectors = embed_with_progress(embedder, distinct, progress or ProgressReporter(),
                                          f"embedding {author.full_name}'s {category.value}")
            if len(distinct) < len(words):
                row = {text: index for index, text in enumerate(distinct)}
                vectors = vectors[[row[text] for text in words]]
            if context:
                vectors = with_documents(embedder, vectors, [document_context(c) for c in wanted])
        with report.timed("lexical"):
            terms = lexical.documents([c.searched_text if context else c.content for c in wanted])
        report.tokens_embedded += sum(c.token_count for c in wanted)
        with report.timed("write"):
            upsert_in_batches(client, name, [_point(c.id, c.model_dump(mode="json"), _chunk_vectors(v, t))
                                             for c, v, t in zip(wanted, vectors, terms)])
            delete_points(client, name, stale)
        report.added[category] = sum(1 for c in wanted if c.id not in stored)
        report.updated[category] = len(wanted) - report.added[category]
        report.removed[category] = len(stale)
        report.unchanged[category] = unchanged
        report.stored[category] = client.count(name, count_filter=field_filter(author_id=author.id)).count
    return report


def embed_with_progress(embedder: Embedder, texts: list[str], progress: ProgressReporter, label: str) -> np.ndarray:
    """Vectors for `texts`, a slice at a time so a bar can move; slices are large enough to batch well, and
    cut from the texts sorted by length, so each batch pads as little as one call over them all would."""
    if not texts:
        return embedder.embed([])
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    progress.start(len(texts), label, unit="chunk")
    try:
        parts = []
        for start in range(0, len(texts), EMBED_SLICE):
            parts.append(embedder.embed([texts[i] for i in order[start:start + EMBED_SLICE]]))
            progress.advance(steps=len(parts[-1]))
        vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        vectors[order] = np.concatenate(parts)
        return vectors
    finally:
        progress.finish()


def document_context(chunk: Chunk) -> str:
    """What a chunk's document is about, in its author's words: the title and subtitle."""
    return searched_text("", chunk.title, chunk.subtitle).strip()


def with_documents(embedder: Embedder, vectors: np.ndarray, contexts: list[str]) -> np.ndarray:
    """Each chunk's vector plus DOCUMENT_WEIGHT times its document context's, unit length again; each
    distinct context is embedded once."""
    distinct = list(dict.fromkeys(c for c in contexts if c))
    if not distinct:
        return vectors
    embedded = dict(zip(distinct, embedder.embed(distinct)))
    nothing = np.zeros(vectors.shape[1], dtype=np.float32)
    mixed = vectors + DOCUMENT_WEIGHT * np.stack([embedded.get(c, nothing) for c in contexts])
    return mixed / np.linalg.norm(mixed, axis=1, keepdims=True)


def headings_before(text: str) -> list[tuple[int, str]]:
    """(offset, heading) of each section heading in a prose text, in order."""
    return [(m.start(), m.group().strip()) for m in PARAGRAPH.finditer(text) if is_heading(m.group())]


def _heading_at(headings: list[tuple[int, str]], offset: int) -> str:
    above = [heading for start, heading in headings if start <= offset]
    return above[-1] if above else ""


def _prose_pieces(text: str, chunks: list[tuple[str, int]]) -> list[tuple[str, str, int]]:
    """(heading, chunk, tokens): each chunk (a slice of `text`, in order) under the heading above it."""
    headings, cursor, pieces = headings_before(text), 0, []
    for chunk, tokens in chunks:
        start = text.find(chunk, cursor)
        cursor = max(cursor, start)
        pieces.append((_heading_at(headings, start), chunk, tokens))
    return pieces


def cut_documents(documents: list[CleanedDocument], category: Category, chunker: Chunker,
                  version: str) -> list[list[Chunk]]:
    """Each document's chunks, in order, each with the file (code) or section heading (prose) it is under."""
    pieces: dict[str, list[tuple[str, str, int]]]
    if category is Category.REPOSITORIES:
        pieces = {d.id: [(f.path, text, tokens) for f in d.files for text, tokens in chunker.code(f.path, f.text)]
                  for d in documents}
    else:
        chunked = chunker.prose([d.content for d in documents], category)
        pieces = {d.id: _prose_pieces(d.content, chunks) for d, chunks in zip(documents, chunked)}
    code = category is Category.REPOSITORIES
    return [[
        Chunk(id=chunk_id(d.id, index), document_id=d.id, document_hash=d.content_hash, chunk_index=index,
              content=text, content_hash=text_hash(searched_text(text, d.title, d.subtitle, above)),
              token_count=tokens, author_id=d.author_id, author_name=d.author_name, platform=d.platform,
              link=d.link, category=d.category, title=d.title, subtitle=d.subtitle,
              path=above if code else None, heading="" if code else above, features_version=version)
        for index, (above, text, tokens) in enumerate(p for p in pieces[d.id] if p[1].strip())
    ] for d in documents]
