"""The HTTP side beside the model: the web page, health, the model list, authors and links, traces.

These run in the API server process; the warehouse is opened lazily there (after LitServe forks it) and
used under a lock, because the embedded store's connection is not for several threads at once.
"""

import threading
import time
from contextlib import ExitStack
from importlib import resources as package_files

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from twin_resources.domain.models import DEFAULT_CHANNEL, RegistryError
from twin_resources.domain.training import EVALUATION_METRICS
from twin_resources.launcher import TRAINING_JOB, Launcher
from twin_resources.links import register_links
from twin_resources.model_registry import Registry
from twin_resources.settings import ServeSettings, load_settings
from twin_serving.tracing import recent_traces

FROM_SCRATCH_NOTE = ("the small model trained here from scratch: it shows the plumbing, not the author's voice; "
                     "set TWIN_BASE_MODEL (a real base model) or TWIN_LLM_BASE_URL (an OpenAI-compatible "
                     "endpoint) for real answers")


class NewLinks(BaseModel):
    author: str = Field(min_length=1, max_length=200)
    urls: list[str] = Field(min_length=1, max_length=50)


class AuthorRequest(BaseModel):
    author: str = Field(min_length=1, max_length=200)


class ApproveRequest(AuthorRequest):
    version: str = Field(min_length=8, max_length=64)


def twin_state(registry: Registry, author_key: str) -> dict:
    """What the page shows of an author's twin: the model that answers them (their own, or the shared one),
    when it was trained, its evaluation against the base model, and a candidate waiting for approval."""
    own = registry.promoted(author_key)
    answering = own or registry.promoted(DEFAULT_CHANNEL)
    state: dict = {"own": own is not None, "model": None, "candidate": registry.candidate(author_key)}
    if answering is not None:
        figures = answering.metadata
        state["model"] = {
            "version": answering.version, "kind": answering.kind, "trained_at": answering.created_at.isoformat(),
            "from_scratch": answering.from_scratch,
            "evaluation": [{"metric": m, "model": figures.get(f"eval_{m}"), "base": figures.get(f"base_eval_{m}")}
                           for m in EVALUATION_METRICS if f"eval_{m}" in figures]}
    return state


def _static(name: str) -> str:
    return package_files.files("twin_serving.server").joinpath("static", name).read_text(encoding="utf-8")


