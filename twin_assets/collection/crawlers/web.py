"""Web pages: Medium, Substack, personal blogs and LinkedIn public posts.

Main text comes from trafilatura. Before it runs, each platform's known widgets (subscribe boxes,
share and clap bars, navigation) are removed, so trafilatura can favour recall without keeping them.
"""

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import lxml.html
import trafilatura
from trafilatura.settings import use_config

from twin_assets.collection.crawlers.base import CrawlError
from twin_resources.domain.documents import (
    ArticleContent,
    ArticleDocument,
    PostContent,
    PostDocument,
    RawDocument,
    UserDocument,
)
from twin_resources.http import FetchError, HttpClient

# Class-name fragments of widgets that are never the author's words.
_COMMON_WIDGETS = ("subscribe", "subscription", "newsletter", "share", "social", "cookie", "related",
                   "comments", "sidebar", "navbar", "breadcrumb", "footer", "paywall", "signup")
_PLATFORM_WIDGETS = {
    "substack": ("post-footer", "like-button", "pencraft-button", "captioned-button-wrap"),
    "medium": ("pw-multi-vote", "speechify", "clap", "follow", "responses", "pw-post-byline-header"),
    "linkedin": ("main-feed-activity-card__social-actions", "join-form", "sign-in-modal", "similar-posts"),
    "blog": (),
}
# trafilatura falls back to a flattening extractor below 250 characters; short posts are real writing.
_EXTRACTION_CONFIG = use_config()
_EXTRACTION_CONFIG.set("DEFAULT", "MIN_EXTRACTED_SIZE", "20")
_DROPPED_TAGS = ("nav", "header", "footer", "aside", "form", "button", "script", "style", "noscript", "iframe")
_SUBTITLE_XPATHS = {
    "substack": "//h3[contains(concat(' ', @class, ' '), ' subtitle ')]",
    "medium": "//h2[contains(@class, 'pw-subtitle-paragraph')]",
}


def sniff_platform(html: str, url: str) -> str:
    """The publishing platform of a page: from its host, else from the markers its HTML carries
    (custom domains on Substack or Medium keep them)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "medium.com" or host.endswith(".medium.com"):
        return "medium"
    if host.endswith(".substack.com"):
        return "substack"
    if host == "linkedin.com" or host.endswith(".linkedin.com"):
        return "linkedin"
    head = html[:20_000].lower()
    if "substackcdn.com" in head or 'content="substack"' in head:
        return "substack"
    if "com.medium.reader" in head or 'content="medium"' in head or "cdn-client.medium.com" in head:
        return "medium"
    if 'og:site_name" content="linkedin"' in head or "com.linkedin.android" in head:
        return "linkedin"
    return "blog"


@dataclass(frozen=True)
class ExtractedPage:
    title: str | None
    subtitle: str | None
    body: str
    language: str | None
    published_at: datetime | None


def _has_class_fragment(element, fragments) -> bool:
    classes = f"{element.get('class', '')} {element.get('id', '')}".lower()
    return any(fragment in classes for fragment in fragments)


def _strip_widgets(tree, platform: str) -> None:
    fragments = _COMMON_WIDGETS + _PLATFORM_WIDGETS.get(platform, ())
    page_chars = len(tree.text_content()) or 1
    doomed = [el for el in tree.iter() if isinstance(el.tag, str)
              and (el.tag in _DROPPED_TAGS or el.get("role") in ("navigation", "banner", "contentinfo")
                   or _has_class_fragment(el, fragments))]
    for element in doomed:
        if element.tag in ("html", "body") or element.getparent() is None:
            continue
        # A class like "content-with-sidebar" on the article itself must not take the article with it.
        if element.tag not in _DROPPED_TAGS and len(element.text_content()) > 0.4 * page_chars:
            continue
        element.drop_tree()


def _text_of(tree, xpath: str) -> str | None:
    found = tree.xpath(xpath)
    text = " ".join(found[0].text_content().split()) if found else ""
    return text or None


def _json_ld_body(tree) -> str | None:
    """`articleBody` from JSON-LD (how LinkedIn exposes a public post's text)."""
    for script in tree.xpath("//script[@type='application/ld+json']"):
        try:
            data = json.loads(script.text or "")
        except json.JSONDecodeError:
            continue
        for item in data if isinstance(data, list) else data.get("@graph", [data]):
            if isinstance(item, dict) and isinstance(item.get("articleBody"), str) and item["articleBody"].strip():
                return item["articleBody"].strip()
    return None


def extract_page(html: str, url: str, platform: str) -> ExtractedPage:
    """The author's text on a page, without the platform around it."""
    if not html.strip():
        raise CrawlError(f"empty page: {url}")
    try:
        tree = lxml.html.fromstring(html)
    except (lxml.etree.ParserError, ValueError) as error:
        raise CrawlError(f"unparseable HTML at {url}: {error}") from None
    metadata = trafilatura.extract_metadata(tree, default_url=url)
    subtitle = _text_of(tree, _SUBTITLE_XPATHS[platform]) if platform in _SUBTITLE_XPATHS else None
    language = (tree.get("lang") or "").split("-")[0].lower() or None
    body = _json_ld_body(tree) if platform == "linkedin" else None
    if body is None:
        _strip_widgets(tree, platform)
        # No `deduplicate`: its cache spans pages, so a page crawled twice in one process came back empty.
        body = trafilatura.extract(tree, url=url, output_format="markdown", include_formatting=True,
                                   include_comments=False, include_tables=True, favor_recall=True,
                                   config=_EXTRACTION_CONFIG) or ""
    title = metadata.title if metadata and metadata.title else None
    body = _without_repeated_headings(re.sub(r"\n{3,}", "\n\n", body).strip(), (title, subtitle))
    if not body:
        raise CrawlError(f"no main text found on {url}")
    return ExtractedPage(title=title, subtitle=subtitle, body=body, language=language,
                        published_at=_parse_date(metadata.date if metadata else None))


def _without_repeated_headings(body: str, headings: tuple[str | None, ...]) -> str:
    """The body without leading Markdown headings that repeat the title or subtitle stored beside it."""
    wanted = {" ".join(h.split()).lower() for h in headings if h}
    while body.startswith("#"):
        first, _, rest = body.partition("\n")
        if " ".join(first.lstrip("#").split()).lower() not in wanted:
            break
        body = rest.lstrip("\n")
    return body


def _parse_date(value: str | None) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed and parsed.tzinfo is None else parsed


class WebCrawler:
    """Fetches a page politely and stores it as an article, or as a post for LinkedIn."""

    def __init__(self, http: HttpClient):
        self.http = http

    def crawl(self, link: str, author: UserDocument) -> list[RawDocument]:
        try:
            html, final_url = self.http.fetch_html(link)
        except FetchError as error:
            raise CrawlError(str(error)) from None
        platform = sniff_platform(html, final_url)
        page = extract_page(html, final_url, platform)
        if platform == "linkedin":
            content = PostContent(title=page.title, body=page.body, language=page.language)
            return [PostDocument.create(link=link, author=author, platform=platform, content=content,
                                        published_at=page.published_at)]
        content = ArticleContent(title=page.title or _title_from_link(link), subtitle=page.subtitle,
                                 body=page.body, language=page.language)
        return [ArticleDocument.create(link=link, author=author, platform=platform, content=content,
                                       published_at=page.published_at)]


def _title_from_link(link: str) -> str:
    slug = urlsplit(link).path.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[-_]+", " ", re.sub(r"\.\w+$", "", slug)).strip().capitalize() or link
