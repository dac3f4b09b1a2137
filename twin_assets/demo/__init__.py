"""The demo: a fresh clone goes from links to the graph's latest stage for an author whose writing ships
with the project (original articles and posts, a LinkedIn export and a small git repository)."""

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from twin_assets.collection.registry import register_links
from twin_assets.demo.site import CORPUS, LocalSite, demo_pages
from twin_assets.instance import local_instance
from twin_assets.runs import run_job_for_authors
from twin_resources import twin_home, warehouse_from_env

DEMO_AUTHOR = "Mara Lindqvist"
_FIXED_COMMIT_ENV = {"GIT_AUTHOR_NAME": DEMO_AUTHOR, "GIT_AUTHOR_EMAIL": "mara@example.org",
                     "GIT_COMMITTER_NAME": DEMO_AUTHOR, "GIT_COMMITTER_EMAIL": "mara@example.org",
                     "GIT_AUTHOR_DATE": "2026-03-01T12:00:00Z", "GIT_COMMITTER_DATE": "2026-03-01T12:00:00Z"}


def build_git_repository(source: Path, target: Path) -> Path:
    """A real git repository of `source`'s files (plus a binary the crawler must skip), same commit every time."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    (target / "docs").mkdir(exist_ok=True)
    (target / "docs" / "diagram.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    environment = {**os.environ, **_FIXED_COMMIT_ENV}
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                    ["git", "commit", "-q", "-m", "tinyevals: first release"]):
        subprocess.run(command, cwd=target, check=True, env=environment, capture_output=True)
    return target


def build_linkedin_export(shares_csv: Path, target: Path) -> Path:
    """A LinkedIn data-export archive holding `Shares.csv`, as LinkedIn sends it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as archive:
        archive.write(shares_csv, "Basic_LinkedInDataExport/Shares.csv")
    return target


def run_demo(port: int) -> bool:
    """Serve the demo site, register the demo author's links and run the main job; True on success."""
    workdir = twin_home() / "demo"
    repository = build_git_repository(CORPUS / "repo", workdir / "tinyevals")
    export = build_linkedin_export(CORPUS / "linkedin" / "Shares.csv", workdir / "linkedin-export.zip")
    try:
        site = LocalSite(demo_pages(), port=port)
    except OSError as error:
        print(f"cannot serve the demo site on 127.0.0.1:{port} ({error}); choose another with --port")
        return False
    with site:
        urls = [site.url(path) for path in sorted(site.server.pages)] + [str(repository), str(export)]
        with warehouse_from_env() as warehouse:
            registration = register_links(warehouse, local_instance(), DEMO_AUTHOR, urls)
            print(f"demo author {DEMO_AUTHOR}: {len(urls)} links ({len(registration.added)} new), "
                  f"site at {site.base_url}, warehouse: {warehouse.location}")
        succeeded = run_job_for_authors("main_job", [registration.author],
                                        {"ops": {"raw_documents": {"config": {"recrawl": True}}}})
    if succeeded:
        print(f'next: `twin search "how do you chunk documents?" --author "{DEMO_AUTHOR}"`, `twin models list`, '
              '`twin chat "Write about evals"`, or `twin ui` to see the graph')
    return succeeded
