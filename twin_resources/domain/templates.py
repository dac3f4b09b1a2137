"""The chat template and the RAG prompt: one copy, shared by training and serving, so the two never drift."""

from twin_resources.domain.search import Hit, Source

END_OF_TEXT, IM_START, IM_END, PAD = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"

# ChatML. The tokenizers trained here carry it; serving formats every conversation through it.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SYSTEM = ("You write in the voice of {author}: their vocabulary, rhythm and opinions. Ground what you write in "
          "the passages below, which are {author}'s own writing; cite a passage as [n] where you use it. "
          "If the passages do not cover something, say less rather than invent.")


def rag_messages(request: str, author_name: str | None, hits: list[Hit],
                 max_passage_chars: int = 1500) -> tuple[list[dict], list[Source]]:
    """Chat messages for the generator and the sources they cite, in passage order."""
    author = author_name or "the author"
    passages, sources = [], []
    for number, hit in enumerate(hits, 1):
        p = hit.passage
        passages.append(f"[{number}] {p.title} ({p.link})\n{p.content[:max_passage_chars]}")
        sources.append(Source(number, p.link, p.title, p.author_name, round(hit.score, 4)))
    context = "\n\n".join(passages) if passages else "(no passages found)"
    messages = [{"role": "system", "content": SYSTEM.format(author=author) + f"\n\nPassages:\n{context}"},
                {"role": "user", "content": request}]
    return messages, sources
