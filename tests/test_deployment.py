"""The cluster deployment, checked offline: there is no cluster and no container engine here, so what can be
validated is: the manifests against Kubernetes' own schemas (bundled by kubernetes-validate), the Dagster
instance, executor and step configs against Dagster's config schema, `dagster definitions validate` with
the cluster's settings, the Dockerfiles with hadolint and the workflows with their published schema. And a
real PostgreSQL: a job runs against an instance stored in it, its compute logs in S3 (moto's server)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import kubernetes_validate
import psycopg2
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

from tests.fixtures.servers import S3_CREDENTIALS, s3_client
from twin_assets.definitions import build_definitions
from twin_assets.training.assets import dpo_model, sft_model
from twin_assets.training.pods import GPU, gpu_step_tags, pod_environment, trainer_pod_spec
from twin_resources import LLM, ModelRegistry, ProgressReporter, VectorStore
from twin_resources.judge import Judge
from twin_resources.settings import TwinSettings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = "1.33.0"  # the oldest Kubernetes the manifests promise to work on
BIN = Path(sys.executable).parent
CLUSTER_SETTINGS = {"TWIN_DEPLOYMENT": "cluster", "MONGODB_URI": "mongodb://mongo.llm-twin.svc:27017",
                    "QDRANT_URL": "http://qdrant.llm-twin.svc:6333", "TWIN_REGISTRY_URL": "s3://models/llm-twin",
                    "TWIN_TRAINER_LAUNCH": "k8s", "TWIN_TRAINER_IMAGE": "ghcr.io/llm-twin/llm-twin-trainer:1.0.0",
                    "TWIN_GPU_NODE_SELECTOR": "nvidia.com/gpu.present=true", "TWIN_HOME_CLAIM": "llm-twin-home"}


def manifests() -> list[tuple[str, dict]]:
    return [(f"{path.name} #{number}", document) for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
            for number, document in enumerate(yaml.safe_load_all(path.read_text())) if document]


@pytest.mark.parametrize("name, manifest", manifests(), ids=[name for name, _ in manifests()])
def test_each_manifest_is_valid_kubernetes(name, manifest):
    kubernetes_validate.validate(manifest, KUBERNETES, strict=True)  # raises, naming the field


def test_the_serving_deployment_probes_public_endpoints_and_reads_its_key_from_a_secret():
    documents = {d["kind"]: d for _, d in manifests() if d["metadata"].get("name") == "llm-twin-serve"}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= set(documents)
    container = documents["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "llm-twin-api-key"} in [source["secretRef"] for source in container["envFrom"]]
    assert all(value.get("value") is not None for value in container["env"])  # no key written out here
    from twin_serving.server.guard import PUBLIC_PATHS

    probes = [container[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
    assert set(probes) <= set(PUBLIC_PATHS)  # a probe sends no key
    target = documents["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "llm-twin-serve")


def test_the_trainer_pod_that_pipes_starts_is_valid_kubernetes_with_a_gpu_and_the_home_volume(monkeypatch):
    from dagster_k8s.pipes import build_pod_body
    from kubernetes.client import ApiClient

    for name, value in CLUSTER_SETTINGS.items():
        monkeypatch.setenv(name, value)
    settings = TwinSettings()
    pod = build_pod_body("dagster-pipes-sft", settings.trainer_image, ["python", "-m", "twin_assets.trainers.trl_trainer"],
                         pod_environment({"TOKENIZERS_PARALLELISM": "false", "PATH": "/usr/bin", "HF_TOKEN": "x"}),
                         None, trainer_pod_spec(settings))
    body = ApiClient().sanitize_for_serialization(pod)
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", **body}, KUBERNETES, strict=True)
    container = body["spec"]["containers"][0]
    assert container["resources"]["limits"][GPU] == "1"
    assert body["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert container["volumeMounts"][0]["mountPath"] == str(settings.twin_home)
    assert body["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "llm-twin-home"
    assert {e["name"] for e in container["env"]} == {"TOKENIZERS_PARALLELISM", "HF_TOKEN"}  # not PATH


def test_training_steps_ask_for_a_gpu_pod_unless_the_trainer_has_one_of_its_own():
    from dagster_k8s.job import get_user_defined_k8s_config

    for asset in (sft_model, dpo_model):
        config = get_user_defined_k8s_config(asset.op.tags)  # dagster-k8s's own reading of the tag
        assert config.container_config["resources"]["limits"][GPU] == "1"
    settings = TwinSettings(trainer_image="ghcr.io/llm-twin/llm-twin-trainer:1", gpu_node_selector="gpu=yes")
    tags = gpu_step_tags(settings)["dagster-k8s/config"]
    assert tags["container_config"]["image"] == "ghcr.io/llm-twin/llm-twin-trainer:1"
    assert tags["pod_spec_config"] == {"node_selector": {"gpu": "yes"}}
    assert gpu_step_tags(TwinSettings(trainer_launch="k8s", trainer_image="x")) == {}
    with pytest.raises(ValueError, match="TWIN_TRAINER_IMAGE"):
        TwinSettings(trainer_launch="k8s")


@pytest.mark.parametrize("instance_file", ["dagster-postgres.yaml", "dagster-cluster.yaml", "../dagster.yaml"])
def test_each_instance_file_passes_dagsters_config_schema(instance_file, tmp_path, monkeypatch):
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB",
                 "DAGSTER_LOGS_BUCKET", "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "value")
    shutil.copy(DEPLOY / instance_file, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # raises DagsterInvalidConfigError
    for section in ("run_launcher", "compute_logs"):
        if section in config:  # the classes' own schemas, which the instance checks only when it starts
            module = __import__(config[section]["module"], fromlist=[config[section]["class"]])
            configurable = getattr(module, config[section]["class"])
            result = process_config(configurable.config_type(), config[section]["config"])
            assert result.success, result.errors


def test_the_helm_values_match_the_instance_they_stand_for():
    values = yaml.safe_load((DEPLOY / "dagster-values.yaml").read_text())
    cluster = yaml.safe_load((DEPLOY / "dagster-cluster.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "twin_assets.definitions"]
    assert values["runLauncher"]["type"] == cluster["run_launcher"]["class"] == "K8sRunLauncher"
    assert values["computeLogManager"]["type"] == cluster["compute_logs"]["class"] == "S3ComputeLogManager"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert [s["name"] for s in launcher["envSecrets"]] == cluster["run_launcher"]["config"]["env_secrets"]
    assert launcher["volumes"] == cluster["run_launcher"]["config"]["volumes"] == deployment["volumes"]
    limit = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert limit == cluster["concurrency"]["runs"]["tag_concurrency_limits"]
    released = {m["image"] for m in _workflow("release.yml")["jobs"]["images"]["strategy"]["matrix"]["include"]}
    serving = next(d for _, d in manifests() if d["kind"] == "Deployment")
    for image in (deployment["image"]["repository"], serving["spec"]["template"]["spec"]["containers"][0]["image"]):
        assert image.split(":")[0].rsplit("/", 1)[1] in released  # every image deployed is one the tag builds


def test_the_training_job_runs_each_step_as_a_pod_in_a_cluster_and_in_process_here(monkeypatch):
    from dagster_k8s import k8s_job_executor

    laptop = build_definitions(gpu=False).get_job_def("training_job")
    assert laptop.executor_def is not k8s_job_executor
    for name, value in CLUSTER_SETTINGS.items():
        monkeypatch.setenv(name, value)
    job = build_definitions(gpu=False).get_job_def("training_job")
    assert job.executor_def is k8s_job_executor and job.tags["stage"] == "training"
    run_config = {"execution": {"config": {"job_namespace": "llm-twin", "max_concurrent": 2,
                                           "step_k8s_config": {"pod_spec_config": {"node_selector": {"pool": "cpu"}}}}}}
    assert dg.validate_run_config(job, run_config)  # raises DagsterInvalidConfigError when wrong
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, {"execution": {"config": {"job_namespace": 3}}})


def test_dagster_definitions_validate_passes_with_the_cluster_settings(tmp_path):
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith(("TWIN_", "DAGSTER_"))},
                   **CLUSTER_SETTINGS, "DAGSTER_HOME": str(tmp_path), "TWIN_HOME": str(tmp_path / "home")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    result = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-m", "twin_assets.definitions"],
                            env=environment, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "All code locations passed validation" in result.stderr + result.stdout


@pytest.mark.parametrize("dockerfile", sorted((DEPLOY / "docker").glob("*.Dockerfile")), ids=lambda p: p.name)
def test_each_dockerfile_passes_hadolint(dockerfile):
    result = subprocess.run([str(BIN / "hadolint"), "--config", str(ROOT / ".hadolint.yaml"), "--no-color",
                             str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for copied in ("twin_assets", "twin_resources", "twin_serving", "pyproject.toml"):
        assert f"COPY {copied}" in dockerfile.read_text()
    assert "USER 10001" in dockerfile.read_text()  # never root in a pod


def _workflow(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def test_the_workflows_pass_their_schema_and_ci_runs_the_readmes_test_command():
    result = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                             *map(str, sorted((ROOT / ".github" / "workflows").glob("*.yml")))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = _workflow("ci.yml")["jobs"]["test"]["steps"]
    assert any(step.get("run") == ".ci/run" for step in steps)
    assert "make test" in (ROOT / ".ci" / "run").read_text() and "make test" in (ROOT / "README.md").read_text()
    release = _workflow("release.yml")
    assert release[True]["push"]["tags"] == ["v*"]  # YAML reads the key `on` as True
    dockerfiles = {m["dockerfile"] for m in release["jobs"]["images"]["strategy"]["matrix"]["include"]}
    assert dockerfiles == {str(p.relative_to(ROOT)) for p in (DEPLOY / "docker").glob("*.Dockerfile")}


def test_a_job_runs_against_an_instance_stored_in_postgresql_with_compute_logs_in_s3(
        postgres, s3_endpoint, tmp_path, monkeypatch, warehouse, author, embedder):
    for name, value in {**postgres, **S3_CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint,
                        "DAGSTER_LOGS_BUCKET": "twin-logs"}.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster").mkdir()
    shutil.copy(DEPLOY / "dagster-postgres.yaml", tmp_path / "dagster" / "dagster.yaml")
    from tests.fixtures.chain import ARTICLES

    for path in ARTICLES[:3]:
        from tests.test_features import article, read_article

        warehouse.upsert_document(article(author, path.stem, *read_article(path)))
    store = VectorStore(home=str(warehouse.home))
    defs = build_definitions({"warehouse": warehouse, "vector_store": store, "embedder": embedder,
                              "model_registry": ModelRegistry(home=store.home), "http": None, "llm": LLM(),
                              "progress": ProgressReporter(), "pipes_client": dg.PipesSubprocessClient(),
                              "judge": Judge()}, gpu=False)
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
        instance.add_dynamic_partitions("authors", [author.key])
        result = defs.resolve_job_def("features_job").execute_in_process(instance=instance, partition_key=author.key)
        assert result.success
        run_id = result.run_id
    # a second instance (another pod) reads the run and its materializations from the database itself
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as other:
        assert other.get_run_by_id(run_id).is_success
        assert other.get_latest_materialization_event(dg.AssetKey("embedded_chunks")) is not None
    with psycopg2.connect(host="127.0.0.1", port=postgres["DAGSTER_PG_PORT"], user="twin", dbname="postgres") as db:
        with db.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,))
            assert cursor.fetchone()[0] > 10
    logs = s3_client(s3_endpoint).list_objects_v2(Bucket="twin-logs", Prefix="dagster/compute-logs/")
    assert any(run_id in item["Key"] and item["Key"].endswith(".err") for item in logs.get("Contents", []))
