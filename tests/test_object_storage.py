"""The model registry on object storage: moto's standalone S3 server on 127.0.0.1 stands in for S3 (as a
local receiver stands in for any remote service). Two TWIN_HOMEs share one registry: one trains and
promotes, the other serves the promoted model and follows a promotion and a rollback."""

import threading
import time
from pathlib import Path

import pytest
import requests

from tests.fixtures.servers import S3_CREDENTIALS
from tests.fixtures.tiny_models import TINY, corpus_texts
from tests.test_serving import RunningServer, features_for_ada, register_variant
from twin_assets.models.base_models import build_tiny_base
from twin_assets.models.tiny_llama import TinyLlamaSpec
from twin_resources.domain.models import RegistryError
from twin_resources.model_registry import default_registry
from twin_resources.registry_storage import Conflict, S3Storage


@pytest.fixture
def s3_environment(s3_endpoint, monkeypatch, request) -> dict:
    """The variables a pod gets: the registry's URL (a prefix of its own per test) and boto3's settings."""
    environment = {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint,
                   "TWIN_REGISTRY_URL": f"s3://twin-models/{request.node.name}"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment


def artifact(directory: Path, text: str) -> Path:
    (directory / "weights").mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text('{"size": 1}')
    (directory / "weights" / "part-0.bin").write_bytes(text.encode() * 1000)
    return directory


def test_two_homes_share_versions_promotions_and_rollbacks_through_s3(s3_environment, tmp_path):
    trainer, server = default_registry(str(tmp_path / "trainer")), default_registry(str(tmp_path / "server"))
    assert trainer.location == server.location == s3_environment["TWIN_REGISTRY_URL"] + "/"
    assert trainer.root == tmp_path / "trainer" / "models" / "registry-cache"

    with trainer.staging() as staged:
        first = trainer.register(artifact(staged, "first"), name="one", kind="base", format="transformers",
                                 recipe="recipe-1")
    with trainer.staging() as staged:
        second = trainer.register(artifact(staged, "second"), name="two", kind="sft", format="peft",
                                  parents=[first.version])
    trainer.promote(first.version, "first", channel="ada-quill")
    trainer.promote(second.version, "better", channel="ada-quill")

    # the other home lists them, fetches the promoted one's files on first use, and follows a rollback
    assert [v.version for v in server.versions()] == [first.version, second.version]
    served = server.promoted("ada-quill")
    assert served.version == second.version and served.parents == [first.version]
    assert (served.path / "weights" / "part-0.bin").read_bytes() == b"second" * 1000
    assert str(served.path).startswith(str(tmp_path / "server"))
    server.rollback("the new one writes badly", channel="ada-quill")
    assert trainer.promoted("ada-quill").version == first.version
    assert [p.reason for p in trainer.promotions("ada-quill")] == ["first", "better", "the new one writes badly"]

    # the same files from the other home are the same version, which learns the new recipe
    with server.staging() as staged:
        again = server.register(artifact(staged, "first"), name="one", kind="base", format="transformers",
                                recipe="recipe-2")
    assert again.version == first.version
    assert trainer.find(recipe="recipe-2").version == first.version

    # a version whose manifest was never written (a crash mid-upload) is invisible
    storage = S3Storage.from_url(s3_environment["TWIN_REGISTRY_URL"])
    storage.publish("versions/" + "f" * 64 + "/files", artifact(tmp_path / "half", "half"))
    assert len(server.versions()) == 2
    with pytest.raises(RegistryError, match="no model version"):
        server.get("f" * 12)


def test_concurrent_promotions_from_separate_pods_all_land_in_order(s3_environment, tmp_path):
    homes = [default_registry(str(tmp_path / f"pod-{i}")) for i in range(6)]
    with homes[0].staging() as staged:
        version = homes[0].register(artifact(staged, "x"), name="x", kind="base", format="transformers").version
    barrier = threading.Barrier(len(homes))
    failures: list[BaseException] = []

    def promote(registry, index):
        barrier.wait()
        try:
            registry.promote(version, f"pod {index}")
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=promote, args=(r, i)) for i, r in enumerate(homes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    history = homes[-1].promotions()
    assert sorted(p.reason for p in history) == sorted(f"pod {i}" for i in range(len(homes)))
    assert history[0].previous is None and all(p.previous == version for p in history[1:])


def test_a_conditional_write_that_lost_says_so(s3_environment):
    storage = S3Storage.from_url(s3_environment["TWIN_REGISTRY_URL"])
    storage.write("promotions/x.json", [1], if_tag=None)
    read = storage.read("promotions/x.json")
    storage.write("promotions/x.json", [1, 2], if_tag=read.tag)
    with pytest.raises(Conflict):
        storage.write("promotions/x.json", [1, 3], if_tag=read.tag)  # someone else wrote after our read
    with pytest.raises(Conflict):
        storage.write("promotions/x.json", [9], if_tag=None)  # it exists
    assert storage.read("promotions/x.json").value == [1, 2]


def test_a_bad_registry_url_is_named():
    with pytest.raises(RegistryError, match="TWIN_REGISTRY_URL"):
        S3Storage.from_url("https://example.org/models")


def test_a_server_in_another_home_serves_what_the_trainer_promotes_and_follows_a_rollback(
        s3_environment, tmp_path, embedder):
    trainer = default_registry(str(tmp_path / "trainer"))
    base = build_tiny_base(trainer, corpus_texts(), TinyLlamaSpec(**TINY)).entry
    trainer.promote(base.version, "the trainer's first model")
    served_home = tmp_path / "server"
    features_for_ada(served_home, embedder)  # in a cluster these are the shared MongoDB and Qdrant
    running = RunningServer(served_home, **s3_environment)
    try:
        def answered_by() -> str:
            answer = requests.post(f"{running.url}/rag", json={"query": "evals", "max_tokens": 4}, timeout=60)
            assert answer.ok, answer.text
            return answer.json()["model"]

        def waits_for(version: str) -> bool:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if answered_by() == version:
                    return True
                time.sleep(0.5)
            return False

        assert answered_by() == base.version
        variant = register_variant(tmp_path / "trainer", base.version, registry=trainer)
        trainer.promote(variant, "a new twin")
        assert waits_for(variant)
        trainer.rollback("back")
        assert waits_for(base.version)
        assert not (served_home / "models" / "registry").exists()  # nothing of the registry under its home
        assert (served_home / "models" / "registry-cache" / "versions" / variant / "files").is_dir()
    finally:
        running.stop()
