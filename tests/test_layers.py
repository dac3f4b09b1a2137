"""The layers hold by themselves: import contracts (pyproject.toml's [tool.importlinter]) and ruff."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_the_import_contracts_hold():
    result = subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_ruff_finds_nothing():
    result = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_vocabulary_imports_light():
    """Importing every domain module loads none of the heavy adapters (the contract checks the source; this
    checks what actually comes along at run time)."""
    code = ("import sys, twin_resources.domain.documents, twin_resources.domain.features, "
            "twin_resources.domain.search, twin_resources.domain.models, twin_resources.domain.templates, "
            "twin_resources.domain.training; "
            "print(sorted(m for m in ('dagster', 'pymongo', 'qdrant_client', 'torch', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
