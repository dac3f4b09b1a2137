"""Retrieval's trained part: the cross-encoder reranker, fine-tuned on the corpus, as a registry version."""

import dagster as dg
import numpy as np
from qdrant_client import QdrantClient

from twin_assets.features.assets import embedded_chunks
from twin_assets.models.assets import version_metadata
from twin_assets.retrieval.reranker_training import ChunkText, RerankerSpec, train_reranker, training_pairs
from twin_resources.embedding import Embedder
from twin_resources.feature_store import DENSE, chunk_collection, every_category
from twin_resources.model_registry import ModelRegistry, recipe_hash, texts_hash
from twin_resources.vector_store import VectorStore


def corpus_chunks(client: QdrantClient) -> list[ChunkText]:
    """Every author's embedded chunks with their vectors, in a stable order."""
    records = every_category(client, chunk_collection, ["document_id", "content"], vectors=True)
    return [ChunkText(r.payload["document_id"], r.payload["content"], np.asarray(r.vector[DENSE])) for r in records]


@dg.asset(deps=[embedded_chunks], group_name="retrieval", kinds={"pytorch"}, tags={"stage": "training"})
def reranker_model(context: dg.AssetExecutionContext, config: RerankerSpec, vector_store: VectorStore,
                   embedder: Embedder, model_registry: ModelRegistry) -> dg.MaterializeResult:
    """A cross-encoder fine-tuned from the embedding model's weights on first-sentence -> remainder pairs
    from every author's chunks, with hard negatives from vector search. Serving uses it when configured."""
    registry = model_registry.registry
    with vector_store.read() as client:
        chunks = corpus_chunks(client)
    recipe = recipe_hash("reranker", config.model_dump_json(), embedder.version,
                         texts_hash(c.content for c in chunks))
    entry = registry.find(recipe=recipe, kind="reranker")
    if entry is None:
        triples = training_pairs(chunks, embedder.embed, config)
        context.log.info(f"fine-tuning the reranker on {len(triples)} pairs from {len(chunks)} chunks")
        with registry.staging() as staged:
            try:
                loss = train_reranker(embedder.files.directory, triples, config, staged)
            except ValueError as error:
                raise dg.Failure(str(error)) from None
            entry = registry.register(staged, name="reranker", kind="reranker", format="sentence-transformers",
                                      recipe=recipe, metadata={"pairs": len(triples), "chunks": len(chunks),
                                                               "training_loss": loss,
                                                               "base": embedder.files.name})
    return dg.MaterializeResult(
        metadata={**version_metadata(entry), "pairs": entry.metadata["pairs"],
                  "training_loss": entry.metadata["training_loss"]},
        data_version=dg.DataVersion(entry.version))
