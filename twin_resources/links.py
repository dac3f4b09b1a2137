"""The link registry's way in: what a link points at, and registering an author's links.

Dagster-free on purpose: the CLI, the demo and the web page register links the same way, and the
collection sensor turns new links into runs (adding the author's partition itself).
"""

import os
import re
import subprocess
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from twin_resources.domain.documents import LinkRecord, UserDocument, normalize_link
from twin_resources.warehouse import Warehouse

_GIT_HOSTS = {"github.com", "gitlab.com", "bitbucket.org", "codeberg.org"}


class LinkKind(StrEnum):
    WEB_PAGE = "web page"
    GIT_REPOSITORY = "git repository"
    LINKEDIN_EXPORT = "LinkedIn export"


def is_local_git_repository(path: Path) -> bool:
    """True when git itself can clone `path`: a work tree, a bare repository (whatever its name), or a
    symlink to either."""
    if not path.is_dir():
        return False
    environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        result = subprocess.run(["git", "ls-remote", "--quiet", "--heads", str(path)], capture_output=True,
                                env=environment, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def classify_link(link: str) -> LinkKind:
    """What a link points at; `ValueError` with the reason when it is unusable."""
    if link.lstrip().startswith("-"):  # git and other tools would read it as an option
        raise ValueError(f"a link cannot start with '-': {link!r}")
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
    if is_local_git_repository(path):
        return LinkKind.GIT_REPOSITORY
    raise ValueError(f"not a web link, a git repository or a LinkedIn export: {link!r}")


@dataclass
class Registration:
    author: UserDocument
    author_is_new: bool
    added: list[str]
    already_registered: list[str]


def register_links(warehouse: Warehouse, author_name: str, urls: list[str]) -> Registration:
    """Add `urls` for the author (created if new); `ValueError` on a bad name or link, or a link another
    author registered (a page belongs to one author), before anything is stored."""
    author = UserDocument.from_full_name(author_name)
    records = []
    for url in urls:
        classify_link(normalize_link(url))
        records.append(LinkRecord.create(url, author))
        owner = warehouse.link_owner(records[-1].url)
        if owner is not None and owner.id != author.id:
            raise ValueError(f"{records[-1].url} is already registered for {owner.full_name}: a page is one author's")
    author_is_new = warehouse.upsert_user(author)
    added, known = [], []
    for record in records:
        (added if warehouse.add_link(record) else known).append(record.url)
    return Registration(author, author_is_new, added, known)
