"""The generation prompt: the request and the author's own passages, numbered so the answer can cite them."""

from dataclasses import dataclass

from twin_serving.retrieval.index import Hit

SYSTEM = ("You write in the voice of {author}: their vocabulary, rhythm and opinions. Ground what you write in "
          "the passages below, which are {author}'s own writing; cite a passage as [n] where you use it. "
          "If the passages do not cover something, say less rather than invent.")


@dataclass(frozen=True)
class Source:
    number: int
    link: str
    title: str
    author: str
    score: float


def build_prompt(request: str, author_name: str | None, hits: list[Hit],
                 max_passage_chars: int = 1500) -> tuple[list[dict], list[Source]]:
    """Chat messages for the generator and the sources they cite, in passage order."""
    author = author_name or "the author"
    passages, sources = [], []
    for number, hit in enumerate(hits, 1):
        p = hit.payload
        passages.append(f"[{number}] {p['title']} ({p['link']})\n{p['content'][:max_passage_chars]}")
        sources.append(Source(number, p["link"], p["title"], p["author_name"], round(hit.score, 4)))
    context = "\n\n".join(passages) if passages else "(no passages found)"
    messages = [{"role": "system", "content": SYSTEM.format(author=author) + f"\n\nPassages:\n{context}"},
                {"role": "user", "content": request}]
    return messages, sources
