"""The twin's answer to one request, in the inference worker: refresh, retrieve, fit the prompt, generate,
trace. LitServe-free, so it can be tested and benchmarked on its own.

An answer is a stream of events: `start` (model, sources) or `error` (an HTTP status and why) first, then
`delta`s of text, then `end` (token counts). A failure after the first token ends the stream with `error`.

Each author can have a twin of their own: a request about an author is answered with the version promoted
in that author's channel, else the `default` channel's. Backends are loaded on first use and kept while
their version is promoted somewhere.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

from twin_resources.chunk_index import ChunkIndex
from twin_resources.domain.models import DEFAULT_CHANNEL
from twin_resources.domain.templates import rag_messages
from twin_resources.llm import LLM, LLMError
from twin_resources.llm.base import Sampling
from twin_resources.settings import ServeSettings
from twin_serving.retrieval.retriever import Retrieval, RetrievalSettings, Retriever
from twin_serving.retrieval.setup import configured_reranker, query_embedder
from twin_serving.tracing import SpanRecord, TraceRecord, TraceRecorder

log = logging.getLogger(__name__)

REFRESH_EVERY_S = 1.0
PASSAGE_CHARS = (1500, 800, 400, 200, 100)  # tried in turn until the prompt fits the model's context
COALESCE_S = 0.05  # a batch's new text goes out at most this often: a person cannot read faster
MESSAGE_OVERHEAD_TOKENS = 8  # a chat template's role markers, per message, where it cannot be counted


@dataclass
class ChatRequest:
    messages: list[dict]  # the conversation as the client sent it; the last message is the user's request
    max_tokens: int | None  # None: the server's default, within a quarter of a small model's context
    temperature: float
    author: str | None = None
    endpoint: str = "chat"
    twin: str = ""  # OpenAI's `model` field: may name an author's twin (their key or name)

    @property
    def query(self) -> str:
        return self.messages[-1]["content"]


@dataclass
class Answer:
    """What one request produced, for its trace."""
    request: ChatRequest
    started_at: float = field(default_factory=time.time)
    start: float = field(default_factory=time.perf_counter)
    retrieval: Retrieval | None = None
    messages: list[dict] = field(default_factory=list)
    text: str = ""  # what the client was sent: leading blank lines are not an answer
    generated: str = ""  # everything the model wrote
    completion_tokens: int | None = None  # as the backend counted them while generating
    backend: object = None
    model: str = ""
    prompt_tokens: int = 0
    first_token_s: float | None = None
    generation_started_at: float = 0.0
    error: str = ""
    received: dict = field(default_factory=dict)  # the passages as the prompt gave them to the model


class PromptTooLong(ValueError):
    pass


def error_event(status: int, message: str) -> dict:
    return {"event": "error", "status": status, "message": message}


class TwinEngine:
    """Retrieval and generation over the current snapshot of the stores and the promoted model."""

    def __init__(self, resources: dict, settings: ServeSettings, recorder: TraceRecorder | None = None):
        self.settings, self.resources = settings, resources
        self.stack = ExitStack()
        self.warehouse = self.stack.enter_context(resources["warehouse"].process_config_and_initialize_cm())
        self.store = self.stack.enter_context(resources["vector_store"].process_config_and_initialize_cm())
        embedder = self.stack.enter_context(resources["embedder"].process_config_and_initialize_cm())
        self.embedder = query_embedder(embedder)
        self.reranker = configured_reranker()
        self.llm: LLM = self.stack.enter_context(resources["llm"].process_config_and_initialize_cm())
        self.recorder = recorder
        self.backends: dict[str, object] = {}  # registry version (or the fixed model) -> loaded backend
        self.promoted: dict[str, str] = {}  # channel -> version, as last read from the registry
        self.retriever: Retriever | None = None
        self._snapshot = None  # (when the vector store was published, what closes the copy being read)
        self._checked_at = 0.0
        self.refresh(force=True)

    # picking up what changed: a new promotion, newly published features

    def refresh(self, force: bool = False) -> None:
        """Between requests: load a newly promoted model and a newly published vector store. The request in
        flight keeps what it started with; the worker handles one request (or batch) at a time."""
        if not force and time.monotonic() - self._checked_at < REFRESH_EVERY_S:
            return
        self._checked_at = time.monotonic()
        self._refresh_model()
        published = self.store.published_at()
        if self._snapshot is None or published != self._snapshot[0]:
            opened = ExitStack()
            snapshot = opened.enter_context(self.store.read())
            retriever = Retriever(self.embedder, ChunkIndex(snapshot), list(self.warehouse.users()), None,
                                  self.reranker, RetrievalSettings(k=self.settings.k))
            retriever.retrieve("warm up")  # loads each collection's index now, not in the first request
            previous, self.retriever, self._snapshot = self._snapshot, retriever, (published, opened)
            if previous is not None:
                previous[1].close()  # its private copy of the store goes

    def _refresh_model(self) -> None:
        """Read the promotions; close backends no channel promotes any more; load the default one now, so
        a model that cannot load fails here, between requests."""
        if not self.llm.follows_promotions:
            if not self.backends:
                backend = self.llm.open()
                self.backends[backend.model] = backend
            return
        self.promoted = self.llm.promoted_versions()
        for version in [v for v in self.backends if v not in self.promoted.values()]:
            self.backends.pop(version).close()
        if DEFAULT_CHANNEL in self.promoted or not self.backends:
            self._backend_for(self.promoted.get(DEFAULT_CHANNEL))

    def _backend_for(self, version: str | None):
        """The loaded backend of `version` (None: whatever the LLM resource opens by itself)."""
        if not self.llm.follows_promotions:
            return next(iter(self.backends.values()))
        if version not in self.backends:
            llm = self.llm if version is None else self.llm.for_version(version)
            backend = llm.open()
            self.backends[version or backend.model] = backend
            return backend
        return self.backends[version]

    def _version_for(self, author_key: str | None) -> str | None:
        return self.promoted.get(author_key or DEFAULT_CHANNEL) or self.promoted.get(DEFAULT_CHANNEL)

    @property
    def backend(self):
        """The default channel's backend (what /health and the tests call the served model)."""
        return self._backend_for(self.promoted.get(DEFAULT_CHANNEL))

    # answering

    def answer(self, request: ChatRequest) -> Iterator[dict]:
        yield from (events[0] for events in self.answer_batch([request]))

    def answer_batch(self, requests: list[ChatRequest]) -> Iterator[list[dict | None]]:
        """Events for several requests, one list per step (None where a request has nothing new)."""
        try:
            self.refresh()
        except (LLMError, OSError) as error:
            yield [error_event(503, f"the model cannot be loaded: {error}") for _ in requests]
            return
        answers = [Answer(request) for request in requests]
        firsts = [self._prepare_alone(answer) for answer in answers]
        yield firsts
        ready = [a for a, first in zip(answers, firsts) if first["event"] == "start"]
        index = {id(a): i for i, a in enumerate(answers)}
        for step in self._generate(ready):
            row: list[dict | None] = [None] * len(answers)
            for answer, event in step:
                row[index[id(answer)]] = event
            yield row
        for answer in answers:
            self._trace(answer)

    def _prepare_alone(self, answer: Answer) -> dict:
        """`_prepare`, with whatever goes wrong failing this request alone, never the batch it is in."""
        try:
            return self._prepare(answer)
        except (ValueError, UnicodeError) as error:  # the input is at fault
            answer.error = f"the request cannot be served: {error}"
            return error_event(422, answer.error)
        except Exception as error:  # a bug: this request fails, the others go on
            log.exception("preparing a request failed")
            answer.error = f"the request failed: {type(error).__name__}: {error}"
            return error_event(500, answer.error)

    def _prepare(self, answer: Answer) -> dict:
        request = answer.request
        request.author = request.author or self._twin_author(request.twin)
        retrieval = self.retriever.retrieve(request.query, request.author)
        answer.retrieval = retrieval
        if retrieval.reason and request.author and not retrieval.author:
            answer.error = retrieval.reason
            return error_event(422, retrieval.reason)
        try:
            answer.backend = self._backend_for(self._version_for(retrieval.author.key if retrieval.author else None))
        except (LLMError, OSError) as error:
            answer.error = f"the model cannot be loaded: {error}"
            return error_event(503, answer.error)
        answer.model = answer.backend.model
        try:
            answer.messages, sources, answer.received = self._fit_prompt(retrieval, request, answer.backend)
        except PromptTooLong as error:
            answer.error = str(error)
            return error_event(422, str(error))
        return {"event": "start", "model": answer.model, "sources": [s.as_dict() for s in sources],
                "author": retrieval.author.full_name if retrieval.author else None,
                "category": retrieval.category.value if retrieval.category else None}

    def _twin_author(self, twin: str) -> str | None:
        """The author a twin's name (`model: "ada-quill"`) stands for, if it names one."""
        wanted = twin.strip().lower()
        return next((a.full_name for a in self.retriever.authors if wanted in (a.key, a.full_name.lower())), None)

    def _fit_prompt(self, retrieval: Retrieval, request: ChatRequest, backend):
        """The RAG messages, passages shortened (then dropped) until prompt and answer fit the context. With
        no answer length asked for, a small context gives up answer length before it gives up every passage."""
        context = backend.context_window or 10**9
        if request.max_tokens is not None:
            return self._fit_passages(retrieval, request, request.max_tokens, backend)
        longer, shorter = (min(self.settings.max_tokens, context // share) for share in (4, 8))
        try:
            messages, sources, received = self._fit_passages(retrieval, request, longer, backend)
            request.max_tokens = longer
            if sources or not retrieval.hits:
                return messages, sources, received
        except PromptTooLong:
            pass
        request.max_tokens = shorter
        return self._fit_passages(retrieval, request, shorter, backend)

    def _fit_passages(self, retrieval: Retrieval, request: ChatRequest, max_tokens: int, backend):
        """(messages, sources, what the model receives of the passages: each one's length, which were cut to
        fit and which dropped)."""
        author = retrieval.author.full_name if retrieval.author else None
        history = [m for m in request.messages[:-1] if m["role"] in ("user", "assistant")]
        budget = (backend.context_window or 10**9) - max_tokens
        hits = list(retrieval.hits)

        def measured(chars: int):
            messages, sources = rag_messages(request.query, author, hits, chars)
            messages = [messages[0], *history, messages[-1]]
            return messages, sources, prompt_tokens(backend, messages)

        def received(chars: int) -> dict:
            return {"passage_chars": chars, "passages": [
                {"link": h.passage.link, "chunk_index": h.passage.chunk_index,
                 "chars": min(len(h.passage.content), chars), "cut": len(h.passage.content) > chars} for h in hits],
                "dropped": [{"link": h.passage.link, "chunk_index": h.passage.chunk_index}
                            for h in retrieval.hits[len(hits):]]}

        while True:
            messages, sources, used = measured(PASSAGE_CHARS[0])
            if used <= budget:
                return messages, sources, received(PASSAGE_CHARS[0])
            # Counting tokens is the cost here: skip to the passage length the first count suggests.
            _, _, bare = measured(0) if hits else (None, None, used)
            room = (budget - bare) / max(used - bare, 1)
            for chars in [c for c in PASSAGE_CHARS[1:] if c <= PASSAGE_CHARS[0] * room * 1.2]:
                messages, sources, used = measured(chars)
                if used <= budget:
                    return messages, sources, received(chars)
            if not hits:
                raise PromptTooLong(f"the request needs {used} prompt tokens, but the model's context of "
                                    f"{backend.context_window} tokens leaves {budget} with "
                                    f"{max_tokens} tokens for the answer")
            hits.pop()

    def _generate(self, answers: list[Answer]) -> Iterator[list[tuple[Answer, dict]]]:
        """Each model's requests decoded together (authors' twins may differ within one batch)."""
        groups: dict[int, list[Answer]] = {}
        for answer in answers:
            groups.setdefault(id(answer.backend), []).append(answer)
        for group in groups.values():
            yield from self._generate_on(group[0].backend, group)

    def _generate_on(self, backend, answers: list[Answer]) -> Iterator[list[tuple[Answer, dict]]]:
        for answer in answers:
            answer.generation_started_at = time.time()
        sampling = Sampling(max_tokens=max(a.request.max_tokens for a in answers),
                            temperature=answers[0].request.temperature)
        try:
            if len(answers) > 1 and hasattr(backend, "stream_batch"):
                steps = backend.stream_batch([a.messages for a in answers], sampling)
                yield from self._coalesced(answers, steps)
                _take_counts(backend, answers)
            else:
                for answer in answers:
                    one = Sampling(answer.request.max_tokens, answer.request.temperature)
                    for text in backend.stream(answer.messages, one):
                        if (event := self._delta(answer, text)) is not None:
                            yield [(answer, event)]
                    _take_counts(backend, [answer])
        except Exception as error:  # the model's failure (503) or a bug (500): these requests only
            status = 503 if isinstance(error, LLMError) else 500
            if status == 500:
                log.exception("generation failed")
            for answer in answers:
                answer.error = str(error)
            yield [(a, error_event(status, f"generation failed: {error}")) for a in answers]
            return
        yield [(a, self._end(a)) for a in answers]

    def _coalesced(self, answers: list[Answer], steps) -> Iterator[list[tuple[Answer, dict]]]:
        """A batch's tokens, sent at most every COALESCE_S (a first token at once): each step sent is a
        message per request between LitServe's processes, which would otherwise cost more than decoding."""
        pending = [""] * len(answers)
        sent_at = time.perf_counter()
        for deltas in steps:
            first = False
            for i, text in enumerate(deltas):
                first |= bool(text) and answers[i].first_token_s is None and not pending[i]
                pending[i] += text
            if first or time.perf_counter() - sent_at >= COALESCE_S:
                yield from self._deltas(answers, pending)
                pending, sent_at = [""] * len(answers), time.perf_counter()
        if any(pending):
            yield from self._deltas(answers, pending)

    def _deltas(self, answers: list[Answer], texts: list[str]) -> Iterator[list[tuple[Answer, dict]]]:
        step = [(a, event) for a, text in zip(answers, texts) if text and (event := self._delta(a, text))]
        if step:
            yield step

    def _delta(self, answer: Answer, text: str) -> dict | None:
        """The event for new text; None while the model has written only blank lines, which are not shown."""
        answer.generated += text
        if not answer.text:
            text = text.lstrip()
            if not text:
                return None
        if answer.first_token_s is None:
            answer.first_token_s = time.perf_counter() - answer.start
        answer.text += text
        return {"event": "delta", "text": text}

    def _end(self, answer: Answer) -> dict:
        answer.prompt_tokens = prompt_tokens(answer.backend, answer.messages)
        completion = completion_tokens(answer)
        return {"event": "end", "prompt_tokens": answer.prompt_tokens, "completion_tokens": completion,
                "finish_reason": "length" if completion >= answer.request.max_tokens else "stop"}

    # monitoring

    def _trace(self, answer: Answer) -> None:
        if self.recorder is None:
            return
        self.recorder.record(build_trace(answer, self.embedder))

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
        if self._snapshot is not None:
            self._snapshot[1].close()
        self.stack.close()


def _take_counts(backend, answers: list[Answer]) -> None:
    counts = getattr(backend, "streamed_tokens", None)
    if counts is not None and len(counts) == len(answers):
        for answer, count in zip(answers, counts):
            answer.completion_tokens = count


def completion_tokens(answer: Answer) -> int:
    """What the backend counted while generating; the text counted again only where it cannot say."""
    if answer.completion_tokens is not None:
        return answer.completion_tokens
    return answer.backend.count_tokens(answer.generated) if answer.generated else 0


def prompt_tokens(backend, messages: list[dict]) -> int:
    exact = getattr(backend, "count_chat_tokens", None)
    if exact is not None:
        return exact(messages)
    return sum(backend.count_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def build_trace(answer: Answer, embedder) -> TraceRecord:
    """The request as a trace: the retrieval steps as they were timed, then the generation."""
    retrieval, request = answer.retrieval, answer.request
    generated = completion_tokens(answer) if answer.backend is not None else 0
    usage = {"prompt_tokens": answer.prompt_tokens, "completion_tokens": generated,
             "total_tokens": answer.prompt_tokens + generated}
    spans = []
    for span in retrieval.spans if retrieval else []:
        spans.append(SpanRecord(span.name, span.started_at, span.seconds, input={"request": request.query},
                                output=_json_safe(span.detail)))
    if retrieval and spans:  # the prompt as the model received it, after fitting it to the context
        spans[-1].output.update(answer.received)
        spans[-1].output["sources"] = [p["link"] for p in answer.received.get("passages", [])]
    end = time.time()
    if answer.generation_started_at:
        spans.append(SpanRecord("generation", answer.generation_started_at, end - answer.generation_started_at,
                                input={"messages": answer.messages}, output={"text": answer.text},
                                usage=usage, model=answer.model,
                                metadata={"first_token_s": answer.first_token_s}))
    return TraceRecord(
        name=request.endpoint, started_at=answer.started_at, seconds=end - answer.started_at,
        input={"query": request.query, "author": request.author, "turns": len(request.messages)},
        output={"answer": answer.text,
                "sources": [s.as_dict() for s in retrieval.sources] if retrieval else []},
        metadata={"model": answer.model, "embedding_model": embedder.model, "embedding_backend": embedder.backend,
                  "first_token_s": answer.first_token_s, **usage,
                  "author": retrieval.author.full_name if retrieval and retrieval.author else None},
        spans=spans, error=answer.error)


def _json_safe(detail: dict) -> dict:
    return {k: v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
            for k, v in detail.items()}

