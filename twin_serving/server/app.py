"""`twin serve`: one LitServe server for the model API, the web page and the operator's endpoints."""

import os
import signal

import litserve as ls
from litserve.utils import WorkerSetupStatus

from twin_resources.settings import ServeSettings
from twin_resources.vector_store import remove_read_copies, sweep_orphaned_read_copies
from twin_serving.server.guard import Guard, install_error_handlers
from twin_serving.server.lifetime import end_now, forked_children_exit_with_parent
from twin_serving.server.litapi import TwinAPI
from twin_serving.server.web import build_routes

LITSERVE_ROUTES_WE_REPLACE = ("/", "/health")  # its plain-text index and health, by our page and report


def build_server(settings: ServeSettings) -> ls.LitServer:
    server = ls.LitServer(TwinAPI(settings), accelerator="auto", workers_per_device=settings.workers,
                          timeout=settings.timeout_s,  # the body limit is the Guard's, chunked bodies too
                          middlewares=[(Guard, {"api_key": settings.api_key.get_secret_value(),
                                                "max_body_bytes": settings.max_body_bytes})])
    server.uvicorn_graceful_timeout = 5  # open streams get this long to finish at shutdown
    app = server.app
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) not in LITSERVE_ROUTES_WE_REPLACE]
    install_error_handlers(app)

    def workers_ready() -> bool:
        status = getattr(server, "workers_setup_status", None) or {}
        return bool(status) and all(v == WorkerSetupStatus.READY for v in status.values())

    app.include_router(build_routes(settings, workers_ready))
    return server


def serve(settings: ServeSettings) -> None:
    """Serve until SIGINT or SIGTERM; either stops every worker process, not only this one."""
    # LitServe shuts its workers down on KeyboardInterrupt; a plain SIGTERM would orphan them. SIGINT is
    # restored too: a shell starts background jobs with it ignored. The forked API servers inherit the
    # handler: there a signal (LitServe's own terminate, or the one uvicorn re-raises after its graceful
    # shutdown) ends the process quietly, its vector-store copies removed.
    main_process = os.getpid()

    def stop(signum, frame):
        if os.getpid() == main_process:
            raise KeyboardInterrupt
        end_now(signum, remove_read_copies)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    forked_children_exit_with_parent()
    sweep_orphaned_read_copies()  # left by servers killed before this one
    server = build_server(settings)
    server.run(host=settings.host, port=settings.port, num_api_servers=1, generate_client_file=False,
               log_level="warning")
