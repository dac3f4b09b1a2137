"""A local website that serves the demo author's writing in the shapes of the platforms the crawlers know:
Substack, Medium, a personal blog with heavy boilerplate, and a LinkedIn public post page.

It exists so the real crawlers (HTTP client, robots.txt, extraction) run on a fresh clone with no
network; the tests serve their fixture pages through it too."""

import html
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"
ROBOTS_TXT = "User-agent: *\nDisallow: /drafts/\n"


@dataclass(frozen=True)
class Piece:
    """One article or post of the corpus: front matter plus a Markdown body."""

    slug: str
    title: str
    subtitle: str | None
    platform: str
    date: str
    body_markdown: str

    @property
    def path(self) -> str:
        return {"substack": f"/substack/p/{self.slug}", "medium": f"/medium/@mara/{self.slug}",
                "linkedin": f"/linkedin/posts/{self.slug}"}.get(self.platform, f"/blog/{self.slug}.html")


def load_piece(path: Path) -> Piece:
    text = path.read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    fields = dict(line.split(": ", 1) for line in front.strip().splitlines())
    return Piece(slug=path.stem, title=fields["title"], subtitle=fields.get("subtitle"),
                 platform=fields["platform"], date=fields["date"], body_markdown=body.strip())


def load_corpus() -> list[Piece]:
    return [load_piece(p) for folder in ("articles", "posts") for p in sorted((CORPUS / folder).glob("*.md"))]


def markdown_to_html(markdown: str) -> str:
    """The Markdown the corpus uses: paragraphs, `##` headings, fenced code."""
    blocks: list[str] = []
    lines: list[str] = []
    in_code = False

    def flush_paragraph():
        text = " ".join(" ".join(lines).split())
        if text.startswith("## "):
            blocks.append(f"<h2>{html.escape(text[3:])}</h2>")
        elif text:
            blocks.append(f"<p>{html.escape(text)}</p>")
        lines.clear()

    for line in markdown.splitlines():
        if line.startswith("```"):
            if in_code:
                blocks.append(f"<pre><code>{html.escape(chr(10).join(lines))}</code></pre>")
                lines.clear()
            else:
                flush_paragraph()
            in_code = not in_code
        elif in_code or line.strip():
            lines.append(line)
        else:
            flush_paragraph()
    flush_paragraph()
    return "\n".join(blocks)


def _paragraphs(markdown: str) -> str:
    return "\n".join(f"<p>{html.escape(p)}</p>" for p in markdown.split("\n\n"))


def render_substack(piece: Piece, body: str) -> str:
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>{html.escape(piece.title)} - Mara's Notebook</title>
<meta property="og:title" content="{html.escape(piece.title)}"><meta property="og:site_name" content="Mara's Notebook">
<meta name="description" content="{html.escape(piece.subtitle or '')}"><meta name="generator" content="Substack">
<meta property="article:published_time" content="{piece.date}T08:00:00Z">
<link rel="preconnect" href="https://substackcdn.com"></head><body>
<div class="main-menu"><div class="navbar"><a href="/">Mara's Notebook</a><a href="/archive">Archive</a><a href="/about">About</a>
<button class="subscribe-btn">Subscribe</button><a href="/signin">Sign in</a></div></div>
<article class="post"><div class="post-header"><h1 class="post-title">{html.escape(piece.title)}</h1>
<h3 class="subtitle">{html.escape(piece.subtitle or '')}</h3>
<div class="post-meta"><a href="/@mara">Mara Lindqvist</a> · {piece.date}</div>
<div class="post-ufi"><a class="like-button">♡ 41</a><a class="comment">12</a><button class="share">Share</button></div></div>
<div class="available-content"><div class="body markup">
{body}
<div class="subscription-widget-wrap"><div class="subscription-widget"><p class="cta-caption">Thanks for reading Mara's Notebook! Subscribe for free to receive new posts and support my work.</p>
<form><input type="email" placeholder="Type your email..."><button>Subscribe</button></form></div></div>
</div></div></article>
<div class="post-footer"><button class="share">Share</button><div class="comments-section"><h4>Discussion about this post</h4><p>No comments yet.</p></div></div>
<footer class="footer">© 2026 Mara Lindqvist · Privacy · Terms · Collection notice · Substack is the home for great culture</footer>
</body></html>"""


def render_medium(piece: Piece, body: str) -> str:
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(piece.title)} | by Mara Lindqvist | Medium</title>
<meta property="og:title" content="{html.escape(piece.title)}"><meta property="og:site_name" content="Medium">
<meta property="al:android:package" content="com.medium.reader"><meta name="author" content="Mara Lindqvist">
<meta property="article:published_time" content="{piece.date}T09:30:00.000Z"></head><body>
<div class="metabar"><a href="/">Medium</a><a href="/search">Search</a><a href="/new-story">Write</a><a href="/m/signin">Sign in</a></div>
<div class="paywall-banner">Member-only story</div>
<article><div class="pw-post-body"><h1 class="pw-post-title">{html.escape(piece.title)}</h1>
<h2 class="pw-subtitle-paragraph">{html.escape(piece.subtitle or '')}</h2>
<div class="pw-post-byline-header"><a rel="author">Mara Lindqvist</a> · Follow · 6 min read · {piece.date}</div>
<div class="speechify-ignore"><div class="pw-multi-vote-count">1.2K</div><button>Listen</button><button>Share</button></div>
<section>{body}</section></div></article>
<div class="clap-bar"><button aria-label="clap">👏 1.2K</button><button>Responses (18)</button></div>
<div class="related"><h2>More from Mara Lindqvist</h2><a href="/x">Another story you might like</a></div>
<footer><a href="/help">Help</a><a href="/status">Status</a><a href="/about">About</a><a href="/jobs">Careers</a></footer>
</body></html>"""


