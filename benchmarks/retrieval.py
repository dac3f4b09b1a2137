"""Retrieval on a real corpus: latency, and known-item quality with and without reranking and expansion.

    python benchmarks/retrieval.py ../shared/corpora/handbook [--home DIR] [--json results.json]

The query set (`benchmarks/queries/handbook.json`, kept in the repository) holds each article's title and
hand-written paraphrases and questions, each with the article(s) that answer it. Articles are ranked by
their best chunk among the retrieved ones: hit@1, hit@5 and MRR (0 when the answer is not retrieved).
Latency is the whole `Retriever.retrieve` call without LLM steps (the embedding of the query included),
p50 and p99 over every query, with 20 candidates and with those 20 reranked. `--home` keeps the built
stores and models between runs.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin_assets.features.chunking import Chunker, ChunkingConfig  # noqa: E402
from twin_assets.features.pipeline import sync_cleaned_documents, sync_embedded_chunks  # noqa: E402
from twin_assets.models.base_models import build_tiny_base, cleaned_texts  # noqa: E402
from twin_assets.models.exports import GgufConfig, export_gguf  # noqa: E402
from twin_assets.models.tiny_llama import TinyLlamaSpec  # noqa: E402
from twin_assets.retrieval.assets import corpus_chunks  # noqa: E402
from twin_assets.retrieval.reranker_training import RerankerSpec, train_reranker, training_pairs  # noqa: E402
from twin_resources import LLM, VectorStore, Warehouse  # noqa: E402
from twin_resources.chunk_index import ChunkIndex  # noqa: E402
from twin_resources.embedding import Embedder  # noqa: E402
from twin_resources.model_registry import Registry  # noqa: E402
from twin_resources.transfer import import_warehouse  # noqa: E402
from twin_serving.retrieval.rerank import Reranker  # noqa: E402
from twin_serving.retrieval.retriever import RetrievalSettings, Retriever  # noqa: E402
from twin_serving.retrieval.setup import query_embedder  # noqa: E402

QUERIES = Path(__file__).resolve().parent / "queries" / "handbook.json"
CANDIDATES = 20


def build_features(home: Path, corpus: Path, embedder: Embedder, article_tokens: int) -> tuple[Warehouse, VectorStore]:
    warehouse = Warehouse(home=str(home)).connect()
    store = VectorStore(home=str(home))
    if store.published_at() is None:
        import_warehouse(warehouse, corpus)
        chunker = Chunker(embedder.tokenizer, embedder.max_tokens, ChunkingConfig(article_tokens=article_tokens))
        for user in warehouse.users():
            with store.write() as client:
                sync_cleaned_documents(warehouse, client, user)
                sync_embedded_chunks(client, embedder, chunker, user)
    return warehouse, store


def evaluate(retriever: Retriever, queries: list[dict]) -> dict:
    """Quality per query kind and overall, and latency percentiles."""
    retriever.retrieve(queries[0]["query"])  # warm: loads the collections and the models
    ranks, latencies = [], []
    for item in queries:
        started = time.perf_counter()
        result = retriever.retrieve(item["query"], k=CANDIDATES)
        latencies.append(time.perf_counter() - started)
        ranked = list(dict.fromkeys(hit.passage.link for hit in result.hits))
        found = [ranked.index(link) + 1 for link in item["answers"] if link in ranked]
        ranks.append((item["kind"], min(found) if found else None))

    def quality(selected):
        n = len(selected)
        return {"n": n, "hit@1": sum(r == 1 for r in selected) / n,
                "hit@5": sum(r is not None and r <= 5 for r in selected) / n,
                "mrr": sum(1 / r for r in selected if r) / n}

    kinds = sorted({kind for kind, _ in ranks})
    latencies_ms = sorted(s * 1000 for s in latencies)
    return {"all": quality([r for _, r in ranks]), **{k: quality([r for kind, r in ranks if kind == k]) for k in kinds},
            "p50_ms": statistics.median(latencies_ms),
            "p99_ms": latencies_ms[min(len(latencies_ms) - 1, round(0.99 * (len(latencies_ms) - 1)))]}


def query_embedding_ms(embedder: Embedder, queries: list[dict]) -> float:
    """Median milliseconds to embed one query on its own, as retrieval does."""
    embedder.embed(["warm up"])
    times = []
    for item in queries:
        started = time.perf_counter()
        embedder.embed([item["query"]])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def reranker_for(home: Path, store: VectorStore, embedder: Embedder) -> Path:
    target = home / "reranker"
    if not (target / "config.json").is_file():
        with store.read() as client:
            chunks = corpus_chunks(client)
        started = time.perf_counter()
        triples = training_pairs(chunks, embedder.embed, RerankerSpec())
        train_reranker(embedder.files.directory, triples, RerankerSpec(), target)
        print(f"reranker fine-tuned on {len(triples)} pairs in {time.perf_counter() - started:.0f} s", flush=True)
    return target


def expansion_model(home: Path, store: VectorStore) -> Path:
    """The from-scratch base model trained on this corpus, as Q8_0 GGUF (a grammar keeps its JSON valid)."""
    registry = Registry(home / "registry")
    with store.read() as client:
        texts = cleaned_texts(client)
    base = build_tiny_base(registry, texts, TinyLlamaSpec()).entry
    export = export_gguf(registry, base, GgufConfig(quantizations=["q8_0"]), log=lambda message: None)
    return export.entries[0].file(".gguf")


def print_table(rows: dict[str, dict]) -> None:
    print("\n| configuration | queries | hit@1 | hit@5 | MRR | titles MRR | paraphrases MRR | questions MRR | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        a = r["all"]
        print(f"| {name} | {a['n']} | {a['hit@1']:.3f} | {a['hit@5']:.3f} | {a['mrr']:.3f} | "
              f"{r['title']['mrr']:.3f} | {r['paraphrase']['mrr']:.3f} | {r['question']['mrr']:.3f} | "
              f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--home", type=Path, help="keep stores and models here between runs")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--chunk-sizes", default="64,128,256", help="article chunk sizes to compare")
    arguments = parser.parse_args()
    queries = json.loads(QUERIES.read_text())["queries"]
    scratch = tempfile.TemporaryDirectory(prefix="twin-retrieval-")
    root = arguments.home or Path(scratch.name)
    embedder = Embedder(home=str(root))
    queries_embedder = query_embedder(embedder)  # as `twin retrieve` and the server do
    rows: dict[str, dict] = {}
    sizes = [int(s) for s in arguments.chunk_sizes.split(",")]
    for size in sorted(sizes, key=lambda s: s != 128):  # the default first: the other rows build on it
        home = root / f"chunks-{size}"
        warehouse, store = build_features(home, arguments.corpus, embedder, size)
        authors = list(warehouse.users())
        with store.read() as client:
            index = ChunkIndex(client)
            plain = Retriever(queries_embedder, index, authors, settings=RetrievalSettings(candidates=CANDIDATES))
            rows[f"{size}-token chunks, no rerank"] = evaluate(plain, queries)
            print(f"{size}-token chunks done", flush=True)
            if size != 128:
                continue
            reranker_dir = reranker_for(home, store, embedder)
            reranked = Retriever(queries_embedder, index, authors, reranker=Reranker(reranker_dir),
                                 settings=RetrievalSettings(candidates=CANDIDATES))
            rows["128-token chunks, rerank 20 (fine-tuned here)"] = evaluate(reranked, queries)
            llm = LLM(model=str(expansion_model(home, store)), temperature=0.7, max_tokens=120)
            expanded = Retriever(queries_embedder, index, authors, llm=llm,
                                 settings=RetrievalSettings(candidates=CANDIDATES, expansions=3))
            rows["128-token chunks, 3 queries (expansion by the tiny model)"] = evaluate(expanded, queries)
    print_table(rows)
    batch_path, query_path = query_embedding_ms(embedder, queries), query_embedding_ms(queries_embedder, queries)
    print(f"\none query embedded: {query_path:.1f} ms through {queries_embedder.resolved_backend} against "
          f"{batch_path:.1f} ms through {embedder.resolved_backend} ({batch_path / query_path:.1f}x)")
    plain_row = rows["128-token chunks, no rerank"]
    reranked_row = rows["128-token chunks, rerank 20 (fine-tuned here)"]
    print(f"\nreranking: MRR {reranked_row['all']['mrr']:.3f} vs {plain_row['all']['mrr']:.3f} without "
          f"({reranked_row['all']['mrr'] / plain_row['all']['mrr']:.2f}x); p50 {plain_row['p50_ms']:.1f} ms "
          f"(target <= 30) and {reranked_row['p50_ms']:.1f} ms with rerank (target <= 100)")
    if arguments.json:
        arguments.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
