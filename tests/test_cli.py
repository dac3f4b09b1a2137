import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import SHARED_HANDBOOK
from tests.fixtures.site import BOILERPLATE
from twin_resources import Warehouse
from twin_resources.domain.documents import Category, LinkStatus

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["/substack/p/evals", "/medium/@ada/pipelines", "/blog/voice.html", "/linkedin/posts/streaming"]


def twin(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twin_assets.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy(), cwd=ROOT)


def test_links_add_then_crawl_stores_clean_text(twin_home, site):
    added = twin("links", "add", "--author", "Ada Quill", *[site.url(p) for p in PAGES])
    assert added.returncode == 0, added.stderr
    assert "new author: Ada Quill (ada-quill)" in added.stdout and added.stdout.count("added: ") == 4

    crawled = twin("crawl", "--author", "ada quill")

    assert crawled.returncode == 0, crawled.stderr
    assert "raw_articles 3 (3 new, 0 updated); raw_posts 1 (1 new, 0 updated)" in crawled.stdout
    store = Warehouse(home=str(twin_home)).connect()
    bodies = [d.content.body for d in store.documents(Category.ARTICLES)]
    assert len(bodies) == 3 and all("opening paragraph" in b for b in bodies)
    assert not [p for p in BOILERPLATE for b in bodies if p.lower() in b.lower()]
    listing = twin("links", "list")
    assert listing.stdout.count("crawled") == 4


def test_a_bad_link_is_refused_in_one_line_and_nothing_is_added(twin_home, site):
    result = twin("links", "add", "--author", "Ada Quill", site.url("/blog/voice.html"), "ftp://nowhere/x")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["Error: unsupported link scheme 'ftp' in 'ftp://nowhere/x'; nothing was added"]
    assert Warehouse(home=str(twin_home)).connect().count("links") == 0


@pytest.mark.parametrize("args", [("crawl", "--author", "Nobody Here"), ("crawl", "--author", "!!!"), ("warehouse", "import", "/no/such/dir"),
                                  ("links", "add", "--author", "!!!", "https://x.dev")])
def test_bad_input_exits_non_zero_with_a_one_line_reason(twin_home, args):
    result = twin(*args)
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("Error: ")


def test_a_crawl_killed_midway_finishes_on_the_next_run_without_duplicates(twin_home, site):
    assert twin("links", "add", "--author", "Ada Quill", *[site.url(p) for p in PAGES]).returncode == 0
    store = Warehouse(home=str(twin_home)).connect()
    # The real client waits 1 s between requests to one host, which leaves time to kill it halfway.
    crawl = subprocess.Popen([sys.executable, "-m", "twin_assets.cli", "crawl"], cwd=ROOT, env=os.environ.copy(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not store.links(statuses=[LinkStatus.CRAWLED]) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(crawl.pid, signal.SIGKILL)
    crawl.wait()
    crawled_before_kill = len(store.links(statuses=[LinkStatus.CRAWLED]))
    assert 1 <= crawled_before_kill < len(PAGES)
    with dg.DagsterInstance.from_config(str(twin_home / "dagster")) as instance:
        [killed] = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))

    again = twin("crawl")
    assert again.returncode == 0
    # the killed run no longer holds the one-at-a-time queue: it failed, saying why
    assert f"run {killed.run_id[:8]} had died" in again.stdout
    with dg.DagsterInstance.from_config(str(twin_home / "dagster")) as instance:
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
        [failure] = instance.get_records_for_run(killed.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        assert "is gone: killed or crashed" in failure.event_log_entry.dagster_event.message
        assert not instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))

    assert {link.status for link in store.links()} == {LinkStatus.CRAWLED}
    assert (store.count("articles"), store.count("posts")) == (3, 1)
    assert sorted(store.distinct("articles", "link")) == sorted(d.link for d in store.documents(Category.ARTICLES))


@pytest.mark.skipif(not SHARED_HANDBOOK.exists(), reason="the shared Handbook export is not beside this checkout")
def test_importing_the_handbook_twice_reports_the_same_counts(twin_home):
    first, second = twin("warehouse", "import", str(SHARED_HANDBOOK)), twin("warehouse", "import", str(SHARED_HANDBOOK))
    assert first.returncode == second.returncode == 0
    assert "articles: 76 records (76 new, 0 updated, 0 unchanged)" in first.stdout
    assert "articles: 76 records (0 new, 0 updated, 76 unchanged)" in second.stdout
    assert "warehouse now holds 2 users, 76 articles" in second.stdout


