import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Row:
    """One question, what a good answer mentions, and what it must never say."""

    question: str
    must_mention: list[str] = field(default_factory=list)
    forbidden: str | None = None

    def passes(self, answer: str) -> bool:
        lowered = answer.lower()
        if not all(fact.lower() in lowered for fact in self.must_mention):
            return False
        return not (self.forbidden and re.search(self.forbidden, answer))
