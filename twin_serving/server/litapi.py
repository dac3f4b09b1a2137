"""The twin as a LitServe API: the inference worker's side (`TwinAPI`) and the HTTP side (`TwinSpec`).

`TwinSpec` keeps LitServe's OpenAI queues and routes but waits for a request's first event before it
answers, so a failure gets its real status (422, 503) instead of a 200 whose stream then breaks. It adds
the sources to the response and serves `/rag` through the same workers.
"""

import asyncio
import json
import time
import uuid
from collections import deque

import litserve as ls
from fastapi import BackgroundTasks, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from litserve.specs.openai import ChatCompletionRequest, OpenAISpec
from litserve.utils import LitAPIStatus, ResponseBufferItem
from pydantic import BaseModel, Field, field_validator

from twin_resources.settings import ServeSettings
from twin_serving.server.engine import ChatRequest


class TwinAPI(ls.LitAPI):
    """Runs in each inference worker process: the engine over the stores and the promoted model."""

    def __init__(self, settings: ServeSettings):
        super().__init__(max_batch_size=settings.max_batch_size, batch_timeout=settings.batch_timeout,
                         spec=TwinSpec(settings))
        self.settings = settings

    def setup(self, device):
        from twin_resources.configured import resources_from_env
        from twin_resources.settings import quiet_transformers
        from twin_resources.vector_store import remove_read_copies
        from twin_serving.server.engine import TwinEngine
        from twin_serving.server.lifetime import end_on_signal, exit_with_parent
        from twin_serving.server.trace_store import open_trace_recorder

        exit_with_parent()  # a spawned worker: it must not outlive `twin serve`
        end_on_signal(remove_read_copies)  # LitServe stops it with SIGTERM: its store copy goes with it
        quiet_transformers()
        resources = resources_from_env()
        self.engine = TwinEngine(resources, self.settings, open_trace_recorder(resources["warehouse"]))

    def decode_request(self, request: ChatCompletionRequest, context=None) -> ChatRequest:
        metadata = request.metadata or {}
        messages = [{"role": m.role, "content": message_text(m.content)} for m in request.messages]
        return ChatRequest(messages=messages, max_tokens=request.max_completion_tokens or request.max_tokens,
                           temperature=request.temperature if request.temperature is not None
                           else self.settings.temperature,
                           author=metadata.get("author") or None, endpoint=metadata.get("endpoint", "chat"),
                           twin=request.model or "")

    def predict(self, x):
        if isinstance(x, list):
            yield from self.engine.answer_batch(x)
        else:
            yield from self.engine.answer(x)

    def encode_response(self, output):
        for item in output:
            yield [_encoded(e) for e in item] if isinstance(item, list) else _encoded(item)


def _encoded(event: dict | None) -> dict:
    """An event as the chat message LitServe's OpenAI machinery expects, the event itself riding along."""
    if event is None:
        return {"role": "assistant", "content": "", "twin": None}
    return {"role": "assistant", "content": event.get("text", ""), "twin": event}




def message_text(content) -> str:
    """A message's text: OpenAI sends a string, or a list of parts of which we read the text ones."""
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part.text for part in content if getattr(part, "type", "") == "text")


def unreadable(text: str | None) -> bool:
    """True for text Python holds but no encoder can write: a lone surrogate ("\ud800") from a JSON escape."""
    try:
        (text or "").encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class RagRequest(BaseModel):
    query: str = Field(min_length=1)
    author: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)

    @field_validator("query", "author")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if unreadable(value):
            raise ValueError("holds a lone surrogate: not valid Unicode text")
        return value


