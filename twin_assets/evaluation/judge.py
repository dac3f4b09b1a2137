"""What a judge model says of generated answers: the book's two grades (accuracy and style, 1 to 3, after its
criteria, in our words) through our `LLM`, and RAG metrics of answers grounded in retrieved passages through
opik's LLM-as-judge metrics. A judge's failed call costs that one score, counted; the others stand."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from twin_resources.llm import LLM, LLMError

GRADES = ("accuracy", "style")
RAG = ("hallucination", "answer_relevance", "context_precision", "context_recall")

GRADING = """You grade an answer written for a technical blog or social media post.

Request: {request}

Answer: {answer}

Grade it on two criteria, each from 1 to 3, and give a short analysis for each.
Accuracy: is what the answer says about the subject correct and complete?
  1: it states things that are wrong, or leaves out what matters;
  2: it is mostly right, with small mistakes or gaps;
  3: it is right throughout and covers the subject well.
Style: does it read like a good post for a broad technical audience?
  1: stiff or academic, with needlessly complicated words;
  2: it balances technical content and readability, but still sounds formal in places;
  3: plain, readable language, with precise technical terms only where they are needed."""

_GRADE = {"type": "object", "properties": {"analysis": {"type": "string"},
                                           "score": {"type": "integer", "minimum": 1, "maximum": 3}},
          "required": ["analysis", "score"]}
GRADE_SCHEMA = {"type": "object", "properties": {name: _GRADE for name in GRADES}, "required": list(GRADES)}


@dataclass
class Judged:
    scores: dict[str, float | None]
    failures: list[str] = field(default_factory=list)  # one line per score the judge could not give


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def grade(llm: LLM, requests: list[str], answers: list[str]) -> Judged:
    """The mean accuracy and style grades of the answers to the requests."""
    def ask(model: LLM, pair: tuple[str, str]) -> dict:
        request, answer = pair
        return model.structured([{"role": "user", "content": GRADING.format(request=request, answer=answer)}],
                                GRADE_SCHEMA)

    results = llm.each(ask, list(zip(requests, answers)))
    graded = [r for r in results if not isinstance(r, LLMError)]
    failures = [f"grade: {r}" for r in results if isinstance(r, LLMError)]
    return Judged({name: _mean([g[name]["score"] for g in graded]) for name in GRADES}, failures)


@dataclass(frozen=True)
class Grounded:
    """One RAG answer and what it stands on."""

    request: str
    answer: str
    passages: list[str]
    reference: str  # the author's own answer


def _rag_metrics(model) -> dict[str, Callable[[Grounded], float]]:
    from opik.evaluation.metrics import AnswerRelevance, ContextPrecision, ContextRecall, Hallucination

    hallucination = Hallucination(model=model, track=False)
    relevance = AnswerRelevance(model=model, track=False)
    precision = ContextPrecision(model=model, track=False)
    recall = ContextRecall(model=model, track=False)
    return {
        "hallucination": lambda g: hallucination.score(input=g.request, output=g.answer, context=g.passages).value,
        "answer_relevance": lambda g: relevance.score(input=g.request, output=g.answer, context=g.passages).value,
        "context_precision": lambda g: precision.score(input=g.request, output=g.answer, expected_output=g.reference,
                                                       context=g.passages).value,
        "context_recall": lambda g: recall.score(input=g.request, output=g.answer, expected_output=g.reference,
                                                 context=g.passages).value,
    }


def rag_scores(model, grounded: list[Grounded], concurrency: int = 4) -> Judged:
    """The mean of each of opik's RAG metrics over the answers. `model`: opik's judge model."""
    metrics = _rag_metrics(model)
    jobs = [(name, g) for g in grounded for name in RAG]

    def score(job: tuple[str, Grounded]) -> float | str:
        name, g = job
        try:
            return float(metrics[name](g))
        except Exception as error:  # a remote judge's outage or unparsable answer costs this score alone
            return f"{name}: {str(error)[:200]}"

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        results = list(pool.map(score, jobs))
    values: dict[str, list[float]] = {name: [] for name in RAG}
    failures = []
    for (name, _), result in zip(jobs, results):
        if isinstance(result, str):
            failures.append(result)
        else:
            values[name].append(result)
    return Judged({name: _mean(values[name]) for name in RAG}, failures)
