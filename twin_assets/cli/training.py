"""`twin train`: an author's twin from their features, in process: what is missing is built (datasets, the
base model, SFT, DPO, the author's promotion), what was built with the same inputs and settings is reused."""

import sys
from pathlib import Path

import click

from twin_assets.cli.common import authors_with_documents, fail, open_warehouse

SECTIONS = {"sft", "dpo", "lora"}


def _training_sections(path: Path | None) -> dict:
    """The YAML file's `sft`, `dpo` and `lora` sections; a one-line error for anything else."""
    if path is None:
        return {}
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        fail(f"cannot read {path}: {error}")
    if not isinstance(loaded, dict) or not all(isinstance(v, dict) for v in loaded.values()):
        fail(f"{path} must map sections (sft, dpo, lora) to settings")
    if unknown := set(loaded) - SECTIONS:
        fail(f"{path} has unknown sections {', '.join(sorted(unknown))}: use sft, dpo and lora")
    from twin_assets.training.settings import TrainingConfig, check_sections

    try:
        check_sections(TrainingConfig(**loaded))
    except ValueError as error:
        fail(str(error))
    return loaded


@click.command()
@click.option("--author", "author_name", help="Only this author (default: every author with documents).")
@click.option("--trainer", type=click.Choice(["trl", "axolotl"]),
              help="The trainer run as a Dagster Pipes child process (default: TWIN_TRAINER, trl); axolotl runs "
                   "in its own environment (make axolotl-env).")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="A YAML file with sections sft, dpo and lora (keys as in trl's SFTConfig and DPOConfig and "
                   "peft's LoraConfig), e.g. `sft: {learning_rate: 1.0e-4}`.")
def train(author_name: str | None, trainer: str | None, config_file: Path | None):
    """Train the author's twin (the `training_job`) and print one line per author with each model's version
    and eval loss."""
    from twin_assets.runs import run_job_for_authors

    sections = _training_sections(config_file)
    with open_warehouse() as warehouse:
        selected = authors_with_documents(warehouse, author_name)
    if not selected:
        fail("no author has documents yet; crawl or import some first, then run `twin features`")
    config = {**sections, **({"trainer": trainer} if trainer else {})}
    ops = {asset: {"config": config} for asset in ("sft_model", "dpo_model")} if config else {}
    if not run_job_for_authors("training_job", selected, run_config={"ops": ops}, report=click.echo):
        sys.exit(1)


COMMANDS = [train]
