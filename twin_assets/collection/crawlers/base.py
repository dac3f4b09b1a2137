from typing import Protocol

from twin_resources.domain.documents import RawDocument, UserDocument


class CrawlError(RuntimeError):
    """A link yielded nothing storable; the message is the one-line reason stored on the link."""


class Crawler(Protocol):
    def crawl(self, link: str, author: UserDocument) -> list[RawDocument]:
        """The documents behind `link`, written by `author`; `CrawlError` when there are none."""
        ...