def test_export_writes_one_json_file_per_collection(twin_home, tmp_path, site):
    twin("links", "add", "--author", "Ada Quill", site.url("/blog/voice.html"))
    result = twin("warehouse", "export", str(tmp_path / "out"))
    assert result.returncode == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "articles.json", "links.json", "posts.json", "repositories.json", "users.json"]


def test_dagster_loads_the_definitions_without_warnings(twin_home):
    result = subprocess.run([Path(sys.executable).with_name("dagster"), "definitions", "validate",
                             "-w", "workspace.yaml"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Validation successful" in result.stdout + result.stderr
    ours = [line for line in result.stderr.splitlines() if "Warning" in line and "twin_" in line]
    assert ours == []


def test_features_then_search_finds_the_crawled_article(twin_home, site):
    twin("links", "add", "--author", "Ada Quill", *[site.url(p) for p in PAGES])
    assert twin("crawl").returncode == 0

    featured = twin("features", timeout=300)
    assert featured.returncode == 0, featured.stderr
    assert "Ada Quill: cleaned_documents 4 (4 new, 0 updated); embedded_chunks" in featured.stdout

    # The fixture's articles share one body; the post alone talks about streaming tokens.
    found = twin("search", "do people forgive a slow answer?", "--author", "Ada Quill", "--k", "2", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 2 and hits[0]["link"].endswith("/linkedin/posts/streaming") and hits[0]["author"] == "Ada Quill"
    assert {"score", "link", "author", "category", "content"} <= set(hits[0])
    posts = json.loads(twin("search", "streaming", "--category", "posts", "--json").stdout)
    assert posts and {hit["category"] for hit in posts} == {"posts"}
    unknown = twin("search", "anything", "--author", "Nobody Here")
    assert unknown.returncode == 1 and "Nobody Here" in unknown.stderr

    # A damaged store is said in one line, and a lost one is rebuilt by the next `twin features`.
    published = (twin_home / "qdrant" / "current").resolve()
    for storage in published.rglob("storage.sqlite"):
        storage.write_bytes(b"not a database" * 100)
    damaged = twin("search", "streaming")
    assert damaged.returncode == 1 and len(damaged.stderr.strip().splitlines()) == 1, damaged.stderr
    assert damaged.stderr.startswith("Error: the vector store") and "damaged" in damaged.stderr
    shutil.rmtree(published)
    lost = twin("search", "streaming")
    assert lost.returncode == 1 and len(lost.stderr.strip().splitlines()) == 1, lost.stderr
    assert "the vector store is broken" in lost.stderr and "no chunks yet" not in lost.stderr
    assert twin("features", timeout=300).returncode == 0
    assert twin("search", "streaming").returncode == 0


def test_a_damaged_warehouse_or_no_promoted_model_is_one_line_not_a_traceback(twin_home):
    served = twin("serve", "--port", "1")
    assert served.returncode == 1 and len(served.stderr.strip().splitlines()) == 1, served.stderr
    assert "no model is promoted yet" in served.stderr
    assert twin("links", "add", "--author", "Ada Quill", "https://ada.example/p/1").returncode == 0
    for collection in (twin_home / "warehouse").rglob("*.collection"):
        collection.write_bytes(b"\x00garbage" * 64)
    for args in (("links", "list"), ("crawl",), ("serve", "--port", "1")):
        result = twin(*args)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert "warehouse" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(not SHARED_HANDBOOK.is_dir(), reason="needs ../shared/corpora/handbook")
def test_search_over_the_handbook_finds_the_right_article(twin_home):
    assert twin("warehouse", "import", str(SHARED_HANDBOOK)).returncode == 0
    assert twin("features", timeout=600).returncode == 0
    questions = {
        "how does abliteration remove the refusal direction": "abliteration",
        "merging models with mergekit SLERP and TIES": "merge",
        "change data capture for real-time feature pipelines": "feature-pipelines",
    }
    for question, slug in questions.items():
        hits = json.loads(twin("search", question, "--k", "3", "--json").stdout)
        assert any(slug in hit["link"] for hit in hits), (question, [hit["link"] for hit in hits])
