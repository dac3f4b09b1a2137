"""`twin serve` and `twin traces`: the twin answering, and what it was asked."""

import datetime
import json
import threading
import time

import click

from twin_assets.cli.common import fail, open_warehouse, settings


@click.command()
@click.option("--host", help="Interface to bind (default 127.0.0.1; 0.0.0.0 exposes the twin to the network).")
@click.option("--port", type=int, help="Port (default 8000).")
@click.option("--workers", type=click.IntRange(1, 64), help="Inference worker processes, each with the model.")
@click.option("--max-batch-size", type=click.IntRange(1, 256), help="Above 1, requests that arrive together "
              "are decoded together (LitServe's batching).")
@click.option("--batch-timeout", type=float, help="Seconds a batch waits to fill.")
@click.option("--max-tokens", type=click.IntRange(1, 4096), help="Default answer length in tokens.")
def serve(host, port, workers, max_batch_size, batch_timeout, max_tokens):
    """Serve the promoted model with RAG: OpenAI-compatible API, /rag, and the web page at /."""
    from twin_serving.server.app import serve as run_server

    serving = settings().serve.with_overrides(host=host, port=port, workers=workers, max_batch_size=max_batch_size,
                                              batch_timeout=batch_timeout, max_tokens=max_tokens)
    if serving.host not in ("127.0.0.1", "0.0.0.0", "::"):
        fail("--host must be 127.0.0.1, 0.0.0.0 or :: (what LitServe binds)")
    _require_servable()
    key_needed = bool(serving.api_key.get_secret_value())
    click.echo(f"twin: loading the model for http://{serving.host}:{serving.port}"
               f"{'; API key required' if key_needed else ''}. Ctrl+C stops every worker.")
    threading.Thread(target=_announce_when_ready, args=(serving,), daemon=True).start()
    try:
        run_server(serving)
    except KeyboardInterrupt:  # SIGINT or SIGTERM: LitServe has stopped its workers
        pass
    click.echo("twin: stopped")


def _require_servable() -> None:
    """What every worker would otherwise fail on, each with a traceback, said once in one line: the stores
    open, and a model is promoted when the server follows promotions."""
    from twin_resources.configured import llm_from_env, resources_from_env

    with open_warehouse() as warehouse:
        warehouse.users()  # what the engine reads first: a damaged file fails here, in one line
    try:
        with resources_from_env()["vector_store"].process_config_and_initialize_cm() as store, store.read():
            pass
        with llm_from_env().process_config_and_initialize_cm() as llm:
            if llm.follows_promotions and not llm.promoted_versions():
                fail("no model is promoted yet: run `twin demo`, materialize base_model in Dagster, or "
                     "`twin models promote VERSION`; or set TWIN_LLM_MODEL to a model path or TWIN_LLM_BASE_URL")
    except click.ClickException:
        raise
    except Exception as error:  # a broken vector store or registry
        fail(f"cannot serve: {error}")


def _announce_when_ready(serving) -> None:
    """One line once /health says every worker is ready: then the twin answers."""
    import requests

    host = "127.0.0.1" if serving.host in ("0.0.0.0", "::") else serving.host
    key = serving.api_key.get_secret_value()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    while True:
        try:
            report = requests.get(f"http://{host}:{serving.port}/health", headers=headers, timeout=5).json()
            if report.get("workers_ready"):
                note = f" ({report['model_note']})" if report.get("model_note") else ""
                click.echo(f"twin: ready on http://{host}:{serving.port}: page at /, OpenAI API at /v1; model "
                           f"{str(report.get('model'))[:12]}{note}")
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.5)


@click.command()
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print the full traces as JSON.")
def traces(limit: int, as_json: bool):
    """The server's most recent requests, each with its steps, from the warehouse."""
    from twin_serving.tracing import opik_configured, recent_traces

    with open_warehouse() as warehouse:
        records = recent_traces(warehouse, limit)
    if as_json:
        click.echo(json.dumps(records, indent=2, ensure_ascii=False, default=str))
        return
    if not records:
        hint = " (traces go to Opik: OPIK_URL_OVERRIDE or OPIK_API_KEY is set)" if opik_configured() else ""
        click.echo("no traces yet: start `twin serve` and ask it something" + hint)
    for record in records:
        when = datetime.datetime.fromtimestamp(record["started_at"]).strftime("%Y-%m-%d %H:%M:%S")
        meta = record["metadata"]
        status = f"ERROR {record['error']}" if record.get("error") else \
            f"{meta.get('prompt_tokens', 0)}+{meta.get('completion_tokens', 0)} tokens"
        click.echo(f"{when}  {record['name']:<4} {record['seconds']:6.2f}s  {status}  "
                   f"model {str(meta.get('model'))[:12]}  {record['input'].get('query', '')[:60]!r}")
        click.echo("    " + " · ".join(f"{s['name']} {s['seconds'] * 1000:.0f} ms" for s in record["spans"]))


COMMANDS = (serve, traces)
