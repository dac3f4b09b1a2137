"""Curation of instruction samples, each step counted: rule filters, near-duplicate removal, and
decontamination of the test side.

- Rules: the book's answer filters (at least 100 characters, starting with a capital or a digit), link-only
  text, and code in a prose category (the twin writes prose; code is taught from repositories).
- Near-duplicates: answers whose word 5-grams overlap at an estimated Jaccard of 0.8 or more (MinHash LSH,
  datasketch) keep their first extract, train side first. Several requests of one extract share its answer
  and stay together.
- Decontamination: a test sample sharing a 13-word sequence with any train sample is dropped, so the held-out
  score is never a memory test; so is a train sample sharing one with an evaluation prompt.
"""

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from datasketch import MinHashLSH

from twin_assets.datasets.shingles import NUM_PERM, SHINGLE_WORDS, minhash, word_ngrams, words
from twin_resources.domain.training import InstructionSample

MIN_ANSWER_CHARS = 100
URL = re.compile(r"https?://\S+")
CODE_LINE = re.compile(r"^\s*(def |class |import |from \S+ import |return |[\w.]+\s*=\s*\S|[{}\[\]();]+$|#include|//)")
DUPLICATE_JACCARD = 0.8
CONTAMINATION_WORDS = 13


@dataclass
class CurationReport:
    dropped: Counter = field(default_factory=Counter)  # reason -> samples

    def as_rows(self) -> list[list]:
        return [[reason, count] for reason, count in sorted(self.dropped.items())]


def rule_failure(answer: str) -> str | None:
    """Why an answer is not one to teach from, or None."""
    text = answer.strip()
    if len(text) < MIN_ANSWER_CHARS:
        return f"shorter than {MIN_ANSWER_CHARS} characters"
    if not (text[0].isupper() or text[0].isdigit() or text[0] in "\"'“(-"):
        return "does not start a sentence"
    if len(URL.sub("", text).strip()) < len(text) / 3:
        return "mostly links"
    lines = [line for line in text.split("\n") if line.strip()]
    if sum(bool(CODE_LINE.match(line)) for line in lines) > len(lines) / 2:
        return "code in prose"
    return None


def ngrams(text: str, n: int = CONTAMINATION_WORDS) -> set[str]:
    """The text's n-word sequences; none when it is shorter than n words."""
    return word_ngrams(text, n) if len(words(text)) >= n else set()


def curate(train: Iterable[InstructionSample], test: Iterable[InstructionSample],
           contamination_words: int = CONTAMINATION_WORDS, evaluation_prompts: Iterable[str] = (),
           ) -> tuple[list[InstructionSample], list[InstructionSample], CurationReport]:
    report = CurationReport()
    sides: dict[str, list[InstructionSample]] = {"train": [], "test": []}
    for side, samples in (("train", train), ("test", test)):
        for sample in samples:
            reason = rule_failure(sample.answer)
            if reason:
                report.dropped[reason] += 1
            else:
                sides[side].append(sample)

    lsh = MinHashLSH(threshold=DUPLICATE_JACCARD, num_perm=NUM_PERM)
    for side in ("train", "test"):
        kept, extracts_kept = [], set()
        for sample in sides[side]:
            extract = (sample.document_id, sample.answer)
            if extract not in extracts_kept:
                signature = minhash(word_ngrams(sample.answer, SHINGLE_WORDS))
                if lsh.query(signature):
                    report.dropped["near-duplicate answer"] += 1
                    continue
                lsh.insert(f"{side}-{len(extracts_kept)}", signature)
                extracts_kept.add(extract)
            kept.append(sample)
        sides[side] = kept

    held_out = set().union(*(ngrams(prompt, contamination_words) for prompt in evaluation_prompts))
    if held_out:
        kept = [sample for sample in sides["train"] if not ngrams(sample.answer, contamination_words) & held_out]
        if dropped := len(sides["train"]) - len(kept):
            report.dropped[f"train shares {contamination_words} words with an evaluation prompt"] += dropped
        sides["train"] = kept

    seen = set().union(*(ngrams(s.answer, contamination_words) for s in sides["train"]))
    clean_test = []
    for sample in sides["test"]:
        if ngrams(sample.answer, contamination_words) & seen:
            report.dropped[f"test shares {contamination_words} words with train"] += 1
        else:
            clean_test.append(sample)
    return sides["train"], clean_test, report


def contaminated(train: Iterable[InstructionSample], test: Iterable[InstructionSample],
                 contamination_words: int = CONTAMINATION_WORDS) -> int:
    """Test samples sharing a `contamination_words`-word sequence with a train answer (the check's count)."""
    seen = set().union(*(ngrams(s.answer, contamination_words) for s in train))
    return sum(1 for sample in test if ngrams(sample.answer, contamination_words) & seen)
