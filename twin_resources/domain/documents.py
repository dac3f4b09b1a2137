"""Domain types of the data warehouse: users, raw documents per category, and the link registry.

Identifiers are deterministic (derived from a normalized link or an author's name), so storing the same
thing twice is an upsert, never a duplicate.
"""

import hashlib
import json
import re
import unicodedata
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import idna
from pydantic import BaseModel, ConfigDict, Field

_NAMESPACE = uuid.UUID("5b0c7d1e-9a41-4f55-8f0e-7c3b1f2a6d90")
_TRACKING_PARAMS = re.compile(r"^(utm_.*|source|ref|ref_src|fbclid|gclid|mc_cid|mc_eid|triedRedirect)$")


class Category(StrEnum):
    ARTICLES = "articles"
    POSTS = "posts"
    REPOSITORIES = "repositories"


class LinkStatus(StrEnum):
    PENDING = "pending"
    CRAWLED = "crawled"
    FAILED = "failed"


def utc_now() -> datetime:
    return datetime.now(UTC)


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def normalize_link(link: str) -> str:
    """One spelling per resource: lower-case scheme and host (an international host in its ASCII form),
    no default port, fragment, tracking parameters or trailing slash. Local paths (git repositories,
    LinkedIn exports) become absolute."""
    link = link.strip()
    parts = urlsplit(link)
    if parts.scheme in ("http", "https"):
        host = _ascii_host(parts.hostname or "")
        if parts.port and (parts.scheme, parts.port) not in (("http", 80), ("https", 443)):
            host = f"{host}:{parts.port}"
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                           if not _TRACKING_PARAMS.match(k)])
        path = parts.path.rstrip("/") or ""
        return urlunsplit((parts.scheme.lower(), host, path, query, ""))
    if parts.scheme == "file":
        return "file://" + str(_absolute_path(parts.path))
    if parts.scheme and len(parts.scheme) > 1:  # ssh://, git://
        return link.rstrip("/")
    if re.match(r"^[\w.-]+@[\w.-]+:", link):  # scp-like git remote: git@host:owner/repo.git
        return link
    return str(_absolute_path(link))


def _ascii_host(host: str) -> str:
    """"bücher.example" and "xn--bcher-kva.example" are one host: keep the punycode that DNS uses."""
    host = host.lower()
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:  # not a valid international name: kept as given, the fetch will say why
        return host


def _absolute_path(path: str) -> Path:
    return Path(path).expanduser().resolve()


def author_key(full_name: str) -> str:
    """The author's partition key: an ASCII slug of the full name ("Zoë Ann Lee" -> "zoe-ann-lee"); for a
    name in a script with no Latin letters ("李小龙"), a stable key from its hash ("author-3b1f0c9a2d"), the
    name itself kept as written for display."""
    name = unicodedata.normalize("NFKC", " ".join(full_name.split()))
    if not any(character.isalnum() for character in name):
        raise ValueError(f"author name {full_name!r} has no letters or digits")
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    lost = [c for c in name if c.isalnum() and not unicodedata.normalize("NFKD", c).encode("ascii", "ignore")]
    if slug and not lost:  # every letter has an ASCII spelling
        return slug
    return "author-" + hashlib.sha256(name.casefold().encode()).hexdigest()[:10]


def content_hash(content: BaseModel) -> str:
    payload = json.dumps(content.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class MongoModel(BaseModel):
    """A model stored as one MongoDB document, its `id` as `_id`."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str = Field(alias="_id")

    def to_mongo(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_mongo(cls, record: dict):
        return cls.model_validate(record)


class UserDocument(MongoModel):
    collection: ClassVar[str] = "users"

    key: str
    first_name: str
    last_name: str

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @classmethod
    def from_full_name(cls, full_name: str) -> "UserDocument":
        words = " ".join(full_name.split())
        if not words:
            raise ValueError("author name is empty")
        first, _, last = words.partition(" ")
        key = author_key(words)
        return cls(id=stable_id("user", key), key=key, first_name=first, last_name=last)


class ArticleContent(BaseModel):
    title: str
    subtitle: str | None = None
    body: str
    language: str | None = None


class PostContent(BaseModel):
    title: str | None = None
    body: str
    language: str | None = None


class RepositoryFile(BaseModel):
    path: str
    text: str


class RepositoryContent(BaseModel):
    name: str
    files: list[RepositoryFile]


class RawDocument(MongoModel):
    """What a crawler wrote down from one link, before any cleaning."""

    category: ClassVar[Category]
    content_type: ClassVar[type[BaseModel]]

    author_id: str
    author_full_name: str
    platform: str
    link: str
    content: BaseModel
    published_at: datetime | None = None
    crawled_at: datetime
    content_hash: str

    @classmethod
    def create(cls, *, link: str, author: UserDocument, platform: str, content: BaseModel,
               published_at: datetime | None = None, crawled_at: datetime | None = None):
        link = normalize_link(link)
        return cls(id=stable_id("document", link), author_id=author.id, author_full_name=author.full_name,
                   platform=platform, link=link, content=content, published_at=published_at,
                   crawled_at=crawled_at or utc_now(), content_hash=content_hash(content))

    @property
    def is_empty(self) -> bool:
        raise NotImplementedError

    @property
    def label(self) -> str:
        """A short human name for previews."""
        raise NotImplementedError


class ArticleDocument(RawDocument):
    category: ClassVar[Category] = Category.ARTICLES
    content: ArticleContent

    @property
    def is_empty(self) -> bool:
        return not self.content.body.strip()

    @property
    def label(self) -> str:
        return self.content.title


class PostDocument(RawDocument):
    category: ClassVar[Category] = Category.POSTS
    content: PostContent

    @property
    def is_empty(self) -> bool:
        return not self.content.body.strip()

    @property
    def label(self) -> str:
        return self.content.title or self.content.body.strip().splitlines()[0][:80]


class RepositoryDocument(RawDocument):
    category: ClassVar[Category] = Category.REPOSITORIES
    content: RepositoryContent

    @property
    def is_empty(self) -> bool:
        return not any(file.text.strip() for file in self.content.files)

    @property
    def label(self) -> str:
        return f"{self.content.name} ({len(self.content.files)} files)"


DOCUMENT_TYPES: dict[Category, type[RawDocument]] = {
    Category.ARTICLES: ArticleDocument,
    Category.POSTS: PostDocument,
    Category.REPOSITORIES: RepositoryDocument,
}


class LinkRecord(MongoModel):
    """One link registered for an author, with the outcome of its crawls."""

    collection: ClassVar[str] = "links"

    author_id: str
    url: str
    status: LinkStatus = LinkStatus.PENDING
    attempts: int = 0
    last_error: str | None = None
    added_at: datetime
    last_attempt_at: datetime | None = None
    document_ids: list[str] = Field(default_factory=list)

    @classmethod
    def create(cls, url: str, author: UserDocument) -> "LinkRecord":
        url = normalize_link(url)
        return cls(id=stable_id("link", author.id, url), author_id=author.id, url=url, added_at=utc_now())