def render_blog(piece: Piece, body: str) -> str:
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(piece.title)} — mara.dev</title>
<meta name="description" content="{html.escape(piece.subtitle or '')}"></head><body>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience. <button>Accept all</button><button>Reject</button></div>
<header class="site-header"><a class="logo" href="/">mara.dev</a><nav><ul><li><a href="/">Home</a></li><li><a href="/blog">Blog</a></li>
<li><a href="/talks">Talks</a></li><li><a href="/about">About</a></li></ul></nav></header>
<div class="layout"><aside class="sidebar"><h3>Tags</h3><ul><li>mlops</li><li>retrieval</li><li>evaluation</li></ul>
<h3>Archive</h3><ul><li>2026</li><li>2025</li></ul></aside>
<main><article class="post"><h1>{html.escape(piece.title)}</h1><p class="meta">Posted on <time datetime="{piece.date}">{piece.date}</time> by Mara Lindqvist</p>
{body}
<div class="share-buttons">Share this post: <a>Twitter</a> <a>LinkedIn</a> <a>Hacker News</a></div></article>
<section class="related-posts"><h2>You might also like</h2><ul><li><a href="/blog/a.html">Older post</a></li></ul></section>
<div class="newsletter-signup"><p>Get new posts by email. No spam, unsubscribe anytime.</p><form><input type="email"><button>Sign up</button></form></div>
</main></div>
<footer class="site-footer"><p>© 2026 Mara Lindqvist. Built with a static site generator. RSS · Privacy policy · Imprint</p></footer>
</body></html>"""


def render_linkedin(piece: Piece, body_markdown: str) -> str:
    text = body_markdown.strip()
    ld = {"@context": "http://schema.org", "@type": "SocialMediaPosting", "articleBody": text,
          "author": {"@type": "Person", "name": "Mara Lindqvist"}, "datePublished": f"{piece.date}T07:00:00.000Z"}
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(text[:60])}... | Mara Lindqvist | LinkedIn</title>
<meta property="og:site_name" content="LinkedIn"><meta property="og:title" content="Mara Lindqvist on LinkedIn">
<meta property="og:description" content="{html.escape(text[:200])}"><meta name="al:android:package" content="com.linkedin.android">
<script type="application/ld+json">{json.dumps(ld)}</script></head><body>
<nav class="nav"><a>LinkedIn</a><a>Articles</a><a>People</a><a>Learning</a><a>Jobs</a><a class="join-form">Join now</a><a>Sign in</a></nav>
<main><section class="core-rail"><article class="main-feed-activity-card"><div class="actor">Mara Lindqvist · ML engineer</div>
<div class="attributed-text-segment-list__content">{_paragraphs(text)}</div>
<div class="main-feed-activity-card__social-actions">👍 212 · 31 comments · Like · Comment · Share</div></article></section>
<section class="similar-posts"><h2>More Relevant Posts</h2></section></main>
<div class="sign-in-modal">Sign in to view more content. Join now.</div>
<footer class="li-footer">LinkedIn © 2026 · About · Accessibility · User Agreement · Privacy Policy · Cookie Policy</footer>
</body></html>"""


RENDERERS = {"substack": render_substack, "medium": render_medium, "blog": render_blog}


def render(piece: Piece) -> str:
    if piece.platform == "linkedin":
        return render_linkedin(piece, piece.body_markdown)
    return RENDERERS[piece.platform](piece, markdown_to_html(piece.body_markdown))


class SiteHandler(BaseHTTPRequestHandler):
    """Serves `robots.txt` and the pages in `self.server.pages` (path -> HTML)."""

    server_version = "TwinDemoSite/1.0"

    def do_GET(self):
        pages = self.server.pages
        if self.path == "/robots.txt":
            self.respond(200, ROBOTS_TXT, "text/plain")
        elif self.path.rstrip("/") in pages:
            self.respond(200, pages[self.path.rstrip("/")])
        else:
            self.respond(404, "<html><body><h1>Not found</h1></body></html>")

    def respond(self, status: int, body: str | bytes, content_type: str = "text/html; charset=utf-8",
                headers: dict | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # keep the console for the progress bar
        pass


class LocalSite:
    """A threaded HTTP server on 127.0.0.1, used as a context manager."""

    def __init__(self, pages: dict[str, str], port: int = 0, handler: type[SiteHandler] = SiteHandler):
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.pages = pages
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def __enter__(self) -> "LocalSite":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def demo_pages() -> dict[str, str]:
    return {piece.path: render(piece) for piece in load_corpus()}
