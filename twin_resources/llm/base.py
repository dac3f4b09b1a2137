"""What every language-model backend offers, and the errors they raise."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


class LLMError(RuntimeError):
    """A model that cannot be loaded or reached, or a request it failed: the message names which."""


class StructuredOutputError(LLMError):
    """The model did not produce JSON matching the schema within the allowed attempts."""


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 256
    temperature: float = 0.7
    stop: tuple[str, ...] = ()


class ChatBackend(Protocol):
    model: str  # what answers: a registry version, a file or a served model's name
    enforces_json_schema: bool  # True when the backend itself constrains output to a schema (a grammar)
    context_window: int | None  # prompt plus answer, in tokens; None when the backend cannot tell

    def chat(self, messages: list[Message], sampling: Sampling, json_schema: dict | None = None) -> Completion: ...

    def stream(self, messages: list[Message], sampling: Sampling) -> Iterator[str]: ...
    # optional: `streamed_tokens`, set once a stream (or `stream_batch`) is exhausted: how many tokens the
    # model generated for each conversation. Counting the text again is not the same: BPE does not round-trip.

    def complete(self, prompt: str, sampling: Sampling) -> Completion: ...

    def count_tokens(self, text: str) -> int: ...
    # optional: `count_chat_tokens(messages) -> int`, exact where the backend applies the chat template itself
    def close(self) -> None: ...
