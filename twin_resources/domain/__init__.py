"""The project's one vocabulary: documents, cleaned documents and chunks, search hits and sources, model
versions and promotions, dataset samples and evaluation results, and the chat and prompt templates that
training and serving share. Plain pydantic models and dataclasses: nothing here imports an adapter
(no Dagster, pymongo, qdrant-client or torch), and this package's `__init__` imports nothing at all."""
