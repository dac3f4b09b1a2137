"""Fine-tuning a cross-encoder reranker from the embedding model's own weights, on pairs cut from the corpus.

Offline there is no pretrained reranker, so the corpus supplies the supervision: a chunk's first sentence is
a query its own remainder answers (a positive pair), and the chunks of *other* documents that vector search
ranks highest for that query are hard negatives. Titles are left out on purpose: the retrieval benchmark
asks with titles, and a reranker trained on them would be graded on its training data.
"""

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np

from twin_resources.settings import quiet_transformers

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class RerankerSpec(dg.Config):
    max_pairs: int = 400  # positives; each brings `negatives_per_query` negatives (about 3 min on 2 cores)
    negatives_per_query: int = 2
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 3e-5
    seed: int = 0


@dataclass(frozen=True)
class ChunkText:
    document_id: str
    content: str
    vector: np.ndarray


def split_first_sentence(text: str) -> tuple[str, str] | None:
    """(first sentence, the rest) when both are substantial, else None."""
    parts = _SENTENCE_END.split(text.strip(), maxsplit=1)
    if len(parts) != 2:
        return None
    first, rest = parts
    if not 6 <= len(first.split()) <= 40 or len(rest.split()) < 20:
        return None
    return first, rest


def training_pairs(chunks: list[ChunkText], embed: Callable[[list[str]], np.ndarray],
                   spec: RerankerSpec) -> list[tuple[str, str, float]]:
    """(query, passage, label) triples: first sentence -> rest (1.0), hard negatives from other documents (0.0)."""
    rng = random.Random(spec.seed)
    candidates = [(i, split) for i, c in enumerate(chunks) if (split := split_first_sentence(c.content))]
    rng.shuffle(candidates)
    candidates = candidates[: spec.max_pairs]
    if not candidates:
        return []
    matrix = np.stack([c.vector for c in chunks]).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True).clip(min=1e-12)
    queries = embed([query for _, (query, _) in candidates])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True).clip(min=1e-12)
    triples = []
    for (index, (query, rest)), vector in zip(candidates, queries):
        triples.append((query, rest, 1.0))
        owner = chunks[index].document_id
        ranked = np.argsort(-(matrix @ vector))
        negatives = [j for j in ranked if chunks[j].document_id != owner][: spec.negatives_per_query]
        triples += [(query, chunks[j].content, 0.0) for j in negatives]
    rng.shuffle(triples)
    return triples


def train_reranker(base_model: str | Path, triples: list[tuple[str, str, float]], spec: RerankerSpec,
                   out_dir: Path) -> float:
    """Fine-tune a one-label cross-encoder from `base_model` (a BERT-style encoder) and save it; the final loss."""
    import tempfile

    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import PrinterCallback
    from transformers.utils import logging as transformers_logging

    quiet_transformers()
    if not triples:
        raise ValueError("no training pairs: the corpus has no chunk with a first sentence and a remainder")
    torch.manual_seed(spec.seed)
    transformers_logging.set_verbosity_error()  # the "classifier head newly initialized" report is expected
    model = CrossEncoder(str(base_model), num_labels=1, max_length=256)
    data = Dataset.from_dict({"query": [t[0] for t in triples], "passage": [t[1] for t in triples],
                              "label": [t[2] for t in triples]})
    with tempfile.TemporaryDirectory(prefix="twin-reranker-") as scratch:
        arguments = CrossEncoderTrainingArguments(
            output_dir=scratch, num_train_epochs=spec.epochs, per_device_train_batch_size=spec.batch_size,
            learning_rate=spec.learning_rate, warmup_steps=0.1, save_strategy="no", report_to=[], seed=spec.seed,
            use_cpu=not torch.cuda.is_available(), bf16=False, disable_tqdm=True, logging_steps=10)
        trainer = CrossEncoderTrainer(model=model, args=arguments, train_dataset=data,
                                      loss=BinaryCrossEntropyLoss(model))
        trainer.remove_callback(PrinterCallback)  # no loss dicts on stdout
        output = trainer.train()
    model.save_pretrained(str(out_dir))
    return float(output.training_loss)
