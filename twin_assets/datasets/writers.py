"""Instruction writers: the requests each extract answers. The answer is always the author's extract.

- `TemplateWriter`, the offline default: requests built from the author's own structure and words (the
  document's title, the section heading above the extract, the extract's key phrases), in several forms
  per category. No model writes anything, so no model text can become an answer.
- `LLMWriter`: the `LLM` resource asked for requests as JSON matching a schema (constrained by a grammar on
  llama.cpp, validated everywhere). An extract whose answer is unusable loses its requests only, counted.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from twin_assets.datasets.extracts import Extract
from twin_assets.datasets.keyphrases import key_phrases
from twin_resources.domain.documents import Category
from twin_resources.llm import LLM, LLMError

SECTION_FORMS = (
    "Write the section titled “{heading}” of your article “{title}”.",
    "In your article “{title}”, you reach the part on {heading_lower}. Write it.",
    "Explain {heading_lower} to a colleague, the way you did in “{title}”.",
)
ARTICLE_FORMS = (
    "Write a passage of your article “{title}” about {phrase}.",
    "Explain {phrase} to a colleague, in your own words.",
    "Write part of an article titled “{title}” that covers {phrase} and {other}.",
)
POST_FORMS = (
    "Write a LinkedIn post about {phrase}.",
    "Write a short post on {phrase}, touching on {other}.",
    "Share your take on {phrase} in a post.",
    "Write a LinkedIn post titled “{title}”.",
)
MIN_REQUEST_CHARS, MAX_REQUEST_CHARS = 12, 400


@dataclass(frozen=True)
class Passage:
    """What a writer reads: an extract and the document it comes from."""

    extract: Extract
    title: str
    category: Category


@dataclass
class Written:
    requests: list[str]
    failure: str = ""  # why there are none, counted under this reason
    detail: str = ""  # the error itself, for the log


class InstructionWriter(Protocol):
    name: str
    model: str  # what wrote the requests: "" for templates, else the model's name

    def write(self, passages: list[Passage], per_extract: int,
              on_done: Callable[[], None] = lambda: None) -> list[Written]:
        """Up to `per_extract` requests for each passage, in order; `on_done` after each passage."""


def _rotation(forms: tuple[str, ...], extract: Extract) -> list[str]:
    """The forms starting from one picked by a hash: the same extract always gets the same forms, and
    extracts spread over them."""
    start = hashlib.sha256(f"{extract.document_id}:{extract.index}".encode()).digest()[0] % len(forms)
    return list(forms[start:] + forms[:start])


def _lower_first(text: str) -> str:
    """A heading to go mid-sentence: "Why it works" becomes "why it works"; a Title Case heading, an acronym
    or a name stays as written."""
    words = text.split()
    title_case = any(word[:1].isupper() for word in words[1:])
    return text if title_case or text[:2] == text[:2].upper() else text[:1].lower() + text[1:]


def _fill(forms: list[str], values: dict[str, str], wanted: int) -> list[str]:
    """The first `wanted` forms whose fields all have a value."""
    filled = []
    for form in forms:
        try:
            request = form.format(**values)
        except KeyError:
            continue
        filled.append(request)
        if len(filled) == wanted:
            break
    return filled


class TemplateWriter:
    name = "template"
    model = ""

    def requests(self, passage: Passage, per_extract: int) -> list[str]:
        extract = passage.extract
        title = " ".join(passage.title.split())
        phrases = key_phrases(extract.text, top=2)
        values = {"title": title} if title else {}
        if phrases:
            values["phrase"] = phrases[0]
        if len(phrases) > 1:
            values["other"] = phrases[1]
        if passage.category is Category.POSTS:
            return _fill(_rotation(POST_FORMS, extract), values, per_extract)
        forms = _rotation(ARTICLE_FORMS, extract)
        if extract.heading:
            heading = " ".join(extract.heading.split())
            values |= {"heading": heading, "heading_lower": _lower_first(heading)}
            forms = _rotation(SECTION_FORMS, extract) + forms
        return _fill(forms, values, per_extract)

    def write(self, passages: list[Passage], per_extract: int,
              on_done: Callable[[], None] = lambda: None) -> list[Written]:
        written = []
        for passage in passages:
            requests = self.requests(passage, per_extract)
            written.append(Written(requests, "" if requests else "no title, heading or key phrase to ask from"))
            on_done()
        return written


REQUEST_PROMPT = """Here is a passage {author} wrote, from their {kind} titled "{title}"{section}.

{text}

Write {count} different requests (a task or a question, one or two sentences each) that this passage answers \
well, as a reader or an editor would ask the author for it. Do not quote the passage; ask for it."""


def request_schema(count: int) -> dict:
    return {"type": "object", "required": ["requests"], "additionalProperties": False,
            "properties": {"requests": {"type": "array", "minItems": 1, "maxItems": count,
                                        "items": {"type": "string", "minLength": MIN_REQUEST_CHARS,
                                                  "maxLength": MAX_REQUEST_CHARS}}}}


@dataclass
class LLMWriter:
    """Requests written by a language model; the answers stay the author's."""

    llm: LLM
    author: str = "the author"
    name: str = "llm"

    @property
    def model(self) -> str:
        return self.llm.open().model

    def _ask(self, llm: LLM, passage: tuple[Passage, int]) -> list[str]:
        passage, count = passage
        kind = "LinkedIn post" if passage.category is Category.POSTS else "article"
        section = f', in the section "{passage.extract.heading}"' if passage.extract.heading else ""
        prompt = REQUEST_PROMPT.format(author=self.author, kind=kind, title=passage.title or "untitled",
                                       section=section, text=passage.extract.text, count=count)
        answer = llm.structured([{"role": "user", "content": prompt}], request_schema(count),
                                max_tokens=120 * count, temperature=0.7)
        requests, seen = [], set()
        for request in (" ".join(r.split()) for r in answer["requests"]):
            if request.lower() not in seen and request not in passage.extract.text:  # asks, does not copy
                seen.add(request.lower())
                requests.append(request)
        return requests

    def write(self, passages: list[Passage], per_extract: int,
              on_done: Callable[[], None] = lambda: None) -> list[Written]:
        answers = self.llm.each(self._ask, [(p, per_extract) for p in passages], on_done)
        written = []
        for answer in answers:
            if isinstance(answer, LLMError):
                written.append(Written([], "the model's answer was unusable", str(answer)))
            else:
                written.append(Written(answer, "" if answer else "the model wrote only copies of the passage"))
        return written
