"""Feature pipeline throughput, coverage and retrieval quality on a real corpus, against baselines
measured in the same run.

    python benchmarks/feature_pipeline.py ../shared/corpora/handbook [--json results.json]

Prints, in embedded tokens per second (tokens that end up inside some chunk's embedding):
  1. our pipeline end to end (clean, chunk, embed, load into the embedded Qdrant store), and its coverage;
  2. the limit: the same embedding model on the same chunks, batched, nothing else running;
  3. the book's way: sentence-aggregated 1,000-2,000-character chunks, sentence-transformers (fp32)
     encoding 10 chunks at a time, Qdrant upserts of 4 points at a time (to the on-disk embedded store);
  4. the incremental case: one new article added to the materialized corpus;
and retrieval quality (each article's title as the query, that article as the answer) of the fast
embeddings against fp32, and of each chunking configuration tried.
"""

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient, models

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin_assets.features.chunking import Chunker, ChunkingConfig  # noqa: E402
from twin_assets.features.pipeline import (  # noqa: E402
    chunk_collection,
    cut_documents,
    document_context,
    sync_cleaned_documents,
    sync_embedded_chunks,
    with_documents,
)
from twin_resources import VectorStore, Warehouse  # noqa: E402
from twin_resources.domain.documents import Category  # noqa: E402
from twin_resources.domain.features import Chunk  # noqa: E402
from twin_resources.embedding import Embedder  # noqa: E402
from twin_resources.feature_store import DENSE  # noqa: E402
from twin_resources.transfer import import_warehouse  # noqa: E402
from twin_resources.vector_store import scroll_all  # noqa: E402

CHUNK_CONFIGS = [(64, 0), (128, 0), (128, 16), (256, 0), (256, 32)]
TITLE_SUFFIX = re.compile(r"\s+[-|]\s+(by .*|Maxime Labonne|Decoding ML.*)$|^Maxime Labonne\s+-\s+", re.IGNORECASE)


def tokens_of(tokenizer, texts: list[str]) -> list[int]:
    return [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


# The book's way, written from its description: regex cleaning, sentence aggregation by characters.
BOOK_SENTENCE = re.compile(r"(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?|\!)\s")


def book_clean(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s.,!?]", " ", text)).strip()


def book_chunks(text: str, min_length: int = 1000, max_length: int = 2000) -> list[str]:
    chunks, current = [], ""
    for sentence in BOOK_SENTENCE.split(text):
        sentence = sentence.strip()
        if len(current) + len(sentence) <= max_length:
            current += sentence + " "
        else:
            if len(current) >= min_length:
                chunks.append(current.strip())
            current = sentence + " "
    if len(current) >= min_length:
        chunks.append(current.strip())
    return chunks


def run_book_way(raw_bodies: list[str], home: Path, embedder: Embedder) -> dict:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(embedder.files.directory))
    model.encode(["warm up"])
    limit = embedder.max_tokens - 2
    started = time.perf_counter()
    cleaned = [book_clean(body) for body in raw_bodies]
    chunks = [chunk for text in cleaned for chunk in book_chunks(text)]
    client = QdrantClient(path=str(home / "book-qdrant"))
    client.create_collection("embedded_articles",
                             vectors_config=models.VectorParams(size=embedder.dimension, distance=models.Distance.COSINE))
    next_id = 0
    for start in range(0, len(chunks), 10):
        vectors = model.encode(chunks[start:start + 10])
        points = [models.PointStruct(id=next_id + i, vector=v.tolist(), payload={"content": c})
                  for i, (c, v) in enumerate(zip(chunks[start:start + 10], vectors))]
        next_id += len(points)
        for batch in range(0, len(points), 4):
            client.upsert("embedded_articles", points=points[batch:batch + 4])
    seconds = time.perf_counter() - started
    client.close()
    chunk_tokens = tokens_of(embedder.tokenizer, chunks)
    corpus_tokens = sum(tokens_of(embedder.tokenizer, cleaned))
    embedded = sum(min(t, limit) for t in chunk_tokens)
    return {"chunks": len(chunks), "seconds": seconds, "embedded_tokens": embedded, "corpus_tokens": corpus_tokens,
            "coverage": embedded / corpus_tokens, "over_limit": sum(t > limit for t in chunk_tokens),
            "tokens_per_s": embedded / seconds, "chunks_per_s": len(chunks) / seconds}


