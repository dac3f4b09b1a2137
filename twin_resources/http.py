"""A polite HTTP client for crawlers: timeouts, retries with backoff, a per-host rate limit,
a clear user agent and robots.txt (RFC 9309) honoured."""

import codecs
import re
import threading
import time
import urllib.robotparser
from urllib.parse import urlsplit

import dagster as dg
import requests
import urllib3.exceptions
from pydantic import Field, PrivateAttr
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

USER_AGENT = "LLMTwinBot/0.1 (+https://github.com/llm-twin/llm-twin; collects an author's own writing at their request)"
RETRY_STATUSES = (429, 500, 502, 503, 504)


class FetchError(RuntimeError):
    """A page could not be fetched; the message is the one-line reason stored on the link."""


class RetryAfterTooLong(Exception):
    """The server asked to wait longer than we wait within one crawl."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds


class CappedRetry(Retry):
    """urllib3's retry, honouring `Retry-After` only up to `max_retry_after_s`: a server asking for an hour
    would otherwise stall every crawl behind it. Beyond the cap the fetch fails and the link is retried in a
    later crawl."""

    max_retry_after_s = 30.0

    def sleep(self, response=None) -> None:
        requested = self.get_retry_after(response) if response is not None else None
        if requested is not None and requested > self.max_retry_after_s:
            raise RetryAfterTooLong(requested)
        super().sleep(response)


class HostRateLimiter:
    """Keeps at least `interval_s` between the starts of two requests to the same host."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._next_slot: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot.get(host, now))
            self._next_slot[host] = slot + self.interval_s
        if slot > now:
            time.sleep(slot - now)


class HttpClient(dg.ConfigurableResource):
    """Fetches pages for the crawlers."""

    user_agent: str = USER_AGENT
    timeout_s: float = Field(default=15.0, description="connect and read timeout per request")
    retries: int = Field(default=3, description="retries on connection errors, timeouts, 429 and 5xx")
    backoff_s: float = Field(default=1.0, description="first retry delay; doubles each retry")
    min_interval_s: float = Field(default=1.0, description="least time between two requests to one host")
    deadline_s: float = Field(default=60.0, description="the most one fetch may take in all: retries, waits and "
                                                        "a body that trickles in included")
    max_retry_after_s: float = Field(default=30.0, description="a longer Retry-After fails the fetch; the link "
                                                               "is retried in a later crawl")
    max_bytes: int = Field(default=10_000_000, description="larger responses are refused")
    respect_robots: bool = True

    _session: requests.Session | None = PrivateAttr(default=None)
    _limiter: HostRateLimiter | None = PrivateAttr(default=None)
    _robots: dict = PrivateAttr(default_factory=dict)

    def _client(self) -> requests.Session:
        if self._session is None:
            capped = type("Retry", (CappedRetry,), {"max_retry_after_s": self.max_retry_after_s})
            retry = capped(total=self.retries, backoff_factor=self.backoff_s, status_forcelist=RETRY_STATUSES,
                           allowed_methods=("GET", "HEAD"), raise_on_status=False,
                           respect_retry_after_header=True, backoff_max=min(60.0, self.deadline_s))
            session = requests.Session()
            session.headers["User-Agent"] = self.user_agent
            adapter = HTTPAdapter(max_retries=retry)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._session = session
            self._limiter = HostRateLimiter(self.min_interval_s)
        return self._session

    def _request(self, url: str) -> tuple[requests.Response, float]:
        """The response (its body not read yet) and the monotonic time by which it must be read."""
        session = self._client()
        self._limiter.wait(urlsplit(url).netloc)
        deadline = time.monotonic() + self.deadline_s
        try:
            response = session.get(url, timeout=self.timeout_s, stream=True)
        except RetryAfterTooLong as error:
            raise FetchError(f"the server asks to retry after {error.seconds:.0f}s (we wait at most "
                             f"{self.max_retry_after_s:g}s): retried in a later crawl: {url}") from None
        except requests.exceptions.RequestException as error:
            if _is_timeout(error):
                raise FetchError(f"timed out after {self.timeout_s:g}s: {url}") from None
            if isinstance(error, requests.exceptions.ConnectionError):
                raise FetchError(f"cannot connect: {url} ({_root_cause(error)})") from None
            raise FetchError(f"request failed: {url} ({_root_cause(error)})") from None
        if time.monotonic() > deadline:
            response.close()
            raise FetchError(f"took longer than {self.deadline_s:g}s in all: {url}")
        return response, deadline

    def _read_body(self, response: requests.Response, url: str, deadline: float) -> bytes:
        """The whole body, within the size limit and the fetch's deadline. One socket read at a time, so a
        server sending a byte every few seconds cannot keep us past the deadline."""
        body = bytearray()
        try:
            while piece := response.raw.read1(64 * 1024, decode_content=True):
                body.extend(piece)
                if len(body) > self.max_bytes:
                    raise FetchError(f"larger than {self.max_bytes} bytes: {url}")
                if time.monotonic() > deadline:
                    raise FetchError(f"took longer than {self.deadline_s:g}s in all (the body trickled in): {url}")
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            raise FetchError(f"connection broke while reading {url} ({_root_cause(error)})") from None
        return bytes(body)

    def allowed(self, url: str) -> bool:
        """Whether robots.txt lets our user agent fetch `url` (4xx robots: all allowed; 5xx: none)."""
        if not self.respect_robots:
            return True
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._robots:
            self._robots[origin] = self._load_robots(origin)
        return self._robots[origin].can_fetch(self.user_agent, url)

    def _load_robots(self, origin: str) -> urllib.robotparser.RobotFileParser:
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        response, deadline = self._request(origin + "/robots.txt")  # unreachable host: its FetchError is why
        with response:
            status = response.status_code
            text = _decode(self._read_body(response, origin + "/robots.txt", deadline), None) if status < 300 else ""
        if status >= 500:
            parser.disallow_all = True
        elif status >= 400:
            parser.allow_all = True
        else:
            parser.parse(text.splitlines())
        return parser

    def fetch_html(self, url: str) -> tuple[str, str]:
        """The HTML text of `url` and the final URL after redirects; `FetchError` on anything else."""
        if not self.allowed(url):
            raise FetchError(f"robots.txt disallows fetching {url}")
        response, deadline = self._request(url)
        with response:
            if response.status_code >= 400:
                retried = f" (after {self.retries} retries)" if response.status_code in RETRY_STATUSES else ""
                raise FetchError(f"HTTP {response.status_code} {response.reason or ''}{retried}: {url}".replace(" :", ":"))
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type and content_type not in ("text/html", "application/xhtml+xml"):
                raise FetchError(f"not an HTML page ({content_type}): {url}")
            body = self._read_body(response, url, deadline)
            declared = requests.utils.get_encoding_from_headers(response.headers)
            if declared == "ISO-8859-1" and "charset" not in response.headers.get("Content-Type", "").lower():
                declared = None  # requests' RFC 2616 default, not something the server said
            return _decode(body, declared), response.url


