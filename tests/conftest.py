import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from tests.fixtures.chain import prepared_home
from tests.fixtures.servers import moto_s3, postgres_cluster, postgres_missing, s3_client
from tests.fixtures.site import fixture_site
from tests.fixtures.tiny_models import tiny_base
from twin_resources import HttpClient, Warehouse
from twin_resources.domain.documents import UserDocument
from twin_resources.embedding import Embedder
from twin_resources.model_registry import Registry

SHARED_HANDBOOK = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "handbook"


@pytest.fixture(scope="session")
def embedder(tmp_path_factory) -> Embedder:
    """The real all-MiniLM-L6-v2, loaded once for the whole run."""
    return Embedder(home=str(tmp_path_factory.mktemp("models")))


@pytest.fixture
def twin_home(tmp_path, monkeypatch) -> Path:
    """A fresh TWIN_HOME (and Dagster home inside it) for one test."""
    home = tmp_path / "twin-home"
    monkeypatch.setenv("TWIN_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("MONGODB_URI", raising=False)
    return home


@pytest.fixture
def warehouse(twin_home) -> Warehouse:
    store = Warehouse(home=str(twin_home)).connect()
    yield store
    store.close()


@pytest.fixture
def author(warehouse) -> UserDocument:
    user = UserDocument.from_full_name("Ada Quill")
    warehouse.upsert_user(user)
    return user


@pytest.fixture
def http() -> HttpClient:
    """The real client, tuned for a local site: no politeness delay, quick retries and timeouts."""
    return HttpClient(min_interval_s=0.0, backoff_s=0.01, retries=2, timeout_s=1.0)


@pytest.fixture
def site():
    with fixture_site() as running:
        yield running


@pytest.fixture
def trained_home(twin_home, warehouse, author, instance, embedder) -> dict:
    """The demo corpus as Ada's cleaned articles, and the resources an author's chain runs with."""
    return prepared_home(twin_home, warehouse, author, instance, embedder)


@pytest.fixture
def instance(twin_home):
    (twin_home / "dagster").mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(twin_home / "dagster")) as test_instance:
        yield test_instance


def commit_all(repository: Path) -> None:
    environment = {**os.environ, "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.org",
                   "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.org"}
    for command in (["git", "add", "-A"], ["git", "commit", "-q", "-m", "work"]):
        subprocess.run(command, cwd=repository, check=True, env=environment, capture_output=True)


@pytest.fixture
def git_repository(tmp_path) -> Path:
    """A real git repository with code, a binary, a lock file, a vendored folder and an oversized file."""
    repository = tmp_path / "ada-tools"
    (repository / "src").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repository, check=True)
    (repository / "README.md").write_text("# ada-tools\n\nSmall helpers.\n")
    (repository / "src" / "core.py").write_text("def add(a, b):\n\tif a:\n        return a + b\n\n\n# trailing  \n")
    (repository / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (repository / "package-lock.json").write_text("{}\n")
    (repository / "node_modules" / "lib").mkdir(parents=True)
    (repository / "node_modules" / "lib" / "index.js").write_text("module.exports = 1;\n")
    (repository / "data.csv").write_text("x\n" * 150_000)
    commit_all(repository)
    return repository


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Registry:
    return Registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="session")
def base(registry):
    """The tiny Llama trained from scratch on the demo corpus, registered."""
    return tiny_base(registry)


@pytest.fixture(scope="session")
def ggufs(registry, base):
    from twin_assets.models.exports import GgufConfig, export_gguf

    export = export_gguf(registry, base.entry, GgufConfig(), log=lambda message: None)
    return {e.metadata["quantization"]: e for e in export.entries}, export.agreements


@pytest.fixture(scope="session")
def openai_server(ggufs):
    """llama-cpp-python's own OpenAI-compatible server on 127.0.0.1, serving the tiny Q8_0 file."""
    from twin_resources.llm.local_server import llama_cpp_server

    with llama_cpp_server(ggufs[0]["q8_0"].file(".gguf"), alias="twin-tiny") as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> str:
    """moto's S3 server for the session, with the buckets the tests use."""
    with moto_s3(tmp_path_factory.mktemp("moto")) as endpoint:
        for bucket in ("twin-models", "twin-logs"):
            s3_client(endpoint).create_bucket(Bucket=bucket)
        yield endpoint


@pytest.fixture(scope="session")
def postgres() -> dict:
    """A PostgreSQL server for the session: the DAGSTER_PG_* variables that reach it."""
    if reason := postgres_missing():
        pytest.skip(reason)
    with postgres_cluster() as variables:
        yield variables
