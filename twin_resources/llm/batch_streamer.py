"""A transformers streamer for a batch: `generate` hands it one token per row per step, and it gives the
reader each row's new text. transformers' own streamers accept a batch of one only."""

from collections.abc import Iterator
from queue import Queue


class BatchStreamer:
    def __init__(self, tokenizer, rows: int):
        self.tokenizer, self.rows = tokenizer, rows
        self.queue: Queue = Queue()
        self.prompt_seen = False

    # the side `generate` calls, from its thread

    def put(self, tokens) -> None:
        if not self.prompt_seen:  # the first call carries the prompts
            self.prompt_seen = True
            return
        self.queue.put(tokens.reshape(self.rows, -1)[:, -1].tolist())

    def end(self) -> None:
        self.queue.put(None)

    # the reader's side

    def __iter__(self) -> Iterator[list[str]]:
        rows = [_Row() for _ in range(self.rows)]
        stop_ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id} - {None}
        while (step := self.queue.get()) is not None:
            deltas = []
            for row, token in zip(rows, step):
                if row.finished or token in stop_ids:
                    row.finished = True
                    deltas.append("")
                else:
                    deltas.append(row.add(token, self.tokenizer))
            yield deltas


class _Row:
    """Incremental detokenization (as text-generation-inference does it): decode a short window of recent
    tokens, so each step costs the same however long the answer grows, and tokenizers that drop a word's
    leading space when it starts a text still get their spaces right."""

    def __init__(self):
        self.tokens: list[int] = []
        self.prefix = self.read = 0
        self.finished = False

    def add(self, token: int, tokenizer) -> str:
        self.tokens.append(token)
        shown = tokenizer.decode(self.tokens[self.prefix:self.read], skip_special_tokens=True)
        text = tokenizer.decode(self.tokens[self.prefix:], skip_special_tokens=True)
        if len(text) <= len(shown) or text.endswith("\ufffd"):  # nothing new, or half a character
            return ""
        self.prefix, self.read = self.read, len(self.tokens)
        return text[len(shown):]
