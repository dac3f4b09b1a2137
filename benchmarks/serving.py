"""`twin serve` under load: 16 concurrent clients on 127.0.0.1 for a bounded time, with LitServe's
batching off (the baseline) and on, streaming `/v1/chat/completions` and non-streaming `/rag`.

    python benchmarks/serving.py [--home TWIN_HOME] [--clients 16] [--seconds 20] [--max-tokens 32]

`--home` must hold a promoted model and embedded features (`make demo` builds them in the default home).
Each client sends its next request when the last one has finished. Printed per run: requests/s, latency
p50/p99, time to the first streamed token p50/p99, tokens/s, errors; then ratios against the baseline in
the same run, and where a request's time goes (retrieval steps against generation, from the server's own
traces of the measured window).
"""

import argparse
import json
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin_resources import Warehouse  # noqa: E402
from twin_resources.settings import twin_home  # noqa: E402
from twin_serving.server.process import ServerProcess  # noqa: E402
from twin_serving.tracing import TRACES  # noqa: E402

PROMPTS = ["Write a short post about chunking documents", "What do you think about evals before models?",
           "A post about latency budgets", "Why do retrieval systems need filters?",
           "Quantization explained for humans", "How do small models build big habits?",
           "Describe a boring data pipeline", "How do I write in my own voice?"]
RETRIEVAL_STEPS = ("self_query", "expansion", "search", "rerank", "prompt")


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)
    tokens: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def one_stream(url: str, prompt: str, max_tokens: int) -> tuple[float | None, int]:
    """Time to the first token and the completion tokens of one streamed answer."""
    start, first, usage = time.perf_counter(), None, 0
    with requests.post(f"{url}/v1/chat/completions", stream=True, timeout=300, json={
            "model": "twin", "stream": True, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}]}) as response:
        response.raise_for_status()
        for line in response.iter_lines(decode_unicode=True):
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            if first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter() - start
            if chunk.get("usage"):
                usage = chunk["usage"]["completion_tokens"]
    return first, usage


def one_rag(url: str, prompt: str, max_tokens: int) -> tuple[None, int]:
    response = requests.post(f"{url}/rag", json={"query": prompt, "max_tokens": max_tokens}, timeout=300)
    response.raise_for_status()
    return None, 0  # /rag reports no token counts


def run_load(url: str, call, clients: int, seconds: float, max_tokens: int) -> tuple[Load, float]:
    load, stop_at = Load(), time.monotonic() + seconds

    def client(number: int):
        turn = number
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            try:
                first, tokens = call(url, PROMPTS[turn % len(PROMPTS)], max_tokens)
            except Exception as error:  # counted, never hidden
                with load.lock:
                    load.errors.append(str(error)[:200])
                continue
            finally:
                turn += 1
            with load.lock:
                load.latencies.append(time.perf_counter() - start)
                load.tokens += tokens
                if first is not None:
                    load.first_tokens.append(first)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return load, time.monotonic() - started


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def time_split(home: str, since: float) -> dict:
    """Mean seconds per request in retrieval and in generation, from the traces written since `since`."""
    warehouse = Warehouse(home=home).connect()
    try:
        traces = [t for t in warehouse.collection(TRACES).find({}) if t["started_at"] >= since and not t["error"]]
    finally:
        warehouse.close()
    if not traces:
        return {}
    retrieval = [sum(s["seconds"] for s in t["spans"] if s["name"] in RETRIEVAL_STEPS) for t in traces]
    generation = [sum(s["seconds"] for s in t["spans"] if s["name"] == "generation") for t in traces]
    return {"traces": len(traces), "retrieval_s": statistics.mean(retrieval),
            "generation_s": statistics.mean(generation), "worker_s": statistics.mean(t["seconds"] for t in traces)}


def report(name: str, load: Load, elapsed: float, split: dict) -> dict:
    done = len(load.latencies)
    row = {"run": name, "requests": done, "errors": len(load.errors), "requests_per_s": done / elapsed,
           "p50_s": percentile(load.latencies, 0.5), "p99_s": percentile(load.latencies, 0.99),
           "ttft_p50_s": percentile(load.first_tokens, 0.5), "ttft_p99_s": percentile(load.first_tokens, 0.99),
           "tokens_per_s": load.tokens / elapsed, **split}
    print(f"{name:<28} {done:>5} req {row['requests_per_s']:6.2f} req/s  p50 {row['p50_s']:6.2f} s  "
          f"p99 {row['p99_s']:6.2f} s  TTFT p50 {row['ttft_p50_s']:6.2f} s  p99 {row['ttft_p99_s']:6.2f} s  "
          f"{row['tokens_per_s']:6.1f} tok/s  errors {len(load.errors)}", flush=True)
    if split and load.latencies:
        # A batch's generation span covers the whole batch: every request in it waits for the longest.
        other = split["worker_s"] - split["retrieval_s"] - split["generation_s"]
        waiting = statistics.mean(load.latencies) - split["worker_s"]
        row["queue_s"] = waiting
        print(f"{'':<28} mean per request: retrieval {split['retrieval_s'] * 1000:6.1f} ms, generation "
              f"{split['generation_s'] * 1000:7.1f} ms, other work in the worker {other * 1000:6.1f} ms, waiting "
              f"in the queue and transport {waiting * 1000:7.1f} ms ({split['traces']} traces)", flush=True)
    for error in sorted(set(load.errors))[:3]:
        print(f"{'':<28} error: {error}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=str(twin_home()))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8, help="LitServe's max_batch_size when batching is on")
    parser.add_argument("--json", type=Path, help="Also write the rows here.")
    arguments = parser.parse_args()

    environment = {"TWIN_HOME": arguments.home, "OPIK_TRACK_DISABLE": "true"}
    rows = []
    for batching, args in (("off", ("--max-batch-size", "1")),
                           ("on", ("--max-batch-size", str(arguments.batch_size), "--batch-timeout", "0.05"))):
        with ServerProcess(environment, args=args) as server:
            one_stream(server.url, PROMPTS[0], 4)  # warm: the first request pays for lazy loading
            for endpoint, call in (("chat stream", one_stream), ("rag", one_rag)):
                since = time.time()
                load, elapsed = run_load(server.url, call, arguments.clients, arguments.seconds, arguments.max_tokens)
                time.sleep(1.0)  # the last traces are written by the server's recorder thread
                rows.append(report(f"{endpoint}, batching {batching}", load, elapsed,
                                   time_split(arguments.home, since)))
    base, batched = rows[0], rows[2]
    rag_base, rag_batched = rows[1], rows[3]
    print(f"\nbatching on / off, streaming: {batched['requests_per_s'] / base['requests_per_s']:.2f}x requests/s, "
          f"{batched['tokens_per_s'] / base['tokens_per_s']:.2f}x tokens/s, "
          f"TTFT p50 {batched['ttft_p50_s'] / base['ttft_p50_s']:.2f}x")
    print(f"batching on / off, /rag:      {rag_batched['requests_per_s'] / rag_base['requests_per_s']:.2f}x requests/s, "
          f"p50 {rag_batched['p50_s'] / rag_base['p50_s']:.2f}x")
    errors = sum(row["errors"] for row in rows)
    print(f"errors in all runs: {errors} (target 0)")
    if arguments.json:
        arguments.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
