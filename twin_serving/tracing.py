"""Prompt monitoring: every request is a trace with a span per step, kept where the operator looks.

Opik when it is configured (`OPIK_URL_OVERRIDE` for a self-hosted server, or `OPIK_API_KEY` for Comet's),
otherwise the warehouse's `traces` collection, which `twin traces` and the web page list. Traces are
written from a background thread, so a slow trace store never slows an answer.
"""

import datetime
import queue
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

from twin_resources.settings import load_settings

TRACES = "traces"


@dataclass
class SpanRecord:
    name: str
    started_at: float  # seconds since the epoch
    seconds: float
    input: dict = field(default_factory=dict)
    output: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    usage: dict = field(default_factory=dict)  # prompt_tokens, completion_tokens, total_tokens
    model: str = ""


@dataclass
class TraceRecord:
    name: str  # which endpoint: "chat" or "rag"
    started_at: float
    seconds: float = 0.0
    input: dict = field(default_factory=dict)
    output: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)  # model and embedding versions, token counts, latencies
    spans: list[SpanRecord] = field(default_factory=list)
    error: str = ""
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_mongo(self) -> dict:
        record = asdict(self)
        record["_id"] = record.pop("id")
        return record


class WarehouseTraces:
    """Traces in the warehouse's `traces` collection, through a connection of the writing thread's own."""

    def __init__(self, warehouse):
        self.warehouse = warehouse  # a Warehouse resource, connected on first write

    def write(self, trace: TraceRecord) -> None:
        self.warehouse.connect().put_record(TRACES, trace.to_mongo())

    def close(self) -> None:
        self.warehouse.close()


class OpikTraces:
    """Traces sent to an Opik server with its SDK: a trace, and a span per step under it."""

    def __init__(self, project: str):
        import opik

        self.client = opik.Opik(project_name=project, _show_misconfiguration_message=False)

    def write(self, record: TraceRecord) -> None:
        trace = self.client.trace(name=record.name, start_time=_datetime(record.started_at),
                                  end_time=_datetime(record.started_at + record.seconds), input=record.input,
                                  output=record.output, metadata=record.metadata, tags=["llm-twin"],
                                  error_info={"exception_type": "Error", "message": record.error,
                                              "traceback": ""} if record.error else None)
        for span in record.spans:
            trace.span(name=span.name, type="llm" if span.name == "generation" else "general",
                       start_time=_datetime(span.started_at), end_time=_datetime(span.started_at + span.seconds),
                       input=span.input, output=span.output, metadata=span.metadata,
                       usage=span.usage or None, model=span.model or None)
        self.client.flush()

    def close(self) -> None:
        self.client.flush()
        self.client.end()


def _datetime(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def opik_configured() -> bool:
    return load_settings().opik_configured


class TraceRecorder:
    """Writes traces to a store from its own thread; a failing store is reported once, never raised."""

    def __init__(self, store):
        self.store = store
        self.queue: queue.Queue = queue.Queue()
        self.failures = 0
        self.thread = threading.Thread(target=self._drain, name="trace-recorder", daemon=True)
        self.thread.start()

    def record(self, trace: TraceRecord) -> None:
        self.queue.put(trace)

    def _drain(self) -> None:
        while (trace := self.queue.get()) is not None:
            try:
                self.store.write(trace)
            except Exception as error:  # monitoring must not take serving down
                self.failures += 1
                if self.failures == 1:
                    print(f"traces: cannot write to {type(self.store).__name__}: {error}", flush=True)
            finally:
                self.queue.task_done()
        self.queue.task_done()

    def flush(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)
        self.store.close()


def recent_traces(warehouse, limit: int = 20) -> list[dict]:
    """The newest traces in the warehouse, newest first."""
    records = warehouse.collection(TRACES).find({}).sort("started_at", -1).limit(limit)
    return [dict(record) for record in records]
