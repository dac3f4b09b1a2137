"""Self-query: who the request is about (and which kind of writing), read from the request itself.

Names the warehouse knows are matched first: no model, microseconds. The LLM, with structured output, is
asked only when no known name appears and one is configured.
"""

import re
from dataclasses import dataclass

from twin_resources.domain.documents import Category, UserDocument

# Words that name a category, most specific first.
CATEGORY_WORDS = (
    (Category.POSTS, r"linkedin|post|posts|tweet|thread"),
    (Category.REPOSITORIES, r"code|repo|repository|repositories|github|function|implementation"),
    (Category.ARTICLES, r"article|articles|blog|essay|newsletter|substack|medium"),
)

AUTHOR_SCHEMA = {"type": "object", "properties": {"author": {"type": ["string", "null"]}},
                 "required": ["author"], "additionalProperties": False}


@dataclass(frozen=True)
class SelfQuery:
    author: UserDocument | None
    category: Category | None
    how: str  # "name", "llm" or "none": how the author was found


def _words(text: str) -> set[str]:
    """Lower-case words; a possessive "Mara's" counts as "mara"."""
    return set(re.findall(r"[\w-]+", text.lower()))


def match_author(request: str, authors: list[UserDocument]) -> UserDocument | None:
    """The known author the request names: a full name wins; a first or last name must be unambiguous."""
    text = request.lower()
    full = [a for a in authors if a.full_name.lower() in text]
    if len(full) == 1:
        return full[0]
    words = _words(request)
    partial = [a for a in authors if words & {a.first_name.lower(), a.last_name.lower()} - {""}]
    return partial[0] if len(partial) == 1 else None


def match_category(request: str) -> Category | None:
    words = _words(request)
    for category, pattern in CATEGORY_WORDS:
        if any(re.fullmatch(pattern, word) for word in words):
            return category
    return None


def self_query(request: str, authors: list[UserDocument], llm=None) -> SelfQuery:
    """Author and category named in `request`; `llm` (an `LLM` resource) is the fallback for the author."""
    category = match_category(request)
    author = match_author(request, authors)
    if author is not None:
        return SelfQuery(author, category, "name")
    if llm is not None and authors:
        names = ", ".join(a.full_name for a in authors)
        answer = llm.structured([{"role": "user", "content": f"Known authors: {names}.\nRequest: {request}\n"
                                  "Which known author does the request name? null if none."}], AUTHOR_SCHEMA,
                                temperature=0)
        found = match_author(answer.get("author") or "", authors)
        if found is not None:
            return SelfQuery(found, category, "llm")
    return SelfQuery(None, category, "none")