class Backstage:
    """The warehouse and registry as the page and the health check see them."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.launcher = Launcher(settings.dagster_url)
        self._resources: dict | None = None  # resolved, on first use: after LitServe forked this process
        self._stack = ExitStack()  # open for the process's lifetime
        self._lock = threading.Lock()

    def resource(self, name: str):
        if self._resources is None:
            from twin_resources.configured import resources_from_env

            configured = resources_from_env()
            self._resources = {key: self._stack.enter_context(configured[key].process_config_and_initialize_cm())
                               for key in ("warehouse", "vector_store", "llm", "model_registry")}
        return self._resources[name]

    def warehouse(self):
        return self.resource("warehouse")

    def promoted_models(self) -> dict[str, str]:
        """The model each twin answers with: channel (an author's key, or `default`) -> version."""
        llm = self.resource("llm")
        return llm.promoted_versions() if llm.follows_promotions else {DEFAULT_CHANNEL: llm.model}

    def from_scratch_note(self, version: str | None) -> str:
        return FROM_SCRATCH_NOTE if version and self.resource("llm").serves_from_scratch_model(version) else ""


def build_routes(settings: ServeSettings, workers_ready) -> APIRouter:
    """`workers_ready()`: whether every inference worker has finished loading."""
    backstage = Backstage(settings)
    router = APIRouter()
    index_html, app_js = _static("index.html"), _static("app.js")

    @router.get("/", include_in_schema=False)
    def index():
        return HTMLResponse(index_html)

    @router.get("/static/app.js", include_in_schema=False)
    def script():
        return Response(app_js, media_type="text/javascript")

    @router.get("/livez", include_in_schema=False)
    def alive():
        """Kubernetes' liveness probe: the process answers (public, says nothing else)."""
        return {"alive": True}

    @router.get("/readyz", include_in_schema=False)
    def ready():
        """Kubernetes' readiness probe: /health's verdict without its details (public: probes send no key)."""
        healthy = health_report()[1]
        return JSONResponse({"ready": healthy}, status_code=200 if healthy else 503)

    @router.get("/health")
    def health():
        report, healthy = health_report()
        return JSONResponse(report, status_code=200 if healthy else 503)

    def health_report() -> tuple[dict, bool]:
        report: dict = {"status": "ok", "workers_ready": bool(workers_ready())}
        with backstage._lock:
            try:
                report["users"] = backstage.warehouse().count("users")
                report["warehouse"] = "ok"
            except Exception as error:
                report["warehouse"] = f"unreachable: {error}"
            try:
                report["models"] = backstage.promoted_models()
                report["model"] = report["models"].get(DEFAULT_CHANNEL)
                report["model_note"] = backstage.from_scratch_note(report["model"])
            except Exception as error:
                report["model"] = None
                report["model_error"] = str(error)
            report["vector_store"] = _vector_store_state(backstage)
        healthy = report["workers_ready"] and report["warehouse"] == "ok" and report["model"] \
            and report["vector_store"] in ("ok", "empty")
        report["status"] = "ok" if healthy else "degraded"
        return report, bool(healthy)

    @router.get("/v1/models")
    def models():
        with backstage._lock:
            promoted = backstage.promoted_models()
            names = {user.key: user.full_name for user in backstage.warehouse().users()}
        # One twin per channel: its id goes in a request's `model` to ask that twin by name.
        data = [{"id": channel, "object": "model", "created": int(time.time()), "owned_by": "llm-twin",
                 "version": version, "author": names.get(channel)} for channel, version in promoted.items()]
        return {"object": "list", "data": data}

    @router.get("/api/authors")
    def authors():
        with backstage._lock:
            warehouse = backstage.warehouse()
            users, links = warehouse.users(), warehouse.links()
            registry = backstage.resource("model_registry").registry
            twins = {user.key: twin_state(registry, user.key) for user in users}
        return [{"name": user.full_name, "key": user.key, "collection": backstage.launcher.state(user.key),
                 "twin": twins[user.key], "training": backstage.launcher.state(user.key, TRAINING_JOB),
                 "promotion": load_settings().promotion,
                 "links": [{"url": link.url, "status": str(link.status), "attempts": link.attempts,
                            "error": link.last_error,
                            "last_attempt_at": link.last_attempt_at.isoformat() if link.last_attempt_at else None}
                           for link in links if link.author_id == user.id]}
                for user in users]

    @router.post("/api/links")
    def add_links(body: NewLinks):
        with backstage._lock:
            try:
                registration = register_links(backstage.warehouse(), body.author, body.urls)
            except ValueError as error:
                raise HTTPException(422, f"{error}; nothing was added") from None
        return {"author": registration.author.full_name, "added": registration.added,
                "already_registered": registration.already_registered}

    def known_author(name: str):
        with backstage._lock:
            author = backstage.warehouse().find_user(name)
        if author is None:
            raise HTTPException(422, f"unknown author {name!r}: add a link for them first")
        return author

    def launched(name: str, start) -> dict:
        """`start` (the launcher's collect or train) for the author named: how and where it runs."""
        author = known_author(name)
        try:
            launch = start(author.key)
        except RuntimeError as error:
            raise HTTPException(503, str(error)) from None
        return {"author": author.full_name, "how": launch.how, "detail": launch.detail, "url": launch.url}

    @router.post("/api/collect")
    def collect(body: AuthorRequest):
        return launched(body.author, backstage.launcher.collect)

    @router.post("/api/retrain")
    def retrain(body: AuthorRequest):
        """The author's twin trained again: datasets, SFT, DPO, the evaluation, the promotion behind its gate."""
        return launched(body.author, backstage.launcher.train)

    @router.post("/api/approve")
    def approve(body: ApproveRequest):
        author = known_author(body.author)
        with backstage._lock:
            try:
                promotion = backstage.resource("model_registry").registry.approve(body.version, author.key)
            except RegistryError as error:
                raise HTTPException(409, str(error)) from None
        return {"author": author.full_name, "version": promotion.version, "reason": promotion.reason}

    @router.get("/api/traces")
    def traces(limit: int = 20):
        with backstage._lock:
            records = recent_traces(backstage.warehouse(), min(max(limit, 1), 200))
        return [{"id": r["_id"], "name": r["name"], "started_at": r["started_at"], "seconds": r["seconds"],
                 "query": r["input"].get("query"), "answer": r["output"].get("answer"),
                 "model": r["metadata"].get("model"), "error": r.get("error", ""),
                 "spans": [{"name": s["name"], "seconds": s["seconds"]} for s in r["spans"]]} for r in records]

    return router


def _vector_store_state(backstage: Backstage) -> str:
    store = backstage.resource("vector_store")
    if store.embedded:
        return "ok" if store.published_at() else "empty"
    try:
        with store.read() as client:
            client.get_collections()
        return "ok"
    except Exception as error:
        return f"unreachable: {error}"
