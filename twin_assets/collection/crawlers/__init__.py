"""Crawlers turn one registered link into raw documents; the dispatcher picks one per link."""

from twin_assets.collection.crawlers.base import CrawlError
from twin_assets.collection.crawlers.dispatcher import CrawlerDispatcher

__all__ = ["CrawlError", "CrawlerDispatcher"]
