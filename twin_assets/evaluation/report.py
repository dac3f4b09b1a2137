"""An author's evaluation: the candidate, the model that serves the author now and the base model, scored
side by side on the author's held-out test split, and the gate's decision."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from twin_assets.evaluation.gate import GateDecision, decide
from twin_assets.evaluation.scoring import ModelFigures, figures_for
from twin_assets.evaluation.voice import train_voice
from twin_resources.domain.models import ModelVersion
from twin_resources.domain.training import InstructionSample
from twin_resources.model_registry import Registry

ROLES = ("candidate", "served", "base")


@dataclass
class EvalSettings:
    prompts: int
    min_new_tokens: int
    max_new_tokens: int
    margin: float
    tolerances: dict[str, float]
    first_twin_tolerance: float


@dataclass
class EvalReport:
    versions: dict[str, str]  # role -> version
    figures: dict[str, ModelFigures]  # version -> figures
    decision: GateDecision
    voice_separation: float | None
    voice_trained_on: tuple[int, int]
    test: list[InstructionSample]

    def metrics(self, role: str) -> dict[str, float | None]:
        return self.figures[self.versions[role]].metrics


def transformers_version(registry: Registry, entry: ModelVersion) -> ModelVersion:
    """The transformers weights a version was made from (a GGUF file's parent), or the version itself."""
    seen = entry
    while seen.format != "transformers":
        if not seen.parents:
            raise ValueError(f"model version {entry.short} ({entry.format}) has no transformers weights to evaluate")
        seen = registry.get(seen.parents[0])
    return seen


def evaluate(registry: Registry, candidate: ModelVersion, served: ModelVersion, base: ModelVersion,
             own: dict[str, list[InstructionSample]], others: dict[str, list[InstructionSample]],
             embed: Callable[[list[str]], np.ndarray], settings: EvalSettings, first_twin: bool,
             progress: Callable[[str], None] = print) -> EvalReport:
    """`own`: the author's samples by side; `others`: the other authors' samples, by side. `first_twin`: no
    twin is promoted for the author yet (`served` is what answers for everyone: the base model, at first)."""
    versions = {"candidate": candidate, "served": transformers_version(registry, served), "base": base}
    test, train = own["test"], own["train"]
    # the base model's writing on train requests is "not the author" for the voice classifier
    voice_prompts = [s.instruction for s in train[:settings.prompts]]
    figures: dict[str, ModelFigures] = {}
    for role in ("base", "served", "candidate"):
        entry = versions[role]
        if entry.version not in figures:
            progress(f"evaluating the {role} model {entry.short} on {len(test)} test samples")
            figures[entry.version] = figures_for(entry.path, entry.version, test, settings.prompts,
                                                 settings.min_new_tokens, settings.max_new_tokens, embed,
                                                 voice_prompts if role == "base" else ())
    base_writing = figures[base.version].extra_answers
    voice = train_voice([s.answer for s in train], [s.answer for s in others["train"]] + base_writing)
    separation = None
    if voice is not None:
        for entry in figures.values():
            entry.metrics["voice"] = float(np.mean(voice.score(entry.answers))) if entry.answers else None
        separation = voice.separation([s.answer for s in test[:settings.prompts]],
                                      figures[base.version].answers + [s.answer for s in others["test"]])
    if candidate.version == versions["served"].version:
        decision = GateDecision(True, [f"{candidate.short} already serves this author"])
    else:
        decision = decide(figures[candidate.version].metrics, figures[versions["served"].version].metrics,
                          settings.margin, settings.tolerances,
                          settings.first_twin_tolerance if first_twin else None)
    return EvalReport({role: entry.version for role, entry in versions.items()}, figures, decision, separation,
                      voice.trained_on if voice else (0, 0), test)
