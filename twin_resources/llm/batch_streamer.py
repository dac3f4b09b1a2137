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
        tokens: list[list[int]] = [[] for _ in range(self.rows)]
        shown = [""] * self.rows
        finished = [False] * self.rows
        stop_ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id} - {None}
        while (step := self.queue.get()) is not None:
            deltas = []
            for row, token in enumerate(step):
                if finished[row] or token in stop_ids:
                    finished[row] = True
                    deltas.append("")
                    continue
                tokens[row].append(token)
                text = self.tokenizer.decode(tokens[row], skip_special_tokens=True)
                if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                    deltas.append("")
                    continue
                deltas.append(text[len(shown[row]):])
                shown[row] = text
            yield deltas
