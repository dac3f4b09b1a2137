"""The base model: a configured one (hub id or local directory) registered as it is, or a tiny Llama trained
here from the authors' cleaned documents."""

import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qdrant_client import QdrantClient

from twin_assets.models.tiny_llama import TinyLlamaSpec, train_tiny_llama
from twin_resources.feature_store import cleaned_collection, every_category
from twin_resources.model_registry import ModelVersion, Registry, texts_hash


@dataclass
class BaseModelOutcome:
    entry: ModelVersion
    reused: bool
    losses: list[tuple[int, float]] = field(default_factory=list)


def cleaned_texts(client: QdrantClient, held_out: frozenset[str] = frozenset()) -> list[str]:
    """Every author's cleaned documents but those `held_out` (test-side), in a stable order (so the same
    text gives the same recipe)."""
    return [r.payload["content"] for r in every_category(client, cleaned_collection, ["id", "content"])
            if r.payload["id"] not in held_out]


def resolve_model_directory(model: str) -> Path:
    """A local directory as it is; a hub id through the hub's own download (cached as usual)."""
    candidate = Path(model).expanduser()
    if candidate.exists():
        if not (candidate / "config.json").is_file():
            raise ValueError(f"base model directory {candidate} has no config.json: not a transformers model")
        return candidate
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt",
                                                             "*.jinja", "*.py"]))
    except Exception as error:  # offline, unknown id, gated model: say which
        raise ValueError(f"cannot get base model {model!r} from the hub: {error}") from None


def register_configured_base(registry: Registry, model: str) -> BaseModelOutcome:
    """Register a configured model's files (hard links where possible) after transformers has read them."""
    from transformers import AutoConfig, AutoTokenizer

    directory = resolve_model_directory(model)
    try:
        config = AutoConfig.from_pretrained(directory)
        AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as error:
        raise ValueError(f"transformers cannot load base model {model!r}: {error}") from None
    with registry.staging() as staged:
        _link_tree(directory, staged)
        entry = registry.register(staged, name=model.rstrip("/").split("/")[-1], kind="base",
                                  format="transformers", recipe=f"configured:{model}",
                                  metadata={"source": model, "architecture": config.architectures or []})
    return BaseModelOutcome(entry=entry, reused=False)


def _link_tree(source: Path, target: Path) -> None:
    for path in source.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path.resolve(), destination)
            except OSError:  # another filesystem
                shutil.copy2(path, destination)


def build_tiny_base(registry: Registry, texts: list[str], spec: TinyLlamaSpec,
                    on_step: Callable[[int, float], None] = lambda step, loss: None) -> BaseModelOutcome:
    """Train (or reuse, when the same text and settings trained one before) the from-scratch base model."""
    recipe = spec.recipe(texts_hash(texts))
    existing = registry.find(recipe=recipe, kind="base")
    if existing is not None:
        return BaseModelOutcome(entry=existing, reused=True, losses=[tuple(p) for p in existing.metadata["losses"]])
    with registry.staging() as staged:
        losses = train_tiny_llama(texts, spec, staged, on_step)
        parameters = _parameter_count(staged)
        entry = registry.register(staged, name="tiny-llama", kind="base", format="transformers", recipe=recipe,
                                  metadata={"source": "trained from scratch", "spec": spec.model_dump(),
                                            "documents": len(texts), "parameters": parameters,
                                            "losses": losses})
    return BaseModelOutcome(entry=entry, reused=False, losses=losses)


def _parameter_count(directory: Path) -> int:
    from safetensors import safe_open

    with safe_open(directory / "model.safetensors", framework="np") as weights:
        return sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys())
