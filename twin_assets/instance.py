"""The Dagster instance the `twin` commands record their runs in, shared with `twin ui`."""

import os
import shutil
from pathlib import Path

import dagster as dg

from twin_resources.settings import PROJECT_ROOT, load_settings

_FALLBACK_CONFIG = "telemetry:\n  enabled: false\n"


def dagster_home() -> Path:
    """`DAGSTER_HOME`, else `$TWIN_HOME/dagster` seeded with the project's dagster.yaml."""
    settings = load_settings()
    if settings.dagster_home:
        return Path(settings.dagster_home)
    home = settings.twin_home / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        template = PROJECT_ROOT / "dagster.yaml"
        if template.exists():
            shutil.copyfile(template, config)
        else:
            config.write_text(_FALLBACK_CONFIG)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def local_instance() -> dg.DagsterInstance:
    dagster_home()
    return dg.DagsterInstance.get()
