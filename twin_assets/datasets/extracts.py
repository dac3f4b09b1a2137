"""Extracts: the pieces of an author's text that become answers, cut on paragraph and sentence boundaries.

An extract is 1,000-2,000 characters by default: long enough to carry a voice, short enough for a small
model's context. A document shorter than the maximum (most posts) stays whole. A short line without end
punctuation is read as a section heading: it ends an extract that is long enough and names the next one
(an extract too short to end there keeps the heading in its text). A sentence longer than the maximum
(code kept on one line, a list without full stops) is cut between words.
"""

import re
from dataclasses import dataclass

from pydantic import BaseModel, Field

from twin_resources.domain.features import is_heading

# The space after a sentence's end (and its closing quote or bracket): only the space is cut out.
SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"')\]]))\s+(?=[A-Z0-9\"'(\[])")


class ExtractConfig(BaseModel):
    min_chars: int = Field(1000, ge=1, description="extracts grow paragraph by paragraph to at least this")
    max_chars: int = Field(2000, ge=1, description="and never past this")


@dataclass(frozen=True)
class Extract:
    document_id: str
    index: int
    heading: str | None  # the section heading above the extract, when the text has one
    text: str


def _pieces(paragraph: str, max_chars: int) -> list[str]:
    """The paragraph; its sentences when it is longer than `max_chars`; a sentence longer than that (code
    kept as one line, a list without full stops) cut between words."""
    if len(paragraph) <= max_chars:
        return [paragraph]
    pieces = []
    for sentence in SENTENCE_END.split(paragraph):
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence.strip():
            pieces.append(sentence.strip())
    return pieces


def cut_extracts(document_id: str, text: str, config: ExtractConfig | None = None) -> list[Extract]:
    """Paragraphs gathered until an extract reaches `min_chars` (ending on a paragraph's end) without
    passing `max_chars`; a heading ends an extract that is long enough, and names the next one."""
    config = config or ExtractConfig()
    extracts: list[Extract] = []
    current, heading, next_heading = "", None, None

    def close() -> None:
        nonlocal current, heading
        if current.strip():
            extracts.append(Extract(document_id, len(extracts), heading, current.strip()))
        current, heading = "", next_heading

    for paragraph in (p.strip() for p in text.split("\n\n")):
        if not paragraph:
            continue
        if is_heading(paragraph):
            next_heading = paragraph
            if len(current) >= config.min_chars:
                close()
                continue
            if not current:
                heading = paragraph
                continue
        for number, piece in enumerate(_pieces(paragraph, config.max_chars)):
            separator = "\n\n" if number == 0 else " "  # sentences of one paragraph stay one paragraph
            if current and len(current) + len(separator) + len(piece) > config.max_chars:
                close()
            current = current + separator + piece if current else piece
        if len(current) >= config.min_chars:
            close()
    close()
    return extracts