def _causes(error: BaseException):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__ or getattr(error, "reason", None)
        if not isinstance(error, BaseException):
            return


def _is_timeout(error: BaseException) -> bool:
    """Requests reports a read timeout after exhausted retries as a ConnectionError; look inside."""
    causes = list(_causes(error))
    if any(isinstance(e, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)) for e in causes):
        return False  # urllib3 makes NewConnectionError a ConnectTimeoutError, for history's sake
    return any(isinstance(e, (requests.exceptions.Timeout, TimeoutError, urllib3.exceptions.TimeoutError))
               for e in causes)


def _root_cause(error: BaseException) -> str:
    *_, root = _causes(error)
    return f"{type(root).__name__}: {root}"


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
# WHATWG's Encoding Standard reads these labels as windows-1252, as browsers do.
_WINDOWS_1252_LABELS = {"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii", "iso8859-1", "l1"}


def _decode(body: bytes, declared: str | None) -> str:
    """Decode the way a browser would: the charset the server or the page declares when Python knows it,
    else UTF-8, else windows-1252 (the web's legacy default; a statistical guess is wrong too often on a
    short page). A body of which over 1% is NUL bytes is not text: `FetchError`."""
    declared = _known_encoding(declared) or _known_encoding(_meta_charset(body))
    nul_bytes = body.count(b"\x00")
    if nul_bytes > max(8, len(body) // 100) and not (declared or "").startswith(("utf-16", "utf-32")):
        raise FetchError(f"binary content, not a text page ({nul_bytes} of {len(body)} bytes are NUL)")
    if declared:
        return body.decode(declared, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:4096])
    return match.group(1).decode("ascii", "replace") if match else None


def _known_encoding(label: str | None) -> str | None:
    """Python's name for a charset label, or None for a label nobody knows ("x-klingon")."""
    if not label:
        return None
    label = label.strip().lower()
    if label in _WINDOWS_1252_LABELS:
        return "cp1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None
