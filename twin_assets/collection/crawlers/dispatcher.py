"""Picks the crawler for a link."""

from twin_assets.collection.crawlers.base import Crawler, CrawlError
from twin_assets.collection.crawlers.git import GitCrawler
from twin_assets.collection.crawlers.linkedin_export import LinkedInExportCrawler
from twin_assets.collection.crawlers.web import WebCrawler
from twin_resources.http import HttpClient
from twin_resources.links import LinkKind, classify_link


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
