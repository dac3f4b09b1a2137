"""Resources own the outside world: each has an embedded default and a server mode chosen by settings."""

from collections.abc import Iterator
from contextlib import contextmanager

from twin_resources.embedding import Embedder
from twin_resources.http import HttpClient
from twin_resources.llm import LLM
from twin_resources.model_registry import ModelRegistry
from twin_resources.progress import ProgressReporter
from twin_resources.settings import env_or, twin_home
from twin_resources.vector_store import VectorStore
from twin_resources.warehouse import Warehouse


def resources_from_env() -> dict:
    """The resources every code location and command uses, configured from the environment."""
    home = env_or("TWIN_HOME", str(twin_home()))
    return {
        "warehouse": Warehouse(uri=env_or("MONGODB_URI", ""), home=home),
        "vector_store": VectorStore(url=env_or("QDRANT_URL", ""), api_key=env_or("QDRANT_API_KEY", ""), home=home),
        "embedder": Embedder(model=env_or("TWIN_EMBEDDING_MODEL", "sentence-transformers/all-MiniLM-L6-v2"),
                             backend=env_or("TWIN_EMBEDDING_BACKEND", "auto"),
                             precision=env_or("TWIN_EMBEDDING_PRECISION", "auto"), home=home),
        "model_registry": ModelRegistry(home=home),
        "llm": llm_from_env(),
        "http": HttpClient(),
        "progress": ProgressReporter(),
    }


def llm_from_env(**overrides) -> LLM:
    """The language model the environment names (`TWIN_LLM_*`), with `overrides` taking precedence."""
    settings = {"backend": env_or("TWIN_LLM_BACKEND", "auto"), "model": env_or("TWIN_LLM_MODEL", "promoted"),
                "base_url": env_or("TWIN_LLM_BASE_URL", ""), "api_key": env_or("TWIN_LLM_API_KEY", ""),
                "home": env_or("TWIN_HOME", str(twin_home()))}
    return LLM(**{**settings, **{k: v for k, v in overrides.items() if v is not None}})


@contextmanager
def warehouse_from_env() -> Iterator[Warehouse]:
    """The configured warehouse, connected (EnvVars resolved), for code outside a Dagster run."""
    with resources_from_env()["warehouse"].process_config_and_initialize_cm() as warehouse:
        yield warehouse


__all__ = ["Embedder", "HttpClient", "LLM", "ModelRegistry", "VectorStore", "ProgressReporter", "Warehouse", "llm_from_env", "resources_from_env", "twin_home", "warehouse_from_env"]