class TwinSpec(OpenAISpec):
    """`/v1/chat/completions` (streaming or not) and `/rag`, both with the answer's sources."""

    def __init__(self, settings: ServeSettings):
        super().__init__()
        self.settings = settings

    def pre_setup(self, lit_api):
        super().pre_setup(lit_api)
        self.add_endpoint("/rag", self.rag, ["POST"])

    # checks made before a request is queued, so one bad request never fails a batch

    def _validate(self, request: ChatCompletionRequest) -> None:
        """Everything that can be known about a request before it joins a batch; the worker then meets
        only requests it can serve, so one bad request never fails the others."""
        if request.n not in (None, 1):
            raise HTTPException(422, "n must be 1: the twin writes one answer per request")
        if not request.messages or request.messages[-1].role != "user":
            raise HTTPException(422, "the last message must be the user's request")
        for number, message in enumerate(request.messages, 1):
            if isinstance(message.content, list) and any(getattr(p, "type", "") != "text" for p in message.content):
                raise HTTPException(422, f"message {number} holds a part that is not text: the twin reads text only")
            if unreadable(message_text(message.content)):
                raise HTTPException(422, f"message {number} holds a lone surrogate: not valid Unicode text")
        if any(unreadable(value) for value in (request.model, *(request.metadata or {}).values())):
            raise HTTPException(422, "model or metadata holds a lone surrogate: not valid Unicode text")
        if not message_text(request.messages[-1].content).strip():
            raise HTTPException(422, "the user's request must be non-empty text")
        max_tokens = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
        if max_tokens is not None and max_tokens < 1:
            raise HTTPException(422, "max_tokens must be at least 1")
        if request.temperature is not None and not 0 <= request.temperature <= 2:
            raise HTTPException(422, "temperature must be between 0 and 2")
        if request.top_p is not None and not 0 < request.top_p <= 1:
            raise HTTPException(422, "top_p must be greater than 0 and at most 1")
        characters = sum(len(message_text(m.content)) for m in request.messages)
        if characters > self.settings.max_prompt_chars:
            raise HTTPException(422, f"the conversation has {characters} characters; the limit is "
                                     f"{self.settings.max_prompt_chars}")
        if (request.max_completion_tokens or request.max_tokens or 0) > self.settings.max_tokens_limit:
            raise HTTPException(422, f"max_tokens may be at most {self.settings.max_tokens_limit}")

    # the queue round trip

    def _submit(self, request: ChatCompletionRequest):
        uid, queue, event = uuid.uuid4(), deque(), asyncio.Event()
        self.response_buffer[uid] = ResponseBufferItem(response_queue=queue, event=event)
        self.request_queue.put((self.response_queue_id, uid, time.monotonic(), request))
        return uid, self.data_streamer(queue, event, send_status=True)

    @staticmethod
    async def _next_event(pipe) -> dict | None:
        """The next event from the worker; None when the stream is over."""
        while True:
            try:
                response, status = await anext(pipe)
            except StopAsyncIteration:
                return None
            if status == LitAPIStatus.ERROR:
                if isinstance(response, HTTPException):
                    raise HTTPException(response.status_code, response.detail)
                raise HTTPException(500, "the inference worker failed; see the server log")
            event = json.loads(response)["twin"]
            if event is not None:
                if event["event"] == "error":
                    raise HTTPException(event["status"], event["message"])
                return event

    async def _start(self, request: ChatCompletionRequest):
        self._validate(request)
        uid, pipe = self._submit(request)
        try:
            first = await self._next_event(pipe)
        except HTTPException:
            self.response_buffer.pop(uid, None)
            raise
        if first is None:
            raise HTTPException(503, "the inference worker ended the request without an answer")
        return uid, pipe, first

    async def _collect(self, pipe) -> tuple[str, dict]:
        text = []
        while (event := await self._next_event(pipe)) is not None:
            if event["event"] == "delta":
                text.append(event["text"])
            elif event["event"] == "end":
                return "".join(text), event
        return "".join(text), {}

    # the endpoints

    async def chat_completion(self, request: ChatCompletionRequest, background_tasks: BackgroundTasks):
        uid, pipe, first = await self._start(request)
        completion_id, created = f"chatcmpl-{uid.hex[:24]}", int(time.time())
        if request.stream:
            return StreamingResponse(self._events(pipe, first, completion_id, created, uid),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            text, end = await self._collect(pipe)
        finally:
            self.response_buffer.pop(uid, None)
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": created, "model": first["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": end.get("finish_reason", "stop")}],
            "usage": _usage(end), "sources": first["sources"], "retrieval": _searched(first)})

    async def _events(self, pipe, first: dict, completion_id: str, created: int, uid):
        def chunk(delta: dict, finish_reason=None, **extra) -> str:
            body = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": first["model"], "choices": [{"index": 0, "delta": delta,
                                                         "finish_reason": finish_reason}], **extra}
            return f"data: {json.dumps(body)}\n\n"

        try:
            yield chunk({"role": "assistant", "content": ""}, sources=first["sources"], retrieval=_searched(first))
            while (event := await self._next_event(pipe)) is not None:
                if event["event"] == "delta":
                    yield chunk({"content": event["text"]})
                elif event["event"] == "end":
                    yield chunk({}, event["finish_reason"], usage=_usage(event))
                    break
            yield "data: [DONE]\n\n"
        except HTTPException as error:  # after the first token the status is sent: the error goes in-band
            yield "data: " + json.dumps({"error": {"message": error.detail, "code": error.status_code}}) + "\n\n"
        finally:
            self.response_buffer.pop(uid, None)

    async def rag(self, body: RagRequest):
        metadata = {"endpoint": "rag", **({"author": body.author} if body.author else {})}
        request = ChatCompletionRequest(messages=[{"role": "user", "content": body.query}], stream=False,
                                        max_tokens=body.max_tokens, metadata=metadata,
                                        temperature=body.temperature)
        uid, pipe, first = await self._start(request)
        try:
            text, _ = await self._collect(pipe)
        finally:
            self.response_buffer.pop(uid, None)
        sources = [{key: s[key] for key in ("link", "title", "author", "score")} for s in first["sources"]]
        return {"answer": text, "sources": sources, "model": first["model"]}


def _searched(first: dict) -> dict:
    """Whose writing was searched, and in which category (None: every one), as self-query read the request."""
    return {"author": first.get("author"), "category": first.get("category")}


def _usage(end: dict) -> dict:
    prompt, completion = end.get("prompt_tokens", 0), end.get("completion_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
