from collections.abc import Callable
from dataclasses import dataclass

from tinyevals.rows import Row


@dataclass
class Report:
    passed: list[Row]
    failed: list[tuple[Row, str]]

    @property
    def pass_rate(self) -> float:
        total = len(self.passed) + len(self.failed)
        return len(self.passed) / total if total else 0.0

    def summary(self) -> str:
        lines = [f"{len(self.passed)} passed, {len(self.failed)} failed ({self.pass_rate:.0%})"]
        for row, answer in self.failed:
            lines.append(f"  FAIL {row.question!r}: {answer[:60]!r}")
        return "\n".join(lines)


def run(rows: list[Row], answer: Callable[[str], str]) -> Report:
    """Ask every question and sort the rows into passed and failed."""
    passed, failed = [], []
    for row in rows:
        reply = answer(row.question)
        if row.passes(reply):
            passed.append(row)
        else:
            failed.append((row, reply))
    return Report(passed, failed)
