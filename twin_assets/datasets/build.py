"""An author's instruction dataset from their cleaned documents: extracts, requests, the split by document,
curation, and the files of a dataset version (JSONL per side, and a card)."""

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from twin_assets.datasets.curation import CurationReport, curate
from twin_assets.datasets.extracts import ExtractConfig, cut_extracts
from twin_assets.datasets.split import SIDES, Side, assign_sides
from twin_assets.datasets.writers import InstructionWriter, Passage
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
    curation: CurationReport
    writer: str
    writer_model: str = ""
    failures: list[str] = field(default_factory=list)  # what the writer said when it had no request

    def side(self, side: Side) -> list[InstructionSample]:
        return self.train if side == "train" else self.test

    def counts(self) -> dict[str, dict[str, int]]:
        return {side: dict(Counter(sample.category for sample in self.side(side))) for side in SIDES}

    def documents(self, side: Side) -> list[str]:
        return sorted(document_id for document_id, found in self.sides.items() if found == side)


def build_instruction_dataset(documents: list[CleanedDocument], writer: InstructionWriter,
                              previous_sides: dict[str, Side] | None = None, test_share: float = 0.1,
                              extracts: ExtractConfig | None = None, per_extract: int = 1,
                              on_start: Callable[[int], None] = lambda total: None,
                              on_done: Callable[[], None] = lambda: None) -> InstructionDataset:
    """Every extract of the author's articles and posts with up to `per_extract` requests each; `on_start`
    hears how many extracts there are, `on_done` of each one written."""
    prose = sorted((d for d in documents if d.category in PROSE and not d.is_empty), key=lambda d: d.id)
    sides = assign_sides({d.id: d.content for d in prose}, previous_sides, test_share)
    passages = [(document, Passage(extract, document.title, document.category))
                for document in prose for extract in cut_extracts(document.id, document.content, extracts)]
    on_start(len(passages))
    written = writer.write([passage for _, passage in passages], per_extract, on_done)
    samples: dict[Side, list[InstructionSample]] = {"train": [], "test": []}
    unwritten: Counter = Counter()
    failures = []
    for (document, passage), result in zip(passages, written, strict=True):
        if not result.requests:
            unwritten[f"extract without a request: {result.failure}"] += 1
            failures += [result.detail] if result.detail else []
        for instruction in result.requests[:per_extract]:
            samples[sides[document.id]].append(InstructionSample(
                instruction=instruction, answer=passage.extract.text, document_id=document.id,
                author_id=document.author_id, author=document.author_name, link=document.link,
                category=document.category.value))
    # the test side's requests are the evaluation's prompts: no train answer may contain them
    train, test, report = curate(samples["train"], samples["test"],
                                 evaluation_prompts=[sample.instruction for sample in samples["test"]])
    report.dropped.update(unwritten)
    return InstructionDataset(train, test, sides, len(passages), report, writer.name, writer.model, failures)


INSTRUCTION_FIELDS = ("instruction", "output", "author", "document_id", "link", "category")


def sample_record(sample: InstructionSample) -> dict:
    return {"instruction": sample.instruction, "output": sample.answer, "author": sample.author,
            "document_id": sample.document_id, "link": sample.link, "category": sample.category}


def write_jsonl(path: Path, records) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_dataset(directory: Path, dataset: InstructionDataset, card: dict) -> None:
    """train.jsonl and test.jsonl (`instruction`, `output`, `author`, `document_id`, `link`, `category`:
    what `datasets.load_dataset("json", ...)` reads), and card.json."""
    for side in SIDES:
        write_jsonl(directory / f"{side}.jsonl", map(sample_record, dataset.side(side)))
    write_card(directory, card)


def write_card(directory: Path, card: dict) -> None:
    (directory / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False, sort_keys=True))


def read_card(directory: Path) -> dict:
    return json.loads((directory / "card.json").read_text())


def read_instruction_samples(directory: Path, author_id: str = "") -> dict[Side, list[InstructionSample]]:
    """A dataset version's samples, by side."""
    return {side: [InstructionSample(instruction=r["instruction"], answer=r["output"], author=r["author"],
                                     document_id=r["document_id"], link=r["link"], category=r["category"],
                                     author_id=author_id)
                   for r in read_jsonl(directory / f"{side}.jsonl")] for side in SIDES}


def read_instruction_dataset(directory: Path) -> InstructionDataset:
    """A registered dataset version as it was built (what a build with the same recipe reuses)."""
    card = read_card(directory)
    samples = read_instruction_samples(directory)
    return InstructionDataset(samples["train"], samples["test"],
                              {document: side for side in SIDES for document in card["documents"][side]},
                              card["extracts"], CurationReport(Counter(card["dropped"])), card["writer"],
                              card.get("writer_model", ""))
