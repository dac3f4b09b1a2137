"""The feature store per author: cleaned documents (for training) and embedded chunks (for RAG) in Qdrant."""

import dagster as dg

from twin_assets.checks import check_results, check_specs
from twin_assets.collection.assets import RAW_ASSETS
from twin_assets.features.checks import CHUNK_CHECKS, CLEANED_CHECKS, check_chunks, check_cleaned
from twin_assets.features.chunking import Chunker, ChunkingConfig
from twin_assets.features.pipeline import (
    StepReport,
    chunk_collection,
    cleaned_collection,
    stored_content_version,
    sync_cleaned_documents,
    sync_embedded_chunks,
)
from twin_assets.metadata import markdown_table
from twin_assets.partitions import authors
from twin_resources import ProgressReporter, Warehouse
from twin_resources.domain.documents import Category, UserDocument
from twin_resources.embedding import Embedder
from twin_resources.vector_store import VectorStore
from twin_resources.warehouse import WarehouseError

FEATURES = dict(partitions_def=authors, group_name="features", kinds={"qdrant"}, tags={"stage": "features"},
                automation_condition=dg.AutomationCondition.eager())


def _author(warehouse: Warehouse, key: str) -> UserDocument:
    try:
        return warehouse.require_user(key)
    except WarehouseError as error:
        raise dg.Failure(str(error)) from None


def _metadata(report: StepReport, noun: str) -> dict:
    rows = [[c.value, report.stored[c], report.added[c], report.updated[c], report.removed[c], report.unchanged[c]]
            for c in Category]
    metadata = {
        "stored": report.total("stored"), "new": report.total("added"), "updated": report.total("updated"),
        "removed": report.total("removed"), "unchanged": report.total("unchanged"),
        "per_category": dg.MetadataValue.md(markdown_table(
            ["category", noun, "added", "updated", "removed", "unchanged"], rows)),
    }
    metadata.update({f"{c.value}_{noun}": report.stored[c] for c in Category})
    if not report.changed:  # the last real run's timings stay the ones shown
        metadata["nothing_to_do"] = dg.MetadataValue.text(f"every {noun[:-1]} was up to date")
    else:
        metadata["seconds"] = dg.MetadataValue.md(markdown_table(
            ["stage", "seconds"], [[stage, f"{s:.2f}"] for stage, s in report.seconds.items()]))
        metadata.update({f"{stage}_seconds": dg.MetadataValue.float(round(s, 3)) for stage, s in report.seconds.items()})
    return metadata


@dg.asset(deps=list(RAW_ASSETS.values()), check_specs=check_specs(CLEANED_CHECKS, "cleaned_documents"), **FEATURES)
def cleaned_documents(context: dg.AssetExecutionContext, warehouse: Warehouse,
                      vector_store: VectorStore) -> dg.MaterializeResult:
    """The author's documents without markup, chrome or decorative Unicode; code kept as code.
    What training reads. Only documents whose raw text changed are cleaned again."""
    author = _author(warehouse, context.partition_key)
    with vector_store.write() as client:
        report = sync_cleaned_documents(warehouse, client, author, context.log.warning)
        outcomes = check_cleaned(client, report, author)
        version = stored_content_version(client, cleaned_collection, author)
    context.log.info(f"{author.full_name}: {report.total('stored')} cleaned documents "
                     f"({report.total('added')} new, {report.total('updated')} updated, {report.total('removed')} "
                     f"removed); {report.total('lines_removed')} repeated lines taken out")
    metadata = {**_metadata(report, "documents"), "repeated_lines_removed": report.total("lines_removed")}
    if report.repeated_lines:
        metadata["repeated_lines"] = dg.MetadataValue.md(markdown_table(
            ["line repeated across the author's documents (removed)", "documents"],
            [[line[:120], count] for line, count in report.repeated_lines.most_common(25)]))
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(version),
                                check_results=check_results(CLEANED_CHECKS, outcomes))


@dg.asset(deps=[cleaned_documents], check_specs=check_specs(CHUNK_CHECKS, "embedded_chunks"), **FEATURES)
def embedded_chunks(context: dg.AssetExecutionContext, config: ChunkingConfig, warehouse: Warehouse,
                    vector_store: VectorStore, embedder: Embedder,
                    progress: dg.ResourceParam[ProgressReporter]) -> dg.MaterializeResult:
    """The author's cleaned documents cut into chunks within the embedding model's token limit, embedded.
    What RAG searches. Only chunks whose text is new are embedded."""
    author = _author(warehouse, context.partition_key)
    chunker = Chunker(embedder.tokenizer, embedder.max_tokens, config)
    with vector_store.write() as client:
        report = sync_embedded_chunks(client, embedder, chunker, author, context.log.info, progress)
        outcomes = check_chunks(client, embedder, report, author)
        version = stored_content_version(client, chunk_collection, author)
    context.log.info(f"{author.full_name}: {report.total('stored')} chunks ({report.total('added')} new, "
                     f"{report.total('updated')} re-embedded, {report.total('removed')} removed, "
                     f"{report.total('unchanged')} unchanged)")
    metadata = {**_metadata(report, "chunks"), "embedding_model": embedder.version,
                "tokens_embedded": report.tokens_embedded}
    embed_seconds = report.seconds.get("embed", 0.0)
    if report.tokens_embedded and embed_seconds:
        metadata["tokens_per_second"] = dg.MetadataValue.float(round(report.tokens_embedded / embed_seconds, 1))
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(version),
                                check_results=check_results(CHUNK_CHECKS, outcomes))
