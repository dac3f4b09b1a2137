"""Cleaned documents (what training reads) and chunks (what RAG searches), as stored in Qdrant payloads."""

import hashlib

from pydantic import BaseModel

from twin_assets.features.cleaning import clean_code, clean_prose, looks_binary
from twin_resources.documents import Category, RawDocument, RepositoryFile, stable_id

# Bumped when cleaning changes, so every document is cleaned again once.
CLEANER_VERSION = "1"


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
    cleaner_version: str = CLEANER_VERSION
    content_hash: str

    @property
    def is_empty(self) -> bool:
        return not self.content.strip()


def clean_document(raw: RawDocument) -> CleanedDocument:
    files: list[RepositoryFile] = []
    if raw.category is Category.REPOSITORIES:
        files = [RepositoryFile(path=f.path, text=clean_code(f.text)) for f in raw.content.files
                 if not looks_binary(f.text)]
        files = [f for f in files if f.text.strip()]
        title = raw.content.name
        content = "\n\n".join(f"# {f.path}\n{f.text}" for f in files)
    else:
        title = raw.label
        body = clean_prose(raw.content.body, title=getattr(raw.content, "title", None))
        subtitle = getattr(raw.content, "subtitle", None)
        content = body if not subtitle else f"{clean_prose(subtitle)}\n\n{body}"
    return CleanedDocument(
        id=raw.id, author_id=raw.author_id, author_name=raw.author_full_name, platform=raw.platform,
        link=raw.link, category=raw.category, title=title, content=content, files=files,
        source_hash=raw.content_hash, content_hash=text_hash(content),
    )


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
