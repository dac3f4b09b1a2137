"""The resources every code location, the server and the CLI use, built from the one settings object."""

from collections.abc import Iterator
from contextlib import contextmanager

from twin_resources.settings import TwinSettings, dagster_value, load_settings


def resources_from_env(settings: TwinSettings | None = None) -> dict:
    """Every resource, configured from `settings` (default: the environment's)."""
    from twin_resources.embedding import Embedder
    from twin_resources.http import HttpClient
    from twin_resources.judge import Judge
    from twin_resources.model_io import ModelVersionIOManager
    from twin_resources.model_registry import ModelRegistry
    from twin_resources.progress import ProgressReporter
    from twin_resources.vector_store import VectorStore
    from twin_resources.warehouse import Warehouse

    settings = settings or load_settings()
    home = dagster_value("TWIN_HOME", str(settings.twin_home))
    registry = ModelRegistry(home=home, url=dagster_value("TWIN_REGISTRY_URL", ""))
    return {
        "warehouse": Warehouse(uri=dagster_value("MONGODB_URI", ""), home=home),
        "vector_store": VectorStore(url=dagster_value("QDRANT_URL", ""), api_key=dagster_value("QDRANT_API_KEY", ""),
                                    home=home),
        "embedder": Embedder(model=dagster_value("TWIN_EMBEDDING_MODEL", settings.embedding_model),
                             backend=dagster_value("TWIN_EMBEDDING_BACKEND", settings.embedding_backend),
                             precision=dagster_value("TWIN_EMBEDDING_PRECISION", settings.embedding_precision),
                             home=home),
        "model_registry": registry,
        "model_io": ModelVersionIOManager(model_registry=registry),
        "llm": llm_from_env(settings=settings),
        "judge": Judge(base_url=dagster_value("TWIN_JUDGE_BASE_URL", settings.judge_base_url),
                       model=dagster_value("TWIN_JUDGE_MODEL", settings.judge_model),
                       api_key=dagster_value("TWIN_JUDGE_API_KEY", ""), prompts=settings.judge_prompts),
        "http": HttpClient(),
        "progress": ProgressReporter(),
        "pipes_client": trainer_pipes(settings),
        "alerts": slack_alerts(settings, in_dagster=True),
    }


def trainer_pipes(settings: TwinSettings):
    """How trainers start: as child processes beside the step, or as pods of their own (in-cluster config)."""
    if settings.trainer_launch == "k8s":
        from dagster_k8s import PipesK8sClient

        return PipesK8sClient(load_incluster_config=True)
    from dagster import PipesSubprocessClient

    return PipesSubprocessClient()


def slack_alerts(settings: TwinSettings | None = None, in_dagster: bool = False):
    """Where alerts go. `in_dagster`: secrets as `EnvVar`s, which only Dagster resolves."""
    from twin_resources.alerts import SlackAlerts

    settings = settings or load_settings()
    if in_dagster:
        return SlackAlerts(token=dagster_value("SLACK_BOT_TOKEN", ""), channel=settings.slack_channel,
                           api_url=settings.slack_api_url, webhook_url=dagster_value("TWIN_SLACK_WEBHOOK_URL", ""))
    return SlackAlerts(token=settings.slack_bot_token.get_secret_value(), channel=settings.slack_channel,
                       api_url=settings.slack_api_url, webhook_url=settings.slack_webhook_url.get_secret_value())


def llm_from_env(settings: TwinSettings | None = None, **overrides):
    """The language model the settings name (`TWIN_LLM_*`), with `overrides` (those not None) taking precedence."""
    from twin_resources.llm import LLM

    settings = settings or load_settings()
    values = {"backend": dagster_value("TWIN_LLM_BACKEND", settings.llm_backend),
              "model": dagster_value("TWIN_LLM_MODEL", settings.llm_model),
              "base_url": dagster_value("TWIN_LLM_BASE_URL", settings.llm_base_url),
              "api_key": dagster_value("TWIN_LLM_API_KEY", ""),
              "concurrency": settings.llm_concurrency,
              "home": dagster_value("TWIN_HOME", str(settings.twin_home))}
    return LLM(**{**values, **{k: v for k, v in overrides.items() if v is not None}})


@contextmanager
def warehouse_from_env() -> Iterator:
    """The configured warehouse, connected (EnvVars resolved), for code outside a Dagster run."""
    with resources_from_env()["warehouse"].process_config_and_initialize_cm() as warehouse:
        yield warehouse
