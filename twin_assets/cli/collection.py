"""`twin links`, `crawl`, `features`, `search`, `warehouse`, `demo`, `ui` and `config`: collection and
features by hand."""

import json
import os
import sys
import textwrap
from pathlib import Path

import click

from twin_assets.cli.common import authors_with_documents, fail, open_warehouse, require_author, settings


@click.group()
def links():
    """The registry of links per author."""


@links.command("add")
@click.option("--author", "author_name", required=True, help='The author\'s full name, e.g. "Ada Quill".')
@click.argument("urls", nargs=-1, required=True)
def links_add(author_name: str, urls: tuple[str, ...]):
    """Register links (web pages, git repositories, LinkedIn export .zip/.csv) for an author."""
    from twin_resources.links import register_links

    with open_warehouse() as warehouse:
        try:
            registration = register_links(warehouse, author_name, list(urls))
        except ValueError as error:
            fail(f"{error}; nothing was added")
    if registration.author_is_new:
        click.echo(f"new author: {registration.author.full_name} ({registration.author.key})")
    for url in registration.added:
        click.echo(f"added: {url}")
    for url in registration.already_registered:
        click.echo(f"already registered: {url}")


@links.command("list")
@click.option("--author", "author_name", help="Only this author's links.")
def links_list(author_name: str | None):
    """Registered links with their crawl status."""
    with open_warehouse() as warehouse:
        names = {user.id: user.full_name for user in warehouse.users()}
        author_id = require_author(warehouse, author_name).id if author_name else None
        records = warehouse.links(author_id)
    if not records:
        fail("no links registered; add some with: twin links add --author NAME URL...")
    click.echo(f"{'author':<20} {'status':<8} {'tries':>5}  link  (last error)")
    for record in records:
        reason = f"  ({record.last_error})" if record.last_error else ""
        click.echo(f"{names.get(record.author_id, '?'):<20} {record.status:<8} {record.attempts:>5}  {record.url}{reason}")
    click.echo("status: pending = not crawled yet, crawled = stored, failed = retried on the next crawl "
               "(up to 5 tries)", err=True)


def _authors_to_crawl(warehouse, author_name: str | None) -> list:
    if author_name:
        return [require_author(warehouse, author_name)]
    with_links = {link.author_id for link in warehouse.links()}
    return [user for user in warehouse.users() if user.id in with_links]


@click.command()
@click.option("--author", "author_name", help="Crawl only this author (default: every author with links).")
@click.option("--recrawl", is_flag=True, help="Crawl every link again, not only new and failed ones.")
def crawl(author_name: str | None, recrawl: bool):
    """Crawl registered links into the warehouse: in process on the local Dagster instance, or as runs of a
    Dagster webserver when TWIN_DAGSTER_URL is set."""
    with open_warehouse() as warehouse:
        selected = _authors_to_crawl(warehouse, author_name)
    if not selected:
        fail("no author has links; add some with: twin links add --author NAME URL...")
    dagster_url = settings().serve.dagster_url
    if dagster_url:
        _launch_in_dagster(dagster_url, selected, recrawl)
        return
    from twin_assets.runs import run_job_for_authors

    run_config = {"ops": {"raw_documents": {"config": {"recrawl": recrawl}}}}
    if not run_job_for_authors("collection_job", selected, run_config, report=click.echo):
        sys.exit(1)


def _launch_in_dagster(dagster_url: str, authors: list, recrawl: bool) -> None:
    from twin_resources.launcher import Launcher

    launcher = Launcher(dagster_url)
    for author in authors:
        try:
            launch = launcher.collect(author.key, recrawl=recrawl)
        except RuntimeError as error:
            fail(str(error))
        click.echo(f"{author.full_name}: collection run {launch.detail} launched: {launch.url}")


@click.command()
@click.option("--author", "author_name", help="Only this author (default: every author with documents).")
def features(author_name: str | None):
    """Clean, chunk and embed documents into the vector store (materializes the feature assets in-process)."""
    from twin_assets.runs import run_job_for_authors

    with open_warehouse() as warehouse:
        selected = authors_with_documents(warehouse, author_name)
    if not selected:
        fail("no author has documents yet; crawl or import some first")
    if not run_job_for_authors("features_job", selected, report=click.echo):
        sys.exit(1)


