"""One settings surface: every variable declared once, printed by `twin config` with secrets masked, and a
cluster deployment that refuses to start on embedded stores."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, **environment: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("TWIN_", "MONGODB_", "QDRANT_", "OPIK_", "DAGSTER_"))}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**clean, **environment})


def test_twin_config_prints_every_setting_with_secrets_masked(tmp_path):
    result = run("-m", "twin_assets.cli", "config", TWIN_HOME=str(tmp_path), TWIN_API_KEY="s3cret-key",
                 MONGODB_URI="mongodb://ada:hunter2@db.example:27017", TWIN_SERVE_PORT="9001")
    assert result.returncode == 0, result.stderr
    assert "s3cret-key" not in result.stdout and "hunter2" not in result.stdout
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if not line.startswith((" ", "variable"))}
    assert rows["TWIN_API_KEY"] == ["set", "********"] and rows["MONGODB_URI"] == ["set", "********"]
    assert rows["TWIN_SERVE_PORT"] == ["set", "9001"] and rows["TWIN_HOME"] == ["set", str(tmp_path)]
    assert rows["QDRANT_URL"] == ["default", "(empty)"]
    for variable in ("TWIN_DEPLOYMENT", "TWIN_BASE_MODEL", "TWIN_LLM_BASE_URL", "TWIN_DAGSTER_URL", "TWIN_GPU",
                     "TWIN_SERVE_MAX_BATCH_SIZE", "TWIN_RERANKER_MODEL", "OPIK_URL_OVERRIDE"):
        assert variable in rows


def test_a_cluster_without_servers_refuses_to_start(tmp_path):
    for command in (("-m", "twin_assets.cli", "config"), ("-m", "twin_assets.cli", "links", "list"),
                    ("-m", "twin_assets.cli", "serve")):
        result = run(*command, TWIN_HOME=str(tmp_path), TWIN_DEPLOYMENT="cluster", QDRANT_URL="http://qdrant:6333")
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "TWIN_DEPLOYMENT=cluster needs MONGODB_URI" in result.stderr and "QDRANT_URL" not in result.stderr
    definitions = run("-c", "import twin_assets.definitions", TWIN_HOME=str(tmp_path), TWIN_DEPLOYMENT="cluster")
    assert definitions.returncode != 0 and "needs MONGODB_URI and QDRANT_URL" in definitions.stderr
    assert not (tmp_path / "warehouse").exists()  # no embedded store was created in its place


def test_a_bad_value_is_named_by_its_variable(tmp_path):
    result = run("-m", "twin_assets.cli", "config", TWIN_HOME=str(tmp_path), TWIN_SERVE_PORT="eighty",
                 TWIN_EMBEDDING_BACKEND="gpu-magic")
    assert result.returncode == 1
    assert "TWIN_SERVE_PORT" in result.stderr and "TWIN_EMBEDDING_BACKEND" in result.stderr
