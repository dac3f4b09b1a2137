"""A person's own LinkedIn data export (the `.zip` LinkedIn e-mails, or its `Shares.csv`), read as posts.

LinkedIn blocks scrapers, so the export is how someone brings their whole posting history.
"""

import csv
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from twin_assets.collection.crawlers.base import CrawlError
from twin_resources.domain.documents import PostContent, PostDocument, RawDocument, UserDocument

SHARES_FILE = "Shares.csv"


def _shares_text(path: Path) -> str:
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1].lower() == SHARES_FILE.lower()]
                if not names:
                    raise CrawlError(f"no {SHARES_FILE} in LinkedIn export {path}")
                return archive.read(names[0]).decode("utf-8-sig")
        except zipfile.BadZipFile:
            raise CrawlError(f"not a zip archive: {path}") from None
    return path.read_text(encoding="utf-8-sig")


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
    def crawl(self, link: str, author: UserDocument) -> list[RawDocument]:
        path = Path(link.removeprefix("file://"))
        if not path.is_file():
            raise CrawlError(f"LinkedIn export not found: {path}")
        rows = read_shares(_shares_text(path))
        if not rows:
            raise CrawlError(f"no posts with text in {path}")
        return [PostDocument.create(link=row["ShareLink"], author=author, platform="linkedin",
                                    content=PostContent(body=row["ShareCommentary"].strip()),
                                    published_at=_parse_date(row.get("Date", "")))
                for row in rows]
