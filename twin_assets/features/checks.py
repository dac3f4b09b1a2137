"""Quality checks over one author's feature store, run right after each step writes it."""

import dagster as dg
from qdrant_client import QdrantClient

from twin_assets.checks import Check, CheckOutcome
from twin_assets.features.pipeline import StepReport, chunk_collection, cleaned_collection
from twin_resources.domain.documents import Category, UserDocument
from twin_resources.embedding import Embedder
from twin_resources.feature_store import DENSE
from twin_resources.vector_store import field_filter, scroll_all

COUNTS_MATCH = Check("counts_match_metadata", "The store holds exactly as many points per category as the "
                     "metadata reports and this run's counts add up to.")
CLEANED_CHECKS = (
    Check("documents_not_empty", "Every raw document still has text after cleaning; an empty one is skipped.",
          dg.AssetCheckSeverity.WARN),
    COUNTS_MATCH,
)
CHUNK_CHECKS = (
    Check("chunks_within_token_limit", "Every chunk, re-tokenized from its stored text, fits the embedding "
          "model's token limit (nothing is cut off silently)."),
    Check("no_empty_chunks", "No chunk is empty or whitespace."),
    Check("vector_dimension_matches", "Every vector has the embedding model's dimension."),
    Check("chunk_documents_exist", "Every chunk's cleaned document still exists."),
    COUNTS_MATCH,
)


def _counts_match(client: QdrantClient, report: StepReport, name_of, author: UserDocument) -> CheckOutcome:
    wrong = []
    for category in Category:
        in_store = client.count(name_of(category), count_filter=field_filter(author_id=author.id)).count
        expected = report.unchanged[category] + report.added[category] + report.updated[category]
        if not in_store == report.stored[category] == expected:
            wrong.append(f"{category}: {in_store} in the store, {report.stored[category]} in metadata, "
                         f"{expected} from this run's counts")
    return CheckOutcome("counts_match_metadata", not wrong, "; ".join(wrong) or "store and metadata agree", wrong)


def check_cleaned(client: QdrantClient, report: StepReport, author: UserDocument) -> list[CheckOutcome]:
    skipped = [f"{link}: {reason}" for link, reason in report.skipped]
    return [
        CheckOutcome("documents_not_empty", not skipped,
                     f"{len(skipped)} documents had no text left after cleaning" if skipped else "every document has text",
                     skipped),
        _counts_match(client, report, cleaned_collection, author),
    ]


def check_chunks(client: QdrantClient, embedder: Embedder, report: StepReport, author: UserDocument) -> list[CheckOutcome]:
    over, empty, misshapen, orphans = [], [], [], []
    for category in Category:
        documents = {r.id for r in scroll_all(client, cleaned_collection(category), field_filter(author_id=author.id),
                                              payload=False)}
        points = scroll_all(client, chunk_collection(category), field_filter(author_id=author.id),
                            payload=["content", "link", "document_id", "chunk_index"], vectors=True)
        # Counted again from the text, not trusted from the payload.
        counts = [len(e.ids) for e in embedder.tokenizer.encode_batch([p.payload["content"] for p in points])]
        for point, tokens in zip(points, counts):
            label = f"{point.payload['link']} #{point.payload['chunk_index']}"
            if tokens > embedder.max_tokens:
                over.append(f"{label}: {tokens} tokens")
            if not point.payload["content"].strip():
                empty.append(label)
            if len(point.vector[DENSE]) != embedder.dimension:
                misshapen.append(f"{label}: {len(point.vector[DENSE])} dimensions")
            if point.payload["document_id"] not in documents:
                orphans.append(label)
    limit, dimension = embedder.max_tokens, embedder.dimension
    return [
        CheckOutcome("chunks_within_token_limit", not over, f"{len(over)} chunks over the model's {limit} tokens", over),
        CheckOutcome("no_empty_chunks", not empty, f"{len(empty)} empty chunks", empty),
        CheckOutcome("vector_dimension_matches", not misshapen,
                     f"{len(misshapen)} vectors not {dimension}-dimensional", misshapen),
        CheckOutcome("chunk_documents_exist", not orphans, f"{len(orphans)} chunks whose document is gone", orphans),
        _counts_match(client, report, chunk_collection, author),
    ]
