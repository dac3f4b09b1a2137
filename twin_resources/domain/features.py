"""The feature store's records: cleaned documents (what training reads) and chunks (what RAG searches)."""

import hashlib
import re

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
    subtitle: str = ""


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
    heading: str = ""  # prose: the section heading the chunk falls under, when the text has one
    features_version: str  # embedding model and chunking settings: either changing re-embeds

    @property
    def searched_text(self) -> str:
        return searched_text(self.content, self.title, self.subtitle, self.heading or self.path or "")


HEADING_MAX_CHARS = 80
NOT_IN_HEADINGS = re.compile(r"://|[=/\\{}<>$`|]|(^| )--?[a-z]")  # links, code, command-line flags


def is_heading(paragraph: str) -> bool:
    """A short line that starts like a title and does not end a sentence; a command or a link (code whose
    fences were lost) is no heading."""
    line = paragraph.strip()
    return "\n" not in line and 0 < len(line) <= HEADING_MAX_CHARS and line[-1] not in ".!?…:;,\"')" \
        and (line[0].isupper() or line[0].isdigit()) and not NOT_IN_HEADINGS.search(line)


def searched_text(content: str, *context: str) -> str:
    """What lexical search indexes for a chunk: its document's title and subtitle and its section (or file)
    above the author's text, so that a request in the title's words finds every chunk of it (the dense
    vector adds the document's own instead). The stored and quoted text stays the author's alone."""
    lines = [line.strip() for line in context if line.strip() and line.strip() not in content[:200]]
    return "\n".join([*dict.fromkeys(lines), content])


def chunk_id(document_id: str, index: int) -> str:
    return stable_id("chunk", document_id, str(index))


def content_version(pairs) -> str:
    """One hash over (id, content hash) pairs, whatever their order: a data version that changes only when
    the content does."""
    digest = hashlib.sha256()
    for identifier, content in sorted(pairs):
        digest.update(f"{identifier}:{content}\n".encode())
    return digest.hexdigest()[:16]