def known_item_queries(warehouse: Warehouse) -> list[tuple[str, str]]:
    """(query, answer link): each article's title, without the platform's "- by Author" decoration."""
    queries = []
    for document in warehouse.documents(Category.ARTICLES):
        title = TITLE_SUFFIX.sub("", document.content.title).strip()
        if len(title) > 10:
            queries.append((title, document.link))
    return queries


def retrieval_quality(query_vectors: np.ndarray, answers: list[str], chunk_vectors: np.ndarray,
                      chunk_links: list[str]) -> dict:
    """hit@1, hit@5 and MRR over distinct articles ranked by their best chunk (exact search)."""
    scores = query_vectors @ chunk_vectors.T
    hits1 = hits5 = reciprocal = 0.0
    for row, answer in zip(scores, answers):
        ranked, seen = [], set()
        for index in np.argsort(-row):
            if chunk_links[index] not in seen:
                seen.add(chunk_links[index])
                ranked.append(chunk_links[index])
        rank = ranked.index(answer) + 1
        hits1 += rank == 1
        hits5 += rank <= 5
        reciprocal += 1 / rank
    n = len(answers)
    return {"hit@1": hits1 / n, "hit@5": hits5 / n, "mrr": reciprocal / n}


def stored_chunks(store: VectorStore) -> tuple[list[str], list[str], np.ndarray]:
    with store.read() as client:
        records = scroll_all(client, chunk_collection(Category.ARTICLES), payload=["content", "link"], vectors=True)
    return ([r.payload["content"] for r in records], [r.payload["link"] for r in records],
            np.array([r.vector[DENSE] for r in records], dtype=np.float32))


def article_chunks(store: VectorStore) -> list[Chunk]:
    with store.read() as client:
        return [Chunk(**r.payload) for r in scroll_all(client, chunk_collection(Category.ARTICLES))]


def embedded_texts(chunks: list[Chunk]) -> tuple[list[str], list[str]]:
    """What the pipeline put through the model: the chunks' words (the same words once), and each document's
    title and subtitle once."""
    return (list(dict.fromkeys(c.content for c in chunks)),
            list(dict.fromkeys(filter(None, map(document_context, chunks)))))


def pipeline_vectors(embedder: Embedder, chunks: list[Chunk]) -> np.ndarray:
    """The chunks' vectors as the pipeline makes them, with another embedder (fp32, say)."""
    return with_documents(embedder, embedder.embed([c.content for c in chunks]), list(map(document_context, chunks)))


