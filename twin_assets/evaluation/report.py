"""An author's evaluation: the candidate, the model that serves the author now and the base model, scored
side by side on the author's held-out test split, and the gate's decision."""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from twin_assets.evaluation.gate import GateDecision, decide
from twin_assets.evaluation.judge import Grounded, grade, rag_scores
from twin_assets.evaluation.scoring import ModelFigures, figures_for
from twin_assets.evaluation.voice import train_voice
from twin_resources.domain.models import ModelVersion
from twin_resources.domain.search import Hit
from twin_resources.domain.templates import rag_messages
from twin_resources.domain.training import InstructionSample
from twin_resources.judge import Judge
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
class Judging:
    """A configured judge, and the author's retrieval for the RAG prompts it judges."""

    judge: Judge
    retrieve: Callable[[str], list[Hit]]  # the author's passages for a request, best first
    author_name: str


@dataclass
class EvalReport:
    versions: dict[str, str]  # role -> version
    figures: dict[str, ModelFigures]  # version -> figures
    decision: GateDecision
    voice_separation: float | None
    voice_trained_on: tuple[int, int]
    test: list[InstructionSample]
    judge_failures: list[str] = field(default_factory=list)

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
             progress: Callable[[str], None] = print, judging: Judging | None = None) -> EvalReport:
    """`own`: the author's samples by side; `others`: the other authors' samples, by side. `first_twin`: no
    twin is promoted for the author yet (`served` is what answers for everyone: the base model, at first).
    `judging`: a judge grades each model's first answers and its answers grounded in retrieved passages."""
    versions = {"candidate": candidate, "served": transformers_version(registry, served), "base": base}
    test, train = own["test"], own["train"]
    # the base model's writing on train requests is "not the author" for the voice classifier
    voice_prompts = [s.instruction for s in train[:settings.prompts]]
    judged = test[:min(judging.judge.prompts, settings.prompts)] if judging else []
    passages = [judging.retrieve(s.instruction) for s in judged] if judging else []
    rag_prompts = [rag_messages(s.instruction, judging.author_name, hits)[0] for s, hits in zip(judged, passages)]
    figures: dict[str, ModelFigures] = {}
    for role in ("base", "served", "candidate"):
        entry = versions[role]
        if entry.version not in figures:
            progress(f"evaluating the {role} model {entry.short} on {len(test)} test samples")
            figures[entry.version] = figures_for(entry.path, entry.version, test, settings.prompts,
                                                 settings.min_new_tokens, settings.max_new_tokens, embed,
                                                 voice_prompts if role == "base" else (), rag_prompts)
    base_writing = figures[base.version].extra_answers
    voice = train_voice([s.answer for s in train], [s.answer for s in others["train"]] + base_writing)
    separation = None
    if voice is not None:
        for entry in figures.values():
            entry.metrics["voice"] = float(np.mean(voice.score(entry.answers))) if entry.answers else None
        separation = voice.separation([s.answer for s in test[:settings.prompts]],
                                      figures[base.version].answers + [s.answer for s in others["test"]])
    failures = []
    for entry in figures.values() if judging else ():
        progress(f"the judge scores {entry.version[:12]} on {len(judged)} answers and {len(judged)} RAG answers")
        failures += judge_figures(judging.judge, entry, judged, passages)
    if candidate.version == versions["served"].version:
        decision = GateDecision(True, [f"{candidate.short} already serves this author"])
    else:
        decision = decide(figures[candidate.version].metrics, figures[versions["served"].version].metrics,
                          settings.margin, settings.tolerances,
                          settings.first_twin_tolerance if first_twin else None)
    return EvalReport({role: entry.version for role, entry in versions.items()}, figures, decision, separation,
                      voice.trained_on if voice else (0, 0), test, failures)


def judge_figures(judge: Judge, entry: ModelFigures, judged: list[InstructionSample],
                  passages: list[list[Hit]]) -> list[str]:
    """The judge's scores written into the model's metrics; what it could not score, one line each."""
    grades = grade(judge.llm(), [s.instruction for s in judged], entry.answers[:len(judged)])
    grounded = [Grounded(s.instruction, answer, [h.passage.content for h in hits], s.answer)
                for s, answer, hits in zip(judged, entry.rag_answers, passages)]
    rag = rag_scores(judge.metric_model(), grounded, judge.concurrency)
    entry.metrics.update(grades.scores)
    entry.metrics.update(rag.scores)
    return grades.failures + rag.failures
