"""Retrieval for the twin: self-query, query expansion, filtered vector search, reranking, the prompt."""

from twin_serving.retrieval.index import ChunkIndex, Hit
from twin_serving.retrieval.retriever import Retrieval, RetrievalSettings, Retriever

__all__ = ["ChunkIndex", "Hit", "Retrieval", "RetrievalSettings", "Retriever"]
