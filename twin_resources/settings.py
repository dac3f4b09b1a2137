"""Where the project keeps its state, resolved from the environment once per process."""

import os
from pathlib import Path

import dagster as dg
import platformdirs

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def running_from_checkout() -> bool:
    """True when the code runs from a source checkout (editable install), not from site-packages."""
    return (PROJECT_ROOT / "workspace.yaml").is_file()


def twin_home() -> Path:
    """`TWIN_HOME`, else `.twin/` in the checkout, else the user's data directory."""
    configured = os.environ.get("TWIN_HOME")
    if configured:
        return Path(configured).expanduser().resolve()
    if running_from_checkout():
        return PROJECT_ROOT / ".twin"
    return Path(platformdirs.user_data_dir("llm-twin"))


def env_or(name: str, default: str) -> str | dg.EnvVar:
    """`EnvVar(name)` when the variable is set (so Dagster shows where a value came from), else `default`.

    Dagster fails a run on an `EnvVar` that is unset, and our settings are optional: unset means the
    embedded default.
    """
    return dg.EnvVar(name) if os.environ.get(name) else default


def quiet_transformers() -> None:
    """No progress bars from transformers: one per loaded or saved model is noise in logs and the CLI."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
