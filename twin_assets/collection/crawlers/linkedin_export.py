"""A person's own LinkedIn data export (the `.zip` LinkedIn e-mails, or its `Shares.csv`), read as posts.

LinkedIn blocks scrapers, so the export is how someone brings their whole posting history.
"""

import codecs
import csv
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import charset_normalizer

from twin_assets.collection.crawlers.base import CrawlError
from twin_resources.domain.documents import PostContent, PostDocument, RawDocument, UserDocument

SHARES_FILE = "Shares.csv"
MAX_SHARES_BYTES = 64 * 1024 * 1024  # years of daily posts are a few MB; past this, it is not a real export
MAX_COMPRESSION_RATIO = 100  # text compresses about 3-10x; a thousandfold is a zip bomb


def _shares_bytes(path: Path, limit: int) -> bytes:
    """`Shares.csv`'s bytes, read in pieces and never past `limit`: a small archive cannot claim memory its
    size does not justify."""
    if path.suffix.lower() != ".zip":
        if path.stat().st_size > limit:
            raise CrawlError(f"{path.name} has {path.stat().st_size} bytes; the limit is {limit}")
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as archive:
            entries = [i for i in archive.infolist() if i.filename.rsplit("/", 1)[-1].lower() == SHARES_FILE.lower()]
            if not entries:
                raise CrawlError(f"no {SHARES_FILE} in LinkedIn export {path}")
            entry = entries[0]
            if entry.file_size > limit:
                raise CrawlError(f"{SHARES_FILE} in {path.name} unpacks to {entry.file_size} bytes; the limit is {limit}")
            if entry.compress_size and entry.file_size / entry.compress_size > MAX_COMPRESSION_RATIO:
                raise CrawlError(f"{SHARES_FILE} in {path.name} is compressed {entry.file_size // entry.compress_size}x: "
                                 "not a real export")
            data = bytearray()
            with archive.open(entry) as shares:  # the declared size may lie: count what comes out
                while piece := shares.read(1 << 20):
                    data.extend(piece)
                    if len(data) > limit:
                        raise CrawlError(f"{SHARES_FILE} in {path.name} unpacks past the limit of {limit} bytes")
            return bytes(data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as error:
        raise CrawlError(f"not a readable zip archive: {path} ({error})") from None


def decode_csv(data: bytes, name: str) -> str:
    """UTF-8 (what LinkedIn sends); else UTF-16 or UTF-32 by their byte-order mark; else CP1252, which is what
    a spreadsheet re-saving the file on Windows writes (and a superset of Latin-1's letters); else a guess.
    Single-byte code pages cannot be told apart from a few words, so guessing comes last."""
    wide = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE))
    for encoding in ("utf-8-sig", "utf-32", "utf-16") if wide else ("utf-8-sig",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        best = charset_normalizer.from_bytes(data).best()
        if best is None:
            raise CrawlError(f"{name} is not text in any encoding we can recognize") from None
        return str(best)


def _parse_date(value: str) -> datetime | None:
    for layout in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(value.strip(), layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def read_shares(text: str) -> list[dict]:
    """Rows of `Shares.csv` (Date, ShareLink, ShareCommentary, ...) that carry the author's own words."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"ShareLink", "ShareCommentary"} - set(reader.fieldnames or ())
    if missing:
        raise CrawlError(f"{SHARES_FILE} lacks the columns {', '.join(sorted(missing))}")
    return [row for row in reader if (row.get("ShareCommentary") or "").strip() and (row.get("ShareLink") or "").strip()]


class LinkedInExportCrawler:
    def __init__(self, max_bytes: int = MAX_SHARES_BYTES):
        self.max_bytes = max_bytes

    def crawl(self, link: str, author: UserDocument) -> list[RawDocument]:
        path = Path(link.removeprefix("file://"))
        if not path.is_file():
            raise CrawlError(f"LinkedIn export not found: {path}")
        rows = read_shares(decode_csv(_shares_bytes(path, self.max_bytes), path.name))
        if not rows:
            raise CrawlError(f"no posts with text in {path}")
        return [PostDocument.create(link=row["ShareLink"], author=author, platform="linkedin",
                                    content=PostContent(body=row["ShareCommentary"].strip()),
                                    published_at=_parse_date(row.get("Date", "")))
                for row in rows]
