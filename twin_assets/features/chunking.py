"""Token-aware chunking with the embedding model's own tokenizer: no chunk is ever over its limit.

Prose is packed from whole sentences, breaking at paragraph ends when a chunk is well filled. The
text is tokenized once and sentences are measured by their tokens' offsets: semantic-text-splitter
re-tokenizes candidate chunks and took 5.9 s for the 254k-token Handbook corpus on this CPU, which
the embedding model itself embeds in about 20 s; this packer takes a tenth of a second. Python code
is split on syntax by semantic-text-splitter (tree-sitter); other files by blank lines and lines.
"""

import re
from bisect import bisect_left
from dataclasses import dataclass

import dagster as dg
from pydantic import Field
from tokenizers import Tokenizer

from twin_resources.domain.documents import Category

SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*(?= )|\n")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
SPECIAL_TOKENS = 2  # [CLS] and [SEP]


class ChunkingConfig(dg.Config):
    """Chunk sizes in model tokens; the README's retrieval benchmark justifies the defaults."""

    article_tokens: int = Field(default=128, description="largest article chunk, special tokens included")
    article_overlap: int = Field(default=0, description="tokens of the previous article chunk repeated")
    post_tokens: int = Field(default=64, description="largest post chunk")
    post_overlap: int = Field(default=0, description="tokens of the previous post chunk repeated")
    code_tokens: int = Field(default=256, description="largest code chunk")

    def limits(self, category: Category, model_limit: int) -> tuple[int, int]:
        """(content tokens, overlap tokens) for `category`, never over the model's own limit."""
        size, overlap = {
            Category.ARTICLES: (self.article_tokens, self.article_overlap),
            Category.POSTS: (self.post_tokens, self.post_overlap),
            Category.REPOSITORIES: (self.code_tokens, 0),
        }[category]
        content = min(size, model_limit) - SPECIAL_TOKENS
        return content, min(overlap, content // 2)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    tokens: int
    opens_paragraph: bool


class TokenCounter:
    """Counts tokens of any slice of one text, after tokenizing the text once."""

    def __init__(self, offsets: list[tuple[int, int]]):
        self.starts = [start for start, _ in offsets]

    def count(self, start: int, end: int) -> int:
        return bisect_left(self.starts, end) - bisect_left(self.starts, start)

    def cut_points(self, start: int, end: int, limit: int) -> list[int]:
        """Character offsets that cut [start, end) into pieces of at most `limit` tokens, at token starts."""
        first, last = bisect_left(self.starts, start), bisect_left(self.starts, end)
        return [self.starts[i] for i in range(first + limit, last, limit)]


def _sentence_spans(text: str, counter: TokenCounter, limit: int, unit: re.Pattern) -> list[Span]:
    spans, start = [], 0
    boundaries = [m.end() for m in unit.finditer(text)] + [len(text)]
    for end in boundaries:
        piece = text[start:end]
        stripped_start = start + (len(piece) - len(piece.lstrip()))
        stripped_end = start + len(piece.rstrip())
        if stripped_end > stripped_start:
            opens = bool(PARAGRAPH_BREAK.search(text[max(0, start - 4):stripped_start])) or start == 0
            cuts = [stripped_start, *counter.cut_points(stripped_start, stripped_end, limit), stripped_end]
            for index, (a, b) in enumerate(zip(cuts, cuts[1:])):  # a sentence longer than a chunk
                spans.append(Span(a, b, counter.count(a, b), opens and index == 0))
        start = end
    return spans


def pack(text: str, counter: TokenCounter, limit: int, overlap: int = 0,
         unit: re.Pattern = SENTENCE_END) -> list[tuple[str, int]]:
    """(chunk, content tokens): whole sentences (or lines) of at most `limit` tokens, as slices of `text`."""
    spans = _sentence_spans(text, counter, limit, unit)
    chunks: list[tuple[str, int]] = []
    current: list[Span] = []

    def close():
        start, end = current[0].start, current[-1].end
        chunks.append((text[start:end], counter.count(start, end)))

    for span in spans:
        size = counter.count(current[0].start, span.end) if current else span.tokens
        well_filled = current and counter.count(current[0].start, current[-1].end) >= limit * 0.6
        if current and (size > limit or (span.opens_paragraph and well_filled)):
            close()
            current = _overlap_tail(current, counter, overlap, limit - span.tokens)
        current.append(span)
    if current:
        close()
    return chunks


def _overlap_tail(spans: list[Span], counter: TokenCounter, overlap: int, room: int) -> list[Span]:
    """The last whole sentences of a chunk, at most `overlap` tokens, that still leave room for the next."""
    tail: list[Span] = []
    for span in reversed(spans):
        if counter.count(span.start, (tail or [span])[-1].end) > min(overlap, room):
            break
        tail.insert(0, span)
    return tail


LINES = re.compile(r"\n")


class Chunker:
    """Cuts cleaned documents per category into chunks the model embeds whole."""

    def __init__(self, tokenizer: Tokenizer, model_limit: int, config: ChunkingConfig | None = None):
        self.tokenizer = tokenizer
        self.model_limit = model_limit
        self.config = config or ChunkingConfig()
        self._code_splitters = {}

    def fingerprint(self) -> str:
        return self.config.model_dump_json()

    def prose(self, texts: list[str], category: Category) -> list[list[tuple[str, int]]]:
        """Each text's chunks with their token counts (special tokens included)."""
        limit, overlap = self.config.limits(category, self.model_limit)
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)  # all cores, one call
        return [[(chunk, tokens + SPECIAL_TOKENS) for chunk, tokens in pack(text, TokenCounter(e.offsets), limit, overlap)]
                for text, e in zip(texts, encodings)]

    def code(self, path: str, text: str) -> list[tuple[str, int]]:
        limit, _ = self.config.limits(Category.REPOSITORIES, self.model_limit)
        chunks = None
        if path.endswith(".py"):
            try:
                chunks = [c for c in self._python_splitter(limit).chunks(text) if c.strip()]
            except Exception:  # noqa: BLE001 - tree-sitter gives up on some files; lines still work
                pass
        if chunks is None:
            counter = TokenCounter(self.tokenizer.encode(text, add_special_tokens=False).offsets)
            chunks = [chunk for chunk, _ in pack(text, counter, limit, unit=LINES)]
        return [(chunk, len(self.tokenizer.encode(chunk).ids)) for chunk in chunks]

    def _python_splitter(self, limit: int):
        if limit not in self._code_splitters:
            import tree_sitter_python
            from semantic_text_splitter import CodeSplitter

            self._code_splitters[limit] = CodeSplitter.from_huggingface_tokenizer(
                tree_sitter_python.language(), self.tokenizer, limit)
        return self._code_splitters[limit]
