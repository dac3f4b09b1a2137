"""Code repositories: a shallow `git clone` of any git URL (GitHub, another host, or a local path),
keeping text files byte for byte and skipping what the author did not write."""

import os
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from twin_assets.collection.crawlers.base import CrawlError
from twin_resources.domain.documents import (
    RawDocument,
    RepositoryContent,
    RepositoryDocument,
    RepositoryFile,
    UserDocument,
)

SKIPPED_DIRS = {".git", "node_modules", "vendor", "third_party", "third-party", "dist", "build", ".venv",
                "venv", "__pycache__", ".tox", ".mypy_cache", ".pytest_cache", "site-packages", ".idea", ".vscode"}
LOCK_FILES = {"package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "uv.lock", "Pipfile.lock",
              "Cargo.lock", "go.sum", "composer.lock", "Gemfile.lock", "pdm.lock", "bun.lockb"}


def repository_name(link: str) -> str:
    path = urlsplit(link).path if "://" in link else link.split(":", 1)[-1]
    return Path(path.rstrip("/")).name.removesuffix(".git") or "repository"


def clone_url(link: str) -> str:
    """What to hand `git clone`: a local path becomes a file:// URL, so `--depth` applies to it too."""
    if "://" in link or (":" in link and "@" in link):
        return link
    return Path(link).resolve().as_uri()


def read_text_files(root: Path, max_file_bytes: int) -> list[RepositoryFile]:
    """Text files under `root` with their whitespace intact; binaries, vendored folders, lock files
    and files over `max_file_bytes` are left out."""
    files = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d not in SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(directory) / name
            if name in LOCK_FILES or path.is_symlink() or path.stat().st_size > max_file_bytes:
                continue
            data = path.read_bytes()
            if b"\x00" in data[:8192]:
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            files.append(RepositoryFile(path=path.relative_to(root).as_posix(), text=text))
    return files


class GitCrawler:
    def __init__(self, max_file_bytes: int = 200_000, timeout_s: float = 300.0):
        self.max_file_bytes = max_file_bytes
        self.timeout_s = timeout_s

    def crawl(self, link: str, author: UserDocument) -> list[RawDocument]:
        with tempfile.TemporaryDirectory(prefix="twin-clone-") as workdir:
            checkout = Path(workdir) / "repo"
            command = ["git", "clone", "--depth", "1", "--quiet", "--no-tags", "--", clone_url(link), str(checkout)]
            environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_LFS_SKIP_SMUDGE": "1"}
            try:
                subprocess.run(command, check=True, capture_output=True, text=True, timeout=self.timeout_s,
                               env=environment, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise CrawlError(f"git clone timed out after {self.timeout_s:g}s: {link}") from None
            except subprocess.CalledProcessError as error:
                reason = (error.stderr or "").strip().splitlines()
                raise CrawlError(f"git clone failed: {reason[-1] if reason else error}") from None
            files = read_text_files(checkout, self.max_file_bytes)
        if not files:
            raise CrawlError(f"no text files in repository {link}")
        platform = "github" if (urlsplit(link).hostname or "") == "github.com" else "git"
        content = RepositoryContent(name=repository_name(link), files=files)
        return [RepositoryDocument.create(link=link, author=author, platform=platform, content=content)]
