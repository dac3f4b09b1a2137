"""Self-query: who the request is about (and which kind of writing), read from the request itself.

Names the warehouse knows are matched first: no model, microseconds. The LLM, with structured output, is
asked only when no known name appears and one is configured. A category narrows the search only when the
request asks about a kind of source ("in my repositories", "from her LinkedIn posts"), never because of the
kind of text it asks to write ("write a post about latency budgets" is grounded in whatever the author wrote
on it, articles included).
"""

import re
from dataclasses import dataclass

from twin_resources.domain.documents import Category, UserDocument

# Words that name a category, most specific first.
CATEGORY_WORDS = (
    (Category.POSTS, r"linkedin|posts?|tweets?|threads?"),
    (Category.REPOSITORIES, r"code|repos?|repository|repositories|github|projects?"),
    (Category.ARTICLES, r"articles?|blogs?|blog posts?|essays?|newsletters?|substack|medium"),
)
# A source the request points into: "in my repositories", "summarize Ada Quill's LinkedIn posts", "of his blog".
WHOSE = r"(?:my|his|her|their|your|our|the author's|[\w-]+(?: [\w-]+)?'s)"
POINTING = r"in|from|across|among|of|through|using|based on|according to|summari[sz]e|search|quote|read|review"
SOURCE = re.compile(r"\b(?:" + POINTING + r")\s+" + WHOSE +
                    r"\s+(?:own\s+|published\s+|public\s+|old\s+|recent\s+)?([\w-]+)(?:(?=\s+([\w-]+)))?", re.IGNORECASE)

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
    """The kind of source the request asks to draw on, or None (the kind of text to write is no source)."""
    for match in SOURCE.finditer(request):
        first, second = match.group(1).lower(), (match.group(2) or "").lower()
        # "blog posts" names a source as two words, "LinkedIn posts" by its first, "repositories" alone
        for words in (f"{first} {second}", first):
            for category, pattern in CATEGORY_WORDS:
                if re.fullmatch(pattern, words):
                    return category
    return None


# "Write a LinkedIn post in Ada's voice about this: <subject>", "Draft a post as Ada about <subject>"
WRITING = re.compile(r"\b(?:write|draft|compose|create|give me|turn|make)\b", re.IGNORECASE)
SUBJECT_AFTER = re.compile(r":\s*|\babout(?: this)?\b:?\s*|\bon the topic of\b\s*", re.IGNORECASE)


def request_subject(request: str) -> str:
    """What a request to write asks to write about: the words after "about" or a colon that follows the
    instruction; any other request is its own subject. Searching the subject alone keeps the instruction's
    words ("write", "LinkedIn", "post", "voice") from matching passages that happen to use them."""
    instruction = WRITING.search(request)
    if instruction is None:
        return request
    after = SUBJECT_AFTER.search(request, instruction.end())
    subject = request[after.end():].strip() if after else ""
    return subject if len(subject) >= 3 else request


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