def run_pipeline(warehouse: Warehouse, store: VectorStore, embedder: Embedder, chunker: Chunker, users) -> None:
    """Clean, chunk, embed and load every author's documents."""
    for user in users:
        with store.write() as client:
            sync_cleaned_documents(warehouse, client, user)
            sync_embedded_chunks(client, embedder, chunker, user)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, help="a warehouse export, e.g. ../shared/corpora/handbook")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as scratch:
        home = Path(scratch)
        warehouse = Warehouse(home=str(home)).connect()
        import_warehouse(warehouse, args.corpus)
        users = list(warehouse.users())
        articles = list(warehouse.documents(Category.ARTICLES))
        held_out = articles[-1]  # added after the full run: the incremental case
        warehouse.collection(Category.ARTICLES.value).delete_one({"_id": held_out.id})

        embedder = Embedder(home=str(home))
        started = time.perf_counter()
        embedder.embed(["warm up"])
        print(f"embedding model: {embedder.version} (loaded in {time.perf_counter() - started:.1f} s)")
        chunker = Chunker(embedder.tokenizer, embedder.max_tokens, ChunkingConfig())
        store = VectorStore(home=str(home))

        # A first pass, untimed, in a scratch store: the model meets every input shape once (its first
        # encounter of a shape costs about a second in all), so the pipeline and the model alone are both
        # timed warm.
        run_pipeline(warehouse, VectorStore(home=str(home / "warm-up")), embedder, chunker, users)

        # 1. Our pipeline, end to end.
        started = time.perf_counter()
        run_pipeline(warehouse, store, embedder, chunker, users)
        full_seconds = time.perf_counter() - started
        texts, links, vectors = stored_chunks(store)
        with store.read() as client:
            cleaned = [r.payload["content"] for r in scroll_all(client, "cleaned_articles", payload=["content"])]
        corpus_tokens = sum(tokens_of(embedder.tokenizer, cleaned))
        covered = sum(tokens_of(embedder.tokenizer, texts))
        ours = {"chunks": len(texts), "seconds": full_seconds, "embedded_tokens": covered,
                "corpus_tokens": corpus_tokens, "coverage": covered / corpus_tokens,
                "tokens_per_s": covered / full_seconds, "chunks_per_s": len(texts) / full_seconds,
                "documents_per_s": (len(articles) - 1) / full_seconds}
        results["pipeline"] = ours

        # 2. The limit: the model alone on the same texts (each chunk's words, each document's context).
        words, contexts = embedded_texts(article_chunks(store))
        started = time.perf_counter()
        embedder.embed(words)
        embedder.embed(contexts)
        limit_seconds = time.perf_counter() - started
        results["model_limit"] = {"seconds": limit_seconds, "tokens_per_s": covered / limit_seconds,
                                  "chunks_per_s": len(texts) / limit_seconds}

        # 3. The book's way.
        results["book"] = run_book_way([a.content.body for a in articles if a.id != held_out.id], home, embedder)

        # 4. Incremental: one new article.
        warehouse.upsert_document(held_out)
        author = next(u for u in users if u.id == held_out.author_id)
        started = time.perf_counter()
        with store.write() as client:
            sync_cleaned_documents(warehouse, client, author)
            incremental = sync_embedded_chunks(client, embedder, chunker, author)
        results["incremental"] = {"seconds": time.perf_counter() - started,
                                  "chunks_embedded": incremental.total("added"),
                                  "chunks_unchanged": incremental.total("unchanged")}

        # Quality: fast embeddings against fp32, then each chunking configuration.
        texts, links, vectors = stored_chunks(store)
        queries = known_item_queries(warehouse)
        query_texts, answers = [q for q, _ in queries], [a for _, a in queries]
        fp32 = Embedder(home=str(home), backend="sentence-transformers", precision="fp32")
        fp32_vectors = pipeline_vectors(fp32, article_chunks(store))  # what the pipeline embedded, in fp32
        results["quality"] = {
            "queries": len(queries),
            "fast": retrieval_quality(embedder.embed(query_texts), answers, vectors, links),
            "fp32": retrieval_quality(fp32.embed(query_texts), answers, fp32_vectors, links),
            "mean_cosine_fast_vs_fp32": float((vectors * fp32_vectors).sum(axis=1).mean()),
            "min_cosine_fast_vs_fp32": float((vectors * fp32_vectors).sum(axis=1).min()),
        }
        results["chunking"] = {}
        documents = [d for d in _cleaned_documents(store)]
        query_vectors = embedder.embed(query_texts)
        for size, overlap in CHUNK_CONFIGS:
            config = ChunkingConfig(article_tokens=size, article_overlap=overlap)
            chunks = [c for cs in cut_documents(documents, Category.ARTICLES,
                                                Chunker(embedder.tokenizer, embedder.max_tokens, config), "bench")
                      for c in cs]
            chunk_vectors = embedder.embed([c.content for c in chunks])
            results["chunking"][f"{size} tokens, overlap {overlap}"] = {
                "chunks": len(chunks),
                **retrieval_quality(query_vectors, answers, chunk_vectors, [c.link for c in chunks])}
        results["backends"] = compare_backends(home, texts[:300])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print_report(results)


def _cleaned_documents(store: VectorStore):
    from twin_resources.domain.features import CleanedDocument

    with store.read() as client:
        return [CleanedDocument(**r.payload) for r in scroll_all(client, "cleaned_articles")]


