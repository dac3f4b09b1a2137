"""Instruction writers: the request each extract answers. The answer is always the author's extract.

`TemplateWriter` is the offline default: requests built from the author's own structure (the document's
title, the section heading above the extract), in several forms per category. No model text is written,
so none can become an answer.
"""

import hashlib
from typing import Protocol

from twin_assets.datasets.extracts import Extract
from twin_resources.domain.documents import Category

ARTICLE_SECTION_FORMS = (
    "Write the section titled “{heading}” of your article “{title}”.",
    "In your article “{title}”, you reach the part on {heading_lower}. Write it.",
    "Explain {heading_lower} to a colleague, the way you did in “{title}”.",
)
ARTICLE_FORMS = (
    "Write a passage of your article “{title}”.",
    "Write part of an article titled “{title}”, in your own voice.",
    "Explain to a colleague what “{title}” is about, in your own words.",
)
POST_FORMS = (
    "Write a LinkedIn post that starts from this idea: {topic}",
    "Write a short post about {topic_lower}",
    "Share your take on {topic_lower} in a post.",
)


class InstructionWriter(Protocol):
    name: str

    def write(self, extract: Extract, title: str, category: Category) -> str | None:
        """The request `extract` answers; None when the writer has none (the extract is dropped, counted)."""


def _pick(forms: tuple[str, ...], extract: Extract) -> str:
    """The same extract always gets the same form; extracts spread over the forms."""
    digest = hashlib.sha256(f"{extract.document_id}:{extract.index}".encode()).digest()
    return forms[digest[0] % len(forms)]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


class TemplateWriter:
    name = "template"

    def write(self, extract: Extract, title: str, category: Category) -> str | None:
        title = " ".join(title.split())
        if category is Category.POSTS:
            topic = " ".join(extract.text.split("\n")[0].split())[:160].rstrip(" .:") or title
            return _pick(POST_FORMS, extract).format(topic=topic, topic_lower=_lower_first(topic) + ".")
        if extract.heading:
            heading = " ".join(extract.heading.split())
            return _pick(ARTICLE_SECTION_FORMS, extract).format(heading=heading, heading_lower=_lower_first(heading),
                                                                title=title)
        return _pick(ARTICLE_FORMS, extract).format(title=title) if title else None
