"""The instruction writers on the Handbook export: samples per second for each, and for the `llm` writer,
concurrent requests to a local llama.cpp server against one request at a time, in one run.

    python benchmarks/dataset_writers.py [--corpus ../shared/corpora/handbook] [--gguf FILE] [--extracts 48]
                                         [--concurrency 4] [--json results.json]

The Handbook is imported into a scratch warehouse and cleaned (each document on its own; the features
pipeline also removes lines repeated across an author's documents, which changes little here). The template
writer runs over every extract. The llm writer runs over the first `--extracts` extracts twice against one
`llama_cpp.server` process serving the GGUF file (default: the newest Q4_K_M file `make demo` registered):
once with one request in flight (the baseline), once with `--concurrency`. llama-cpp-python's server decodes
one request at a time (queued: it is started so that a new request does not interrupt the one being
decoded), so concurrency can only overlap HTTP and validation with decoding there; a server that batches
(vLLM, llama.cpp's llama-server with --parallel) gains more.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin_assets.datasets.build import PROSE  # noqa: E402
from twin_assets.datasets.extracts import cut_extracts  # noqa: E402
from twin_assets.datasets.writers import LLMWriter, Passage, TemplateWriter  # noqa: E402
from twin_assets.features.cleaned import clean_document  # noqa: E402
from twin_resources.llm import LLM  # noqa: E402
from twin_resources.llm.local_server import llama_cpp_server  # noqa: E402
from twin_resources.model_registry import default_registry  # noqa: E402
from twin_resources.transfer import import_warehouse  # noqa: E402
from twin_resources.warehouse import Warehouse  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HANDBOOK = ROOT.parent / "shared" / "corpora" / "handbook"


def handbook_passages(corpus: Path) -> list[Passage]:
    with tempfile.TemporaryDirectory() as home:
        warehouse = Warehouse(home=home).connect()
        try:
            import_warehouse(warehouse, corpus)
            documents = [clean_document(raw) for category in PROSE for raw in warehouse.documents(category)]
        finally:
            warehouse.close()
    return [Passage(extract, document.title, document.category) for document in sorted(documents, key=lambda d: d.id)
            for extract in cut_extracts(document.id, document.content)]


def demo_gguf() -> Path:
    files = sorted((e for e in default_registry().versions() if e.kind == "gguf"
                    and e.metadata.get("quantization") == "q4_k_m"), key=lambda e: e.created_at)
    if not files:
        sys.exit("no GGUF file in the registry: run `make demo` first, or pass --gguf FILE")
    return files[-1].file(".gguf")


def timed(writer, passages: list[Passage]) -> tuple[float, int, int]:
    """Seconds, samples written and extracts left without a request."""
    started = time.perf_counter()
    written = writer.write(passages, per_extract=1)
    seconds = time.perf_counter() - started
    return seconds, sum(len(w.requests) for w in written), sum(not w.requests for w in written)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=HANDBOOK)
    parser.add_argument("--gguf", type=Path, help="the model the llm writer asks (default: the demo's Q4_K_M)")
    parser.add_argument("--extracts", type=int, default=48, help="extracts the llm writer is timed on")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    arguments = parser.parse_args()

    passages = handbook_passages(arguments.corpus)
    print(f"{len(passages)} extracts from the Handbook's articles and posts")
    results = {}
    seconds, samples, empty = timed(TemplateWriter(), passages)
    results["template"] = {"samples_per_s": samples / seconds, "samples": samples, "without_request": empty}
    print(f"template writer: {samples / seconds:,.0f} samples/s ({samples} samples, {empty} extracts without one)")

    gguf = arguments.gguf or demo_gguf()
    sample = passages[:arguments.extracts]
    with llama_cpp_server(gguf, alias="bench") as url:
        for label, in_flight in (("one at a time", 1), ("concurrent", arguments.concurrency)):
            llm = LLM(backend="openai", base_url=url, model="bench", concurrency=in_flight, temperature=0.7)
            LLMWriter(llm).write(sample[:2], per_extract=1)  # warm the server
            seconds, samples, failed = timed(LLMWriter(llm), sample)
            results[f"llm_{in_flight}"] = {"samples_per_s": samples / seconds, "extracts_per_s": len(sample) / seconds,
                                           "samples": samples, "unusable": failed, "in_flight": in_flight}
            print(f"llm writer, {label} ({in_flight} in flight): {len(sample) / seconds:.2f} extracts/s, "
                  f"{samples / seconds:.2f} samples/s ({failed} of {len(sample)} answers unusable)")
    ratio = results[f"llm_{arguments.concurrency}"]["extracts_per_s"] / results["llm_1"]["extracts_per_s"]
    results["concurrent_over_serial"] = ratio
    print(f"concurrent / one at a time: {ratio:.2f}x (extracts per second; model {gguf.name})")
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
