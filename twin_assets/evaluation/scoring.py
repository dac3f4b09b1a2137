"""Each model's figures on the author's held-out test split: the mean negative log-likelihood per token of
the author's own answers given the requests (the primary metric, no judge needed), and, for greedy answers to
the first requests, their embedding similarity and ROUGE-L against the author's answer and the voice score."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twin_assets.trainers.causal_lm import answer_log_likelihood, greedy_answers
from twin_resources.domain.templates import CHAT_TEMPLATE
from twin_resources.domain.training import EVALUATION_METRICS, InstructionSample

METRICS = EVALUATION_METRICS
DESCRIPTIONS = {
    "nll": "mean negative log-likelihood per token of the author's held-out answers (lower is better)",
    "similarity": "cosine similarity of a generated answer's embedding to the author's answer's",
    "rouge_l": "ROUGE-L F1 of a generated answer against the author's answer (longest common subsequence)",
    "voice": "probability that the stylometric classifier gives the generated answer to the author",
    "accuracy": "the judge's grade of what an answer says, 1 (wrong or missing what matters) to 3 (right and complete)",
    "style": "the judge's grade of how an answer reads as a post, 1 (stiff, academic) to 3 (plain and precise)",
    "hallucination": "opik: the share of RAG answers the judge finds not supported by their passages (lower is better)",
    "answer_relevance": "opik: how well a RAG answer addresses the request, 0 to 1",
    "context_precision": "opik: how much of what the retrieved passages hold the author's answer needed, 0 to 1",
    "context_recall": "opik: how much of the author's answer the retrieved passages cover, 0 to 1",
}


@dataclass
class ModelFigures:
    version: str
    metrics: dict[str, float | None]
    answers: list[str] = field(default_factory=list)  # to the first test requests
    extra_answers: list[str] = field(default_factory=list)
    rag_answers: list[str] = field(default_factory=list)  # to RAG prompts (the request after its passages)


def load_model(directory: Path):
    """The model and its tokenizer (the shared chat template when the tokenizer has none), for inference."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    if tokenizer.chat_template is None:
        tokenizer.chat_template = CHAT_TEMPLATE
    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.bfloat16 if cuda else torch.float32,
                                                 device_map="auto" if cuda else None)
    return model.eval(), tokenizer


def held_out_nll(model, tokenizer, samples: list[InstructionSample]) -> float | None:
    total, tokens = 0.0, 0
    for sample in samples:
        loss, count = answer_log_likelihood(model, tokenizer, sample.instruction, sample.answer)
        total, tokens = total + loss, tokens + count
    return total / tokens if tokens else None


def similarity(embed: Callable[[list[str]], np.ndarray], answers: list[str], references: list[str]) -> float:
    generated, written = embed(answers), embed(references)
    generated = generated / np.maximum(np.linalg.norm(generated, axis=1, keepdims=True), 1e-12)
    written = written / np.maximum(np.linalg.norm(written, axis=1, keepdims=True), 1e-12)
    return float(np.mean(np.sum(generated * written, axis=1)))


def rouge_l(answers: list[str], references: list[str]) -> float:
    from opik.evaluation.metrics import ROUGE

    metric = ROUGE(rouge_type="rougeL", track=False)
    # an empty answer shares nothing with the author's (opik refuses to score it)
    return float(np.mean([metric.score(output=a, reference=r).value if a.strip() and r.strip() else 0.0
                          for a, r in zip(answers, references)]))


def figures_for(directory: Path, version: str, test: list[InstructionSample], prompts: int, min_new_tokens: int,
                max_new_tokens: int, embed: Callable[[list[str]], np.ndarray],
                also_answer: list[str] = (), rag_prompts: list[list[dict]] = ()) -> ModelFigures:
    """One model's figures (the voice score and a judge's come later, from its answers): the likelihood over
    the whole test split, the rest over its first `prompts` requests. `also_answer`: more requests to answer
    while the model is loaded (their answers in `extra_answers`); `rag_prompts`: conversations to answer (in
    `rag_answers`)."""
    model, tokenizer = load_model(directory)
    nll = held_out_nll(model, tokenizer, test)
    asked = test[:prompts]
    answers = greedy_answers(model, tokenizer, [s.instruction for s in asked], max_new_tokens, min_new_tokens)
    references = [s.answer for s in asked]
    metrics: dict[str, float | None] = {**dict.fromkeys(METRICS), "nll": nll}
    if asked:
        metrics["similarity"] = similarity(embed, answers, references)
        metrics["rouge_l"] = rouge_l(answers, references)
    extra = greedy_answers(model, tokenizer, list(also_answer), max_new_tokens, min_new_tokens)
    grounded = greedy_answers(model, tokenizer, list(rag_prompts), max_new_tokens, min_new_tokens)
    return ModelFigures(version, metrics, answers, extra, grounded)
