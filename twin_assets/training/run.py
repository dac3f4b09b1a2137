"""One training stage, from the parent's side: the trainer as a Dagster Pipes child process, writing into a
registry staging directory; the version is registered only when the child finished, so a killed or failed
training registers nothing. The same start model, dataset and settings reuse the version."""

import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from twin_assets.training.pods import run_trainer
from twin_assets.training.settings import TrainingConfig, check_sections
from twin_resources.domain.models import ModelVersion
from twin_resources.domain.templates import CHAT_TEMPLATE
from twin_resources.model_registry import Registry, recipe_hash
from twin_resources.settings import load_settings

# Dagster Pipes reads its own message-writer count through a preview API: no news to whoever trains.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*expected_writer_count.*")

TRAINER_VERSION = "1"  # bumped when the trainer makes different files from the same inputs
PROJECT = Path(__file__).resolve().parents[2]
AXOLOTL_ENV = PROJECT / ".venv-axolotl"
TRAINERS = ("trl", "axolotl")


def trainer_command(trainer: str) -> tuple[list[str], dict[str, str]]:
    """How to start `trainer`: its interpreter and module, and its environment. trl runs in the project's
    environment; axolotl in its own, which must not inherit this one's (VIRTUAL_ENV, PYTHONPATH)."""
    if trainer not in TRAINERS:
        raise dg.Failure(f"unknown trainer {trainer!r}: choose one of {', '.join(TRAINERS)}")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if trainer == "trl":
        return [sys.executable, "-m", "twin_assets.trainers.trl_trainer"], env
    python = AXOLOTL_ENV / "bin" / "python"
    if not python.exists():
        raise dg.Failure(f"the axolotl trainer needs its own environment, {AXOLOTL_ENV}: run `make axolotl-env` "
                         "(about 4 GB; it pins an older Hugging Face stack)")
    env.pop("PYTHONHOME", None)
    return [str(python), "-m", "twin_assets.trainers.axolotl_trainer"], {
        **env, "VIRTUAL_ENV": str(AXOLOTL_ENV), "PYTHONPATH": str(PROJECT),
        "PATH": f"{AXOLOTL_ENV / 'bin'}{os.pathsep}{env.get('PATH', '')}", "AXOLOTL_DO_NOT_TRACK": "1"}


@dataclass
class StageOutcome:
    entry: ModelVersion
    summary: dict  # the trainer's training.json
    reused: bool


def train_stage(context: dg.AssetExecutionContext, stage: str, config: TrainingConfig, start: ModelVersion,
                dataset: ModelVersion, registry: Registry, pipes: dg.PipesClient, author_key: str,
                progress_bar: bool = False) -> StageOutcome:
    try:
        check_sections(config)
    except ValueError as error:
        raise dg.Failure(str(error)) from None
    samples = dataset.metadata.get("train", 0)
    if not samples:
        raise dg.Failure(f"the {stage} dataset {dataset.short} has no train samples: nothing to learn from "
                         "(see its card: twin datasets show)")
    settings = {stage: config.section(stage), "lora": config.section("lora"), "qlora": config.qlora}
    environment = load_settings()
    trainer = config.trainer or environment.trainer
    command, env = trainer_command(trainer)
    recipe = recipe_hash(stage, TRAINER_VERSION, trainer, start.version, dataset.version,
                         json.dumps(settings, sort_keys=True))
    existing = registry.find(recipe=recipe, kind=stage)
    if existing is not None:
        context.log.info(f"{stage}: {start.short} on {dataset.short} with these settings trained {existing.short} "
                         "before: reused")
        return StageOutcome(existing, json.loads((existing.path / "training.json").read_text()), True)
    with registry.staging() as staged:
        extras = {"stage": stage, "model": str(start.path), "data": str(dataset.path), "output": str(staged),
                  "chat_template": CHAT_TEMPLATE, "progress_bar": progress_bar, **settings}
        try:
            run_trainer(pipes, context, command, extras, env, environment)
        except Exception as error:  # Dagster's DagsterPipesExecutionError is not public API
            failure = staged / "failure.txt"
            reason = failure.read_text().strip() if failure.is_file() else _reason(error)
            raise dg.Failure(f"the {stage} trainer failed: {reason}") from None
        summary = json.loads((staged / "training.json").read_text())
        entry = registry.register(
            staged, name=f"{author_key}-{stage}", kind=stage, format="transformers", parents=[start.version],
            dataset=dataset.version, recipe=recipe,
            metadata={"author": author_key, "source": start.metadata.get("source", ""), "trainer": trainer,
                      "qlora": bool(summary.get("qlora")),
                      **final_losses(summary["history"])})
    return StageOutcome(entry, summary, False)


def _reason(error: Exception) -> str:
    return str(error).strip().splitlines()[-1][:300] if str(error).strip() else type(error).__name__


def final_losses(history: list[dict]) -> dict:
    """The last train and eval loss the trainer logged (and DPO's reward margin and accuracy)."""
    figures = {}
    for key, name in (("loss", "train_loss"), ("eval_loss", "eval_loss"), ("rewards/margins", "reward_margin"),
                      ("rewards/accuracies", "reward_accuracy"), ("eval_rewards/margins", "eval_reward_margin"),
                      ("eval_rewards/accuracies", "eval_reward_accuracy")):
        values = [entry[key] for entry in history if key in entry]
        if values:
            figures[name] = float(values[-1])
    return figures
