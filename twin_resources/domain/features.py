"""The feature store's records: cleaned documents (what training reads) and chunks (what RAG searches)."""

import hashlib

from pydantic import BaseModel

from twin_resources.domain.documents import Category, RepositoryFile, stable_id


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SourceFields(BaseModel):
    """Where a text comes from: shared by cleaned documents and their chunks, so search can cite it."""

    author_id: str
    author_name: str
    platform: str
    link: str
    category: Category
    title: str


class CleanedDocument(SourceFields):
    id: str
    content: str
    files: list[RepositoryFile] = []  # repositories: each file's cleaned code, chunked file by file
    source_hash: str  # the raw document's content hash: unchanged raw text is never cleaned again
    cleaner_version: str  # bumped when cleaning changes, so every document is cleaned again once
    content_hash: str
    line_keys: list[str] = []  # the cleaned text's lines, as keys, before lines repeated across the
    removal_key: str = ""  # author's documents went; what went, as one hash
    removed_lines: int = 0

    @property
    def is_empty(self) -> bool:
        return not self.content.strip()


class Chunk(SourceFields):
    id: str
    document_id: str
    document_hash: str  # the cleaned document's hash when this chunk was cut
    chunk_index: int
    content: str
    content_hash: str
    token_count: int
    path: str | None = None  # repositories: the file the chunk comes from
    features_version: str  # embedding model and chunking settings: either changing re-embeds


def chunk_id(document_id: str, index: int) -> str:
    return stable_id("chunk", document_id, str(index))


def content_version(pairs) -> str:
    """One hash over (id, content hash) pairs, whatever their order: a data version that changes only when
    the content does."""
    digest = hashlib.sha256()
    for identifier, content in sorted(pairs):
        digest.update(f"{identifier}:{content}\n".encode())
    return digest.hexdigest()[:16]
