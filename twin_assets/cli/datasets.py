"""`twin datasets ...`: build an author's instruction and preference datasets, list and show the versions,
export them as JSONL files."""

import json
import shutil
import sys
import textwrap
from pathlib import Path

import click

from twin_assets.cli.common import authors_with_documents, fail, open_warehouse, settings

DATASET_ASSETS = {"instructions": "instruction_dataset", "preferences": "preference_dataset"}
EXPORT_FOLDERS = {"instructions": "instruct", "preferences": "preference"}


def _registry():
    from twin_resources.model_registry import default_registry

    return default_registry(str(settings().twin_home))


def _dataset_versions(registry) -> list:
    return [entry for entry in registry.versions() if entry.kind == "dataset"]


@click.group()
def datasets():
    """Instruction and preference datasets: the author's own words as answers, split by document."""


@datasets.command("build")
@click.option("--author", "author_name", help="Only this author (default: every author with documents).")
@click.option("--writer", type=click.Choice(["template", "llm"]), default="template", show_default=True,
              help="Who writes the requests: templates from the author's titles, headings and key phrases, or "
                   "the configured LLM (TWIN_LLM_*).")
@click.option("--rejected-by", type=click.Choice(["promoted", "llm"]), default="promoted", show_default=True,
              help="Who writes the preference triples' rejected answers: the author's promoted model, or the "
                   "configured LLM.")
@click.option("--test-share", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1,
              show_default=True, help="Share of documents held out (kept once given).")
def datasets_build(author_name: str | None, writer: str, rejected_by: str, test_share: float):
    """Build the datasets in-process (the `datasets_job`), one line per author with the counts and versions.
    Preference triples need a model to reject: with none promoted yet, only instructions are built."""
    import dagster as dg

    from twin_assets.runs import run_job_for_authors

    with open_warehouse() as warehouse:
        selected = authors_with_documents(warehouse, author_name)
    if not selected:
        fail("no author has documents yet; crawl or import some first, then run `twin features`")
    selection = [dg.AssetKey("instruction_dataset")]
    ops = {"instruction_dataset": {"config": {"writer": writer, "test_share": test_share}}}
    if rejected_by == "llm" or _registry().promoted_versions():
        selection.append(dg.AssetKey("preference_dataset"))
        ops["preference_dataset"] = {"config": {"rejected_by": rejected_by}}
    else:
        click.echo("no model is promoted yet to write rejected answers: building instruction datasets only "
                   "(`twin demo` or the models job trains one; or pass --rejected-by llm)", err=True)
    if not run_job_for_authors("datasets_job", selected, run_config={"ops": ops}, report=click.echo,
                               asset_selection=selection):
        sys.exit(1)


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def datasets_list(as_json: bool):
    """Every dataset version: its author, kind, sizes and what it was made from."""
    entries = _dataset_versions(_registry())
    if as_json:
        click.echo(json.dumps([e.model_dump(mode="json") for e in entries], indent=2))
        return
    if not entries:
        fail("no dataset versions yet: run `twin datasets build` (or `make demo`)")
    click.echo(f"{'version':<12}  {'dataset':<12}  {'author':<20}  {'train':>6}  {'test':>5}  {'created':<16}  from")
    for e in entries:
        click.echo(f"{e.short:<12}  {e.metadata.get('dataset', '-'):<12}  {e.metadata.get('author', '-'):<20}  "
                   f"{e.metadata.get('train', 0):>6}  {e.metadata.get('test', 0):>5}  {e.created_at:%Y-%m-%d %H:%M}  "
                   f"{','.join(p[:12] for p in e.parents) or '-'}")


@datasets.command("show")
@click.argument("version")
@click.option("--samples", default=5, show_default=True, type=click.IntRange(0, 100), help="Train samples shown.")
def datasets_show(version: str, samples: int):
    """A dataset version's card (counts per split and category, each filter's toll, the writer, the
    documents on each side) and its first train samples."""
    from twin_assets.datasets.build import read_card, read_jsonl
    from twin_resources.domain.models import RegistryError

    try:
        entry = _registry().get(version)
    except RegistryError as error:
        fail(str(error))
    if entry.kind != "dataset":
        fail(f"{entry.short} is a {entry.kind} model, not a dataset (see: twin datasets list)")
    card = read_card(entry.path)
    documents = card.pop("documents")
    click.echo(json.dumps({**card, "documents": {side: len(ids) for side, ids in documents.items()}}, indent=2,
                          ensure_ascii=False))
    for record in read_jsonl(entry.path / "train.jsonl")[:samples]:
        click.echo("\n" + "-" * 72)
        for field, value in record.items():
            if field in ("instruction", "output", "prompt", "chosen", "rejected"):
                click.echo(f"{field}:\n{textwrap.indent(textwrap.shorten(value, 600), '  ')}")


@datasets.command("export")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--author", "author_name", help="Only this author (default: every author with a dataset).")
def datasets_export(directory: Path, author_name: str | None):
    """Write each author's current datasets as DIRECTORY/<author-key>/instruct/{train,test}.jsonl and
    DIRECTORY/<author-key>/preference/{train,test}.jsonl (what the datasets' assets last produced)."""
    from twin_resources.domain.models import RegistryError

    registry = _registry()
    with open_warehouse() as warehouse:
        selected = authors_with_documents(warehouse, author_name)
    written = 0
    for author in selected:
        for dataset, asset in DATASET_ASSETS.items():
            try:
                entry = registry.output_of(asset, author.key)
            except RegistryError:
                continue
            target = directory / author.key / EXPORT_FOLDERS[dataset]
            target.mkdir(parents=True, exist_ok=True)
            for side in ("train", "test"):
                shutil.copyfile(entry.path / f"{side}.jsonl", target / f"{side}.jsonl")
            click.echo(f"{author.full_name}: {dataset} {entry.short} -> {target}")
            written += 1
    if not written:
        fail("no datasets to export: run `twin datasets build` first")


COMMANDS = [datasets]
