"""Resources own the outside world: each has an embedded default and a server mode chosen by settings.

Names are imported on first use, so that importing the vocabulary (`twin_resources.domain`) or the
settings stays light: no Dagster, database client or torch comes with them.
"""

import importlib

_EXPORTS = {
    "Embedder": "twin_resources.embedding", "HttpClient": "twin_resources.http", "LLM": "twin_resources.llm",
    "ModelRegistry": "twin_resources.model_registry", "ProgressReporter": "twin_resources.progress",
    "VectorStore": "twin_resources.vector_store", "Warehouse": "twin_resources.warehouse",
    "llm_from_env": "twin_resources.configured", "resources_from_env": "twin_resources.configured",
    "warehouse_from_env": "twin_resources.configured", "twin_home": "twin_resources.settings",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'twin_resources' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = sorted(_EXPORTS)
