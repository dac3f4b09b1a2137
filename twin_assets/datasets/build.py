"""An author's instruction dataset from their cleaned documents: extracts, requests, the split by document,
curation, and the files of a dataset version (JSONL per side, and a card)."""

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from twin_assets.datasets.curation import CurationReport, curate
from twin_assets.datasets.extracts import ExtractConfig, cut_extracts
from twin_assets.datasets.split import Side, assign_sides
from twin_assets.datasets.writers import InstructionWriter
from twin_resources.domain.documents import Category
from twin_resources.domain.features import CleanedDocument
from twin_resources.domain.training import InstructionSample

PROSE = (Category.ARTICLES, Category.POSTS)


@dataclass
class InstructionDataset:
    train: list[InstructionSample]
    test: list[InstructionSample]
    sides: dict[str, Side]  # every document's side, kept for the next build
    extracts: int
    unwritten: int  # extracts the writer had no request for
    curation: CurationReport
    writer: str

    def counts(self) -> dict[str, dict[str, int]]:
        return {side: dict(Counter(sample.category for sample in samples))
                for side, samples in (("train", self.train), ("test", self.test))}

    def documents(self, side: Side) -> list[str]:
        return sorted(document_id for document_id, found in self.sides.items() if found == side)


def build_instruction_dataset(documents: list[CleanedDocument], writer: InstructionWriter,
                              previous_sides: dict[str, Side] | None = None, test_share: float = 0.1,
                              extracts: ExtractConfig | None = None) -> InstructionDataset:
    prose = sorted((d for d in documents if d.category in PROSE and not d.is_empty), key=lambda d: d.id)
    sides = assign_sides({d.id: d.content for d in prose}, previous_sides, test_share)
    samples: dict[Side, list[InstructionSample]] = {"train": [], "test": []}
    cut = unwritten = 0
    for document in prose:
        for extract in cut_extracts(document.id, document.content, extracts):
            cut += 1
            instruction = writer.write(extract, document.title, document.category)
            if not instruction:
                unwritten += 1
                continue
            samples[sides[document.id]].append(InstructionSample(
                instruction=instruction, answer=extract.text, document_id=document.id, author_id=document.author_id,
                author=document.author_name, link=document.link, category=document.category.value))
    train, test, report = curate(samples["train"], samples["test"])
    if unwritten:
        report.dropped["no request written"] += unwritten
    return InstructionDataset(train, test, sides, cut, unwritten, report, writer.name)


def write_dataset(directory: Path, dataset: InstructionDataset, card: dict) -> None:
    """train.jsonl and test.jsonl (`instruction`, `output`, `author`, `document_id`, `link`: what
    `datasets.load_dataset("json", ...)` reads), and card.json."""
    for side, samples in (("train", dataset.train), ("test", dataset.test)):
        with open(directory / f"{side}.jsonl", "w", encoding="utf-8") as handle:
            for sample in samples:
                handle.write(json.dumps({"instruction": sample.instruction, "output": sample.answer,
                                         "author": sample.author, "document_id": sample.document_id,
                                         "link": sample.link, "category": sample.category},
                                        ensure_ascii=False) + "\n")
    (directory / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False, sort_keys=True))
