"""The `LLM` resource: one interface over the transformers, llama.cpp and OpenAI-compatible backends."""

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import dagster as dg
from pydantic import PrivateAttr

from twin_resources.domain.models import DEFAULT_CHANNEL, ModelVersion, RegistryError
from twin_resources.llm.base import ChatBackend, Completion, LLMError, Message, Sampling
from twin_resources.llm.structured import chat_json
from twin_resources.model_registry import Registry, default_registry

T, R = TypeVar("T"), TypeVar("R")
BACKENDS = ("auto", "transformers", "llama_cpp", "openai")


class LLM(dg.ConfigurableResource):
    """A language model chosen by configuration.

    `backend` "auto": the `openai` backend when `base_url` is set, else the model's own format (a directory
    is transformers, a .gguf file is llama.cpp). `model` is "promoted" (the registry's promoted version), a
    registry version, a model directory or a GGUF file; for the `openai` backend, the served model's name.
    """

    backend: str = "auto"
    model: str = "promoted"
    base_url: str = ""
    api_key: str = ""
    max_tokens: int = 256
    temperature: float = 0.7
    timeout_s: float = 120.0
    structured_attempts: int = 3
    concurrency: int = 8  # requests in flight at once to an endpoint (TWIN_LLM_CONCURRENCY)
    context_length: int = 4096
    threads: int = 0
    home: str = ""
    registry_root: str = ""
    _backend: ChatBackend | None = PrivateAttr(default=None)
    _opened_registry: Registry | None = PrivateAttr(default=None)

    def open(self) -> ChatBackend:
        """The backend, loaded on first use and kept."""
        if self._backend is None:
            self._backend = self._load()
        return self._backend

    def _load(self) -> ChatBackend:
        if self.backend not in BACKENDS:
            raise LLMError(f"unknown LLM backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")
        if self.backend == "openai" or (self.backend == "auto" and self.base_url):
            from twin_resources.llm.openai_backend import OpenAIBackend

            return OpenAIBackend(self.base_url, self.api_key, self.model, self.timeout_s)
        path, version = self._local_model()
        backend = self.backend if self.backend != "auto" else ("llama_cpp" if path.suffix == ".gguf" else "transformers")
        if backend == "llama_cpp":
            from twin_resources.llm.llama_cpp_backend import LlamaCppBackend

            return LlamaCppBackend(path, version, self.context_length, self.threads)
        from twin_resources.llm.transformers_backend import TransformersBackend

        return TransformersBackend(path, version)

    def _local_model(self) -> tuple[Path, str]:
        """The model's file or directory and the name it answers as (its registry version when it has one)."""
        candidate = Path(self.model).expanduser()
        looks_like_a_path = "/" in self.model or candidate.suffix == ".gguf"
        if self.model != "promoted" and (candidate.exists() or looks_like_a_path):
            return candidate, str(candidate)  # a missing one is named by the backend
        registry = self._registry()
        try:
            entry = registry.promoted() if self.model == "promoted" else registry.get(self.model)
        except RegistryError as error:
            raise LLMError(str(error)) from None
        if entry is None:
            raise LLMError(f"no model is promoted in {registry.location}: materialize base_model or run "
                           "`twin models promote VERSION`")
        return model_path(entry), entry.version

    @property
    def requests_in_flight(self) -> int:
        """How many requests to send at once: an endpoint's server batches them; a local model is one
        process's, and answers in turn."""
        return max(1, self.concurrency) if self.base_url or self.backend == "openai" else 1

    def each(self, ask: Callable[["LLM", T], R], items: Sequence[T],
             on_done: Callable[[], None] = lambda: None) -> list[R | LLMError]:
        """`ask(self, item)` for every item, `requests_in_flight` at a time, results in the items' order; a
        request that fails gives its LLMError in its place, and the others go on."""
        def one(item: T) -> R | LLMError:
            try:
                return ask(self, item)
            except LLMError as error:
                return error
            finally:
                on_done()

        self.open()  # loaded once, before the threads
        with ThreadPoolExecutor(max_workers=self.requests_in_flight) as pool:
            return list(pool.map(one, items))

    @property
    def follows_promotions(self) -> bool:
        """True when the model is the registry's promoted one (not a fixed version, file or endpoint)."""
        return self.model == "promoted" and not self.base_url and self.backend != "openai"

    def promoted_version(self, channel: str = DEFAULT_CHANNEL) -> str | None:
        """The version promoted now in `channel`, when the model follows promotions; None otherwise or
        before any."""
        return self.promoted_versions().get(channel)

    def promoted_versions(self) -> dict[str, str]:
        """The version promoted in each channel (an author's key, or `default`); empty when the model does
        not follow promotions."""
        return self._registry().promoted_versions() if self.follows_promotions else {}

    def serves_from_scratch_model(self, version: str | None = None) -> bool:
        """True when `version` (default: the model this resource opens) is the small offline model trained
        here from scratch, which shows the plumbing rather than anyone's voice."""
        if not version:
            if self.base_url or self.backend == "openai":
                return False
            version = self.promoted_version() if self.model == "promoted" else self.model
        try:
            return bool(version) and self._registry().get(version).from_scratch
        except RegistryError:
            return False  # a file or directory outside the registry: nothing says how it was made

    def for_version(self, version: str) -> "LLM":
        """The same settings, opening one registry version."""
        return self.with_settings(model=version)

    def with_settings(self, **overrides) -> "LLM":
        """A new resource (nothing loaded yet) with these settings changed."""
        return LLM(**{**{name: getattr(self, name) for name in type(self).model_fields}, **overrides})

    def _registry(self) -> Registry:
        if self._opened_registry is None:  # once: an S3 registry's client is slow to make
            self._opened_registry = default_registry(self.home, self.registry_root)
        return self._opened_registry

    def sampling(self, **overrides) -> Sampling:
        values = {"max_tokens": self.max_tokens, "temperature": self.temperature, **overrides}
        values["stop"] = tuple(values.get("stop") or ())
        return Sampling(**values)

    def answer_room(self, messages: list[Message]) -> int:
        """The longest answer (in tokens, at most `max_tokens`) that fits the context after `messages`: a
        small model's short context shortens the answer rather than refusing the request."""
        backend = self.open()
        if backend.context_window is None:
            return self.max_tokens
        counted = getattr(backend, "count_chat_tokens", None)
        used = counted(messages) if counted else sum(backend.count_tokens(m["content"]) + 4 for m in messages)
        room = min(self.max_tokens, backend.context_window - used)
        if room < 1:
            raise LLMError(f"the prompt ({used} tokens) fills the model's context of {backend.context_window}")
        return room

    def chat(self, messages: list[Message], **overrides) -> Completion:
        return self.open().chat(messages, self.sampling(**overrides))

    def stream(self, messages: list[Message], **overrides) -> Iterator[str]:
        return self.open().stream(messages, self.sampling(**overrides))

    def generate(self, prompt: str, **overrides) -> Completion:
        return self.open().complete(prompt, self.sampling(**overrides))

    def structured(self, messages: list[Message], schema: dict, **overrides):
        """A JSON value matching `schema`; StructuredOutputError after `structured_attempts` tries."""
        return chat_json(self.open(), messages, schema, self.sampling(**overrides), self.structured_attempts)

    def teardown_after_execution(self, context) -> None:
        if self._backend is not None:
            self._backend.close()


def model_path(entry: ModelVersion) -> Path:
    """What a backend opens for a registry version: its GGUF file, or its directory."""
    return entry.file(".gguf") if entry.format == "gguf" else entry.path