def compare_backends(home: Path, sample: list[str]) -> dict:
    """Each backend and precision on the same chunks: tokens/s and agreement with fp32."""
    figures, reference = {}, None
    for backend, precision in [("sentence-transformers", "fp32"), ("sentence-transformers", "bf16"),
                               ("fastembed", "fp32"), ("fastembed", "int8")]:
        embedder = Embedder(home=str(home), backend=backend, precision=precision)
        embedder.embed(sample[:8])
        tokens = sum(len(e.ids) for e in embedder.tokenizer.encode_batch(sample))
        started = time.perf_counter()
        vectors = embedder.embed(sample)
        seconds = time.perf_counter() - started
        reference = vectors if reference is None else reference
        figures[f"{backend} {precision}"] = {"tokens_per_s": tokens / seconds,
                                             "mean_cosine_vs_fp32": float((vectors * reference).sum(axis=1).mean())}
    return figures


def print_report(r: dict) -> None:
    ours, limit, book, inc, quality = r["pipeline"], r["model_limit"], r["book"], r["incremental"], r["quality"]
    print("\n| run | chunks | seconds | embedded tokens/s | chunks/s | coverage |")
    print("|---|---|---|---|---|---|")
    print(f"| our pipeline, end to end | {ours['chunks']} | {ours['seconds']:.1f} | {ours['tokens_per_s']:,.0f} "
          f"| {ours['chunks_per_s']:.1f} | {ours['coverage']:.1%} |")
    print(f"| the model alone, same chunks | {ours['chunks']} | {limit['seconds']:.1f} | {limit['tokens_per_s']:,.0f} "
          f"| {limit['chunks_per_s']:.1f} | |")
    print(f"| the book's way | {book['chunks']} | {book['seconds']:.1f} | {book['tokens_per_s']:,.0f} "
          f"| {book['chunks_per_s']:.1f} | {book['coverage']:.1%} ({book['over_limit']} chunks truncated) |")
    print(f"| incremental: one new article | {inc['chunks_embedded']} | {inc['seconds']:.2f} | | | |")
    print(f"\ndocuments/s end to end: {ours['documents_per_s']:.2f}")
    print("\nratios (target):")
    print(f"  coverage: {ours['coverage']:.1%} (100%)")
    print(f"  end to end / model limit: {ours['tokens_per_s'] / limit['tokens_per_s']:.2f} (>= 0.90)")
    print(f"  ours / the book's way, embedded tokens/s: {ours['tokens_per_s'] / book['tokens_per_s']:.2f}x (>= 2x)")
    print(f"  incremental / full run time: {inc['seconds'] / ours['seconds']:.1%} (< 5%), "
          f"embedding {inc['chunks_embedded']} chunks, {inc['chunks_unchanged']} untouched")
    fast, fp32 = quality["fast"], quality["fp32"]
    print(f"\nknown-item retrieval ({quality['queries']} title queries), fast vs fp32 embeddings:")
    print(f"  hit@1 {fast['hit@1']:.3f} vs {fp32['hit@1']:.3f}; hit@5 {fast['hit@5']:.3f} vs {fp32['hit@5']:.3f} "
          f"(within 0.01: {'yes' if fp32['hit@5'] - fast['hit@5'] <= 0.01 else 'NO'}); "
          f"MRR {fast['mrr']:.3f} vs {fp32['mrr']:.3f}")
    print(f"  cosine fast vs fp32: mean {quality['mean_cosine_fast_vs_fp32']:.5f}, "
          f"min {quality['min_cosine_fast_vs_fp32']:.5f}")
    print("\n| article chunking | chunks | hit@1 | hit@5 | MRR |\n|---|---|---|---|---|")
    for name, q in r["chunking"].items():
        print(f"| {name} | {q['chunks']} | {q['hit@1']:.3f} | {q['hit@5']:.3f} | {q['mrr']:.3f} |")
    print("\n| backend | tokens/s (300 chunks) | mean cosine vs fp32 |\n|---|---|---|")
    for name, figures in r["backends"].items():
        print(f"| {name} | {figures['tokens_per_s']:,.0f} | {figures['mean_cosine_vs_fp32']:.5f} |")


if __name__ == "__main__":
    main()
