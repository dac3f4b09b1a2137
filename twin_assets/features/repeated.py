"""Text that repeats across one author's documents: newsletter greetings and sign-offs, promotions, the
platform's chrome. The twin would learn it as the voice and retrieval would return it as an answer.

A line counts as repeated when it appears in at least `min_documents` of the author's documents of one
category and in at least `min_share` of them. Measured on the Handbook export (76 articles, two authors),
after the per-platform cleaning: lines in 4 or more documents are a Substack footer ("Discussion about this
post", in 45 of 50), a greeting ("Hello there, I am Paul Iusztin", 19), promotions ("Whenever you're ready,
here is how I can help you:", 18), captions ("Image by author", 21) and recurring headings ("Conclusion");
lines in 3 documents already include prose an author reused on purpose ("In your ML development phase, you
generate lots of experiments."), so the floor is 4, and a tenth of the documents above 40. Lines holding
code from a fenced block are exempt: code repeats because it is code.
"""

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

MIN_DOCUMENTS = 4
MIN_SHARE = 0.1


def line_key(line: str) -> str:
    """A line's identity across documents: case and spacing do not count."""
    return hashlib.sha1(" ".join(line.lower().split()).encode()).hexdigest()[:16]


def line_keys(text: str, code: Iterable[str] = ()) -> list[str]:
    """The distinct keys of a cleaned text's non-empty lines, sorted; lines holding code are left out."""
    code = [line for line in code if len(line) > 1]
    return sorted({line_key(line) for line in text.split("\n")
                   if line.strip() and not any(snippet in line for snippet in code)})


@dataclass(frozen=True)
class RepeatedLines:
    """The keys of lines that repeat across an author's documents."""

    keys: frozenset[str] = frozenset()

    @classmethod
    def find(cls, keys_per_document: Iterable[Iterable[str]], min_documents: int = MIN_DOCUMENTS,
             min_share: float = MIN_SHARE) -> "RepeatedLines":
        counts: Counter = Counter()
        total = 0
        for keys in keys_per_document:
            counts.update(set(keys))
            total += 1
        floor = max(min_documents, min_share * total)
        return cls(frozenset(key for key, count in counts.items() if count >= floor))

    def removal_key(self, keys: Iterable[str]) -> str:
        """What would be removed from a document with these line keys, as one hash: a document is cleaned
        again only when this changes (or its own text does)."""
        return hashlib.sha1(",".join(sorted(set(keys) & self.keys)).encode()).hexdigest()[:16]

    def remove(self, text: str, keys: Iterable[str]) -> tuple[str, list[str]]:
        """`text` without the repeated lines among `keys` (its own, code left out), paragraphs kept apart;
        and the lines removed."""
        removable = self.keys & set(keys)
        removed: list[str] = []
        paragraphs = []
        for paragraph in text.split("\n\n"):
            kept = []
            for line in paragraph.split("\n"):
                if line.strip() and line_key(line) in removable:
                    removed.append(line)
                else:
                    kept.append(line)
            if any(line.strip() for line in kept):
                paragraphs.append("\n".join(kept))
        return "\n\n".join(paragraphs), removed
