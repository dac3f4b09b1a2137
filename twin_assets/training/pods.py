"""Where a training runs in a cluster: the step's own pod, given a GPU by its `dagster-k8s/config` tags
(with `k8s_job_executor`), or a pod of its own started through Dagster Pipes' `PipesK8sClient`
(`TWIN_TRAINER_LAUNCH=k8s`). Either pod mounts TWIN_HOME's volume where the step has it, so the start model,
the dataset and the staging directory are the same paths on both sides."""

import os

import dagster as dg
from dagster_k8s import PipesK8sClient

from twin_resources.settings import TwinSettings

GPU = "nvidia.com/gpu"
TRAINER_CONTAINER = "trainer"


def _node_selector(settings: TwinSettings) -> dict[str, str]:
    label, _, value = settings.gpu_node_selector.partition("=")
    return {label.strip(): value.strip()} if label.strip() else {}


def gpu_step_tags(settings: TwinSettings) -> dict:
    """Tags that give a training step's pod a GPU under `k8s_job_executor`; none when the trainer has a pod
    of its own (the step then only waits for it)."""
    if settings.trainer_launch == "k8s":
        return {}
    container = {"resources": {"limits": {GPU: "1"}}}
    if settings.trainer_image:  # CUDA's torch: the code location's image has CPU wheels
        container["image"] = settings.trainer_image
    pod_spec = {"node_selector": _node_selector(settings)} if settings.gpu_node_selector else {}
    return {"dagster-k8s/config": {"container_config": container,
                                   **({"pod_spec_config": pod_spec} if pod_spec else {})}}


def trainer_pod_spec(settings: TwinSettings) -> dict:
    """The trainer pod (camelCase, as Kubernetes writes it): one GPU, on a GPU node, with TWIN_HOME's volume."""
    home = str(settings.twin_home)
    container = {"name": TRAINER_CONTAINER, "image": settings.trainer_image,
                 "resources": {"limits": {GPU: "1"}}}
    spec: dict = {"restartPolicy": "Never", "containers": [container]}
    if settings.home_claim:
        container["volumeMounts"] = [{"name": "twin-home", "mountPath": home}]
        spec["volumes"] = [{"name": "twin-home", "persistentVolumeClaim": {"claimName": settings.home_claim}}]
    if settings.gpu_node_selector:
        spec["nodeSelector"] = _node_selector(settings)
    return spec


def pod_environment(env: dict[str, str]) -> dict[str, str]:
    """What a trainer pod is told: the settings it needs, not the step pod's whole environment."""
    wanted = ("TOKENIZERS_PARALLELISM", "HF_TOKEN", "HF_HOME", "TWIN_HOME")
    return {name: env[name] for name in wanted if env.get(name)}


def run_trainer(pipes: dg.PipesClient, context: dg.AssetExecutionContext, command: list[str], extras: dict,
                env: dict[str, str], settings: TwinSettings):
    """Run the trainer through `pipes`: a child process here, or a pod of its own for `PipesK8sClient`."""
    if isinstance(pipes, PipesK8sClient):
        module = command[command.index("-m") + 1]
        return pipes.run(context=context, image=settings.trainer_image, command=["python", "-m", module],
                         extras=extras, env=pod_environment({**os.environ, **env}),
                         base_pod_spec=trainer_pod_spec(settings))
    return pipes.run(context=context, command=command, extras=extras, env=env)