@click.command()
@click.argument("text")
@click.option("--author", "author_name", help="Only this author's chunks.")
@click.option("--category", type=click.Choice(["articles", "posts", "repositories"]), help="Only this category.")
@click.option("--k", default=5, show_default=True, type=click.IntRange(1, 100), help="How many chunks.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
def search(text: str, author_name: str | None, category: str | None, k: int, as_json: bool):
    """Plain vector search over the embedded chunks."""
    from twin_assets.features.search import search_chunks
    from twin_resources.configured import resources_from_env
    from twin_resources.domain.documents import Category

    if not text.strip():
        fail("the search text is empty")
    author_id = None
    if author_name:
        with open_warehouse() as warehouse:
            author_id = require_author(warehouse, author_name).id
    resources = resources_from_env()
    with resources["vector_store"].process_config_and_initialize_cm() as store, \
            resources["embedder"].process_config_and_initialize_cm() as embedder:
        with store.read() as client:
            hits = search_chunks(client, embedder, text, k=k, author_id=author_id,
                                 categories=[Category(category)] if category else None)
    if as_json:
        click.echo(json.dumps(hits, indent=2, ensure_ascii=False))
    if not hits:
        fail("no chunks yet: run twin features first" if not author_id else "no chunks for this author")
    if as_json:
        return
    for rank, hit in enumerate(hits, 1):
        click.echo(f"{rank}. {hit['score']:.3f}  {hit['author']}  {hit['category']}  {hit['link']}")
        click.echo("   " + textwrap.shorten(hit["content"], 300))


@click.group()
def warehouse():
    """Import and export the data warehouse."""


@warehouse.command("import")
@click.argument("directory", type=click.Path(path_type=Path))
def warehouse_import(directory: Path):
    """Import an export directory (ours, or the LLM Engineer's Handbook's)."""
    from twin_resources.transfer import TransferError, import_warehouse

    with open_warehouse() as store:
        try:
            counts = import_warehouse(store, directory)
        except TransferError as error:
            fail(f"{error}; nothing was imported")
        totals = {name: store.count(name) for name in ("users", "articles", "posts", "repositories")}
    for name, outcome in counts.items():
        click.echo(f"{name}: {sum(outcome.values())} records ({outcome['new']} new, {outcome['updated']} updated, "
                   f"{outcome['unchanged']} unchanged)")
    click.echo("warehouse now holds " + ", ".join(f"{n} {name}" for name, n in totals.items()))


@warehouse.command("export")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
def warehouse_export(directory: Path):
    """Write each collection to DIRECTORY/<collection>.json."""
    from twin_resources.transfer import export_warehouse

    with open_warehouse() as store:
        try:
            counts = export_warehouse(store, directory)
        except OSError as error:
            fail(f"cannot write the export: {error}")
    click.echo(", ".join(f"{n} {name}" for name, n in counts.items()) + f" written to {directory}")


@click.command()
@click.option("--port", type=int, help="Port of the local demo site (default TWIN_DEMO_PORT, 8765; links "
              "include it, so keep it stable).")
def demo(port: int | None):
    """Run the main job end to end for the demo author, whose site is served locally."""
    from twin_assets.demo import run_demo

    if not run_demo(port or settings().demo_port):
        sys.exit(1)


@click.command()
@click.option("--port", default=3000, show_default=True)
def ui(port: int):
    """Start Dagster's UI and daemon on the instance the `twin` commands use."""
    from twin_assets.instance import dagster_home
    from twin_resources.settings import PROJECT_ROOT

    settings()
    dagster_home()
    dagster = Path(sys.executable).with_name("dagster")  # the venv's, even when the venv is not activated
    os.execv(dagster, [str(dagster), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-p", str(port)])


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
def config(as_json: bool):
    """The effective settings: every variable, its value (secrets masked), whether it is set, its meaning."""
    from twin_resources.settings import describe

    rows = describe(settings())
    if as_json:
        click.echo(json.dumps({name: value for name, value, _, _ in rows}, indent=2))
        return
    width = max(len(name) for name, *_ in rows)
    click.echo(f"{'variable':<{width}}  {'source':<7}  value")
    for name, value, source, meaning in rows:
        click.echo(f"{name:<{width}}  {source:<7}  {value or '(empty)'}")
        click.echo(f"{'':<{width}}           {meaning}")


COMMANDS = (links, crawl, features, search, warehouse, demo, ui, config)
