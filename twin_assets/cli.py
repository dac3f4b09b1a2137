"""`twin`: what a person does by hand. Dagster's own CLI and UI stay the way to run and inspect assets."""

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from twin_assets.cli_models import chat, models, retrieve
from twin_assets.cli_serve import serve, traces
from twin_resources import warehouse_from_env
from twin_resources.documents import Category, UserDocument
from twin_resources.transfer import TransferError, export_warehouse, import_warehouse
from twin_resources.warehouse import Warehouse, WarehouseError


@contextmanager
def open_warehouse() -> Iterator[Warehouse]:
    """The warehouse as the environment configures it; a one-line error when it cannot be opened."""
    session = warehouse_from_env()
    try:
        warehouse = session.__enter__()
    except Exception as error:  # an unreachable server or an unwritable TWIN_HOME
        raise click.ClickException(f"cannot open the warehouse: {error}") from None
    try:
        yield warehouse
    finally:
        session.__exit__(None, None, None)


def _fail(message: str) -> None:
    raise click.ClickException(message)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """LLM Twin: learn one person's writing voice from their own writing."""


@main.group()
def links():
    """The registry of links per author."""


@links.command("add")
@click.option("--author", "author_name", required=True, help='The author\'s full name, e.g. "Ada Quill".')
@click.argument("urls", nargs=-1, required=True)
def links_add(author_name: str, urls: tuple[str, ...]):
    """Register links (web pages, git repositories, LinkedIn export .zip/.csv) for an author."""
    from twin_assets.collection.registry import register_links
    from twin_assets.instance import local_instance

    with open_warehouse() as warehouse:
        try:
            registration = register_links(warehouse, local_instance(), author_name, list(urls))
        except ValueError as error:
            _fail(f"{error}; nothing was added")
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
        try:
            author_id = warehouse.require_user(author_name).id if author_name else None
        except WarehouseError as error:
            _fail(str(error))
        records = warehouse.links(author_id)
    if not records:
        click.echo("no links registered; add some with: twin links add --author NAME URL...")
        return
    for record in records:
        reason = f"  ({record.last_error})" if record.last_error else ""
        click.echo(f"{names.get(record.author_id, '?'):<20} {record.status:<8} {record.attempts:>2}x  {record.url}{reason}")


def _authors_to_crawl(warehouse: Warehouse, author_name: str | None) -> list[UserDocument]:
    if author_name:
        try:
            return [warehouse.require_user(author_name)]
        except WarehouseError as error:
            _fail(str(error))
    with_links = {link.author_id for link in warehouse.links()}
    return [user for user in warehouse.users() if user.id in with_links]


@main.command()
@click.option("--author", "author_name", help="Crawl only this author (default: every author with links).")
@click.option("--recrawl", is_flag=True, help="Crawl every link again, not only new and failed ones.")
def crawl(author_name: str | None, recrawl: bool):
    """Crawl registered links into the warehouse (materializes the collection assets in-process)."""
    from twin_assets.runs import run_job_for_authors

    with open_warehouse() as warehouse:
        selected = _authors_to_crawl(warehouse, author_name)
    if not selected:
        _fail("no author has links; add some with: twin links add --author NAME URL...")
    run_config = {"ops": {"raw_documents": {"config": {"recrawl": recrawl}}}}
    if not run_job_for_authors("collection_job", selected, run_config, report=click.echo):
        sys.exit(1)


@main.command()
@click.option("--author", "author_name", help="Only this author (default: every author with documents).")
def features(author_name: str | None):
    """Clean, chunk and embed documents into the vector store (materializes the feature assets in-process)."""
    from twin_assets.runs import run_job_for_authors

    with open_warehouse() as warehouse:
        if author_name:
            selected = _authors_to_crawl(warehouse, author_name)
        else:
            with_documents = {d for category in Category for d in warehouse.distinct(category.value, "author_id")}
            selected = [user for user in warehouse.users() if user.id in with_documents]
    if not selected:
        _fail("no author has documents yet; crawl or import some first")
    if not run_job_for_authors("features_job", selected, report=click.echo):
        sys.exit(1)


