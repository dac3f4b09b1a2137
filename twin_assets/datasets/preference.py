"""Preference triples for DPO: a request, the author's own words (chosen) and what a model writes for the
same request (rejected), so the twin learns to prefer the author's voice to the model's.

The sides are the instruction dataset's, so a document's triples never cross the split. The book's filters
apply to the chosen text: at least 100 characters, starting with a capital, ending a sentence.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from twin_assets.datasets.build import read_card, read_jsonl
from twin_assets.datasets.split import SIDES, Side
from twin_resources.domain.training import InstructionSample, PreferenceSample
from twin_resources.llm import LLM, LLMError

MIN_CHOSEN_CHARS = 100


def chosen_failure(text: str) -> str | None:
    """Why the author's text is no `chosen` answer by the book's filters, or None."""
    text = text.strip()
    if len(text) < MIN_CHOSEN_CHARS:
        return f"chosen shorter than {MIN_CHOSEN_CHARS} characters"
    if not text[0].isupper():
        return "chosen does not start with a capital"
    if text[-1] not in ".!?":
        return "chosen does not end a sentence"
    return None


@dataclass
class PreferenceDataset:
    train: list[PreferenceSample]
    test: list[PreferenceSample]
    rejecting_model: str
    dropped: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def side(self, side: Side) -> list[PreferenceSample]:
        return self.train if side == "train" else self.test


def ask_for_rejected(llm: LLM, prompt: str) -> str:
    messages = [{"role": "user", "content": prompt}]
    return llm.chat(messages, max_tokens=llm.answer_room(messages)).text.strip()


def build_preference_dataset(instructions: dict[Side, list[InstructionSample]], llm: LLM,
                             on_start: Callable[[int], None] = lambda total: None,
                             on_done: Callable[[], None] = lambda: None) -> PreferenceDataset:
    """A triple for every instruction sample whose answer passes the chosen filters and for which the model
    wrote something other than the author's text. One request fails alone, counted."""
    dropped: Counter = Counter()
    kept: dict[Side, list[InstructionSample]] = {}
    for side in SIDES:
        kept[side] = []
        for sample in instructions[side]:
            if reason := chosen_failure(sample.answer):
                dropped[reason] += 1
            else:
                kept[side].append(sample)
    prompts = sorted({sample.instruction for side in SIDES for sample in kept[side]})
    on_start(len(prompts))
    answers = dict(zip(prompts, llm.each(ask_for_rejected, prompts, on_done), strict=True))
    triples: dict[Side, list[PreferenceSample]] = {side: [] for side in SIDES}
    failures = []
    for side in SIDES:
        for sample in kept[side]:
            rejected = answers[sample.instruction]
            if isinstance(rejected, LLMError):
                dropped["the model failed to answer"] += 1
                failures.append(str(rejected))
            elif not rejected:
                dropped["the model wrote nothing"] += 1
            elif rejected == sample.answer.strip():
                dropped["the model wrote the author's text"] += 1
            else:
                triples[side].append(PreferenceSample(
                    prompt=sample.instruction, chosen=sample.answer, rejected=rejected, document_id=sample.document_id,
                    author_id=sample.author_id, author=sample.author, link=sample.link, category=sample.category))
    return PreferenceDataset(triples["train"], triples["test"], llm.open().model, dropped, failures)


def triple_record(sample: PreferenceSample) -> dict:
    return {"prompt": sample.prompt, "chosen": sample.chosen, "rejected": sample.rejected, "author": sample.author,
            "document_id": sample.document_id, "link": sample.link, "category": sample.category}


def read_preference_dataset(directory: Path, author_id: str = "") -> PreferenceDataset:
    """A registered preference version as it was built (what a build with the same recipe reuses)."""
    card = read_card(directory)
    sides = {side: [PreferenceSample(**record, author_id=author_id) for record in read_jsonl(directory / f"{side}.jsonl")]
             for side in SIDES}
    return PreferenceDataset(sides["train"], sides["test"], card["rejecting_model"], Counter(card["dropped"]))
