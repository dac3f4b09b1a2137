"""Running a trainer with no Dagster parent (a benchmark, a debugging session): its extras from a JSON file,
its log to stderr.

    python -m twin_assets.trainers.trl_trainer --local extras.json
"""

import json
import logging
import sys
from pathlib import Path


class LocalPipes:
    """What a trainer reads from Dagster Pipes: its extras and a log."""

    def __init__(self, extras: dict):
        self.extras = extras
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        self.log = logging.getLogger("trainer")


def local_pipes(arguments: list[str]) -> LocalPipes | None:
    """A LocalPipes when the command line is `--local EXTRAS.json`, else None (run under Dagster Pipes)."""
    if len(arguments) == 2 and arguments[0] == "--local":
        return LocalPipes(json.loads(Path(arguments[1]).read_text()))
    return None