@main.command()
@click.argument("text")
@click.option("--author", "author_name", help="Only this author's chunks.")
@click.option("--category", type=click.Choice([c.value for c in Category]), help="Only this category.")
@click.option("--k", default=5, show_default=True, type=click.IntRange(1, 100), help="How many chunks.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
def search(text: str, author_name: str | None, category: str | None, k: int, as_json: bool):
    """Plain vector search over the embedded chunks."""
    from twin_assets.features.search import search_chunks
    from twin_resources import resources_from_env

    if not text.strip():
        _fail("the search text is empty")
    author_id = None
    if author_name:
        with open_warehouse() as warehouse:
            try:
                author_id = warehouse.require_user(author_name).id
            except WarehouseError as error:
                _fail(str(error))
    resources = resources_from_env()
    with resources["vector_store"].process_config_and_initialize_cm() as store, \
            resources["embedder"].process_config_and_initialize_cm() as embedder:
        with store.read() as client:
            hits = search_chunks(client, embedder, text, k=k, author_id=author_id,
                                 categories=[Category(category)] if category else None)
    if as_json:
        click.echo(json.dumps(hits, indent=2, ensure_ascii=False))
        return
    if not hits:
        click.echo("no chunks yet: run twin features first" if not author_id else "no chunks for this author")
    for rank, hit in enumerate(hits, 1):
        click.echo(f"{rank}. {hit['score']:.3f}  {hit['author']}  {hit['category']}  {hit['link']}")
        click.echo("   " + textwrap.shorten(hit["content"], 300))


@main.group()
def warehouse():
    """Import and export the data warehouse."""


@warehouse.command("import")
@click.argument("directory", type=click.Path(path_type=Path))
def warehouse_import(directory: Path):
    """Import an export directory (ours, or the LLM Engineer's Handbook's)."""
    with open_warehouse() as store:
        try:
            counts = import_warehouse(store, directory)
        except TransferError as error:
            _fail(f"{error}; nothing was imported")
        totals = {name: store.count(name) for name in ("users", "articles", "posts", "repositories")}
    for name, outcome in counts.items():
        click.echo(f"{name}: {sum(outcome.values())} records ({outcome['new']} new, {outcome['updated']} updated, "
                   f"{outcome['unchanged']} unchanged)")
    click.echo("warehouse now holds " + ", ".join(f"{n} {name}" for name, n in totals.items()))


@warehouse.command("export")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
def warehouse_export(directory: Path):
    """Write each collection to DIRECTORY/<collection>.json."""
    with open_warehouse() as store:
        try:
            counts = export_warehouse(store, directory)
        except OSError as error:
            _fail(f"cannot write the export: {error}")
    click.echo(", ".join(f"{n} {name}" for name, n in counts.items()) + f" written to {directory}")


@main.command()
@click.option("--port", default=int(os.environ.get("TWIN_DEMO_PORT", 8765)), show_default=True,
              help="Port of the local demo site (links include it, so keep it stable).")
def demo(port: int):
    """Run the main job end to end for the demo author, whose site is served locally."""
    from twin_assets.demo import run_demo

    if not run_demo(port):
        sys.exit(1)


@main.command()
@click.option("--port", default=3000, show_default=True)
def ui(port: int):
    """Start Dagster's UI and daemon on the instance the `twin` commands use."""
    from twin_assets.instance import dagster_home
    from twin_resources.settings import PROJECT_ROOT

    dagster_home()
    dagster = Path(sys.executable).with_name("dagster")  # the venv's, even when the venv is not activated
    os.execv(dagster, [str(dagster), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-p", str(port)])


main.add_command(models)
main.add_command(chat)
main.add_command(retrieve)
main.add_command(serve)
main.add_command(traces)

if __name__ == "__main__":
    main()
