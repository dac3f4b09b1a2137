"""Picks the crawler for a link."""

import re
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from twin_assets.collection.crawlers.base import Crawler, CrawlError
from twin_assets.collection.crawlers.git import GitCrawler
from twin_assets.collection.crawlers.linkedin_export import LinkedInExportCrawler
from twin_assets.collection.crawlers.web import WebCrawler
from twin_resources.http import HttpClient

_GIT_HOSTS = {"github.com", "gitlab.com", "bitbucket.org", "codeberg.org"}


class LinkKind(StrEnum):
    WEB_PAGE = "web page"
    GIT_REPOSITORY = "git repository"
    LINKEDIN_EXPORT = "LinkedIn export"


def classify_link(link: str) -> LinkKind:
    """What a link points at, from its shape alone; `ValueError` with the reason when it is unusable."""
    parts = urlsplit(link)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError(f"no host in link {link!r}")
        host = parts.hostname.lower().removeprefix("www.")
        segments = [s for s in parts.path.split("/") if s]
        if parts.path.endswith(".git") or (host in _GIT_HOSTS and len(segments) == 2):
            return LinkKind.GIT_REPOSITORY
        return LinkKind.WEB_PAGE
    if parts.scheme in ("ssh", "git") or re.match(r"^[\w.-]+@[\w.-]+:", link):
        return LinkKind.GIT_REPOSITORY
    if parts.scheme and parts.scheme != "file" and len(parts.scheme) > 1:
        raise ValueError(f"unsupported link scheme {parts.scheme!r} in {link!r}")
    path = Path(link.removeprefix("file://"))
    if path.suffix.lower() in (".zip", ".csv"):
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
        return LinkKind.LINKEDIN_EXPORT
    if (path / ".git").exists() or path.suffix == ".git":
        return LinkKind.GIT_REPOSITORY
    raise ValueError(f"not a web link, a git repository or a LinkedIn export: {link!r}")


class CrawlerDispatcher:
    """One crawler per kind of link, sharing the polite HTTP client."""

    def __init__(self, http: HttpClient, max_file_bytes: int = 200_000):
        self._crawlers: dict[LinkKind, Crawler] = {
            LinkKind.WEB_PAGE: WebCrawler(http),
            LinkKind.GIT_REPOSITORY: GitCrawler(max_file_bytes=max_file_bytes),
            LinkKind.LINKEDIN_EXPORT: LinkedInExportCrawler(),
        }

    def crawler_for(self, link: str) -> Crawler:
        try:
            return self._crawlers[classify_link(link)]
        except ValueError as error:
            raise CrawlError(str(error)) from None
