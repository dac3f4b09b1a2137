"""Dataset samples and evaluation results: what the training half of the graph passes between its assets."""

from pydantic import BaseModel


class InstructionSample(BaseModel):
    """A request and the author's own words answering it (supervised fine-tuning)."""

    instruction: str
    answer: str
    document_id: str  # the split is by document, so one document's samples never land on both sides
    author_id: str
    author: str = ""  # the author's name as written
    link: str = ""  # where the answer was published
    category: str = ""


class PreferenceSample(BaseModel):
    """A request, the author's own words (chosen) and a generic answer (rejected), for preference tuning."""

    prompt: str
    chosen: str
    rejected: str
    document_id: str
    author_id: str
    author: str = ""
    link: str = ""
    category: str = ""


# What an evaluation scores every model on (`nll` first: the primary metric, lower is better), then what a
# judge scores when one is configured. A candidate's figures are written on its version as `eval_<metric>`,
# the base model's beside them as `base_eval_<metric>`.
OFFLINE_METRICS = ("nll", "similarity", "rouge_l", "voice")
JUDGED_METRICS = ("accuracy", "style", "hallucination", "answer_relevance", "context_precision", "context_recall")
EVALUATION_METRICS = OFFLINE_METRICS + JUDGED_METRICS
LOWER_IS_BETTER = frozenset({"nll", "hallucination"})


class EvaluationResult(BaseModel):
    """One metric of one model on one author's held-out split."""

    model_version: str
    author_key: str
    metric: str
    value: float
    higher_is_better: bool = True
