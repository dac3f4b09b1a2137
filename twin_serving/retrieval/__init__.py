"""Retrieval for the twin: self-query, query expansion, filtered vector search, reranking."""
