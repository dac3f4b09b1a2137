"""Exports of a registered model: GGUF files through llama.cpp, EXL2 through exllamav2 (CUDA only)."""

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from twin_assets.models.gguf_export import (
    AGREEMENT_PROMPTS,
    QUANTIZATIONS,
    Agreement,
    gguf_agreement,
    quantize,
    reference_logits,
)
from twin_assets.models.llama_cpp_converter import ExportError, convert_to_gguf
from twin_resources.model_registry import ModelVersion, Registry, recipe_hash

# Bumped when what an export records changes, so older exports are made again once.
GGUF_RECIPE_VERSION = "3"
EXL2_ROWS = 2048  # exllamav2's calibration row length


class GgufConfig(dg.Config):
    quantizations: list[str] = Field(default=list(QUANTIZATIONS), description="Any of f16, q8_0, q4_k_m.")
    # KL divergence of each file's next-token distribution from the transformers model's, mean over the
    # prompts (llama.cpp's own quantization measure). Logit differences grow with how confident a model
    # is, so they are reported but not the gate.
    max_mean_kl_divergence: dict[str, float] = {"f16": 0.001, "q8_0": 0.01, "q4_k_m": 0.1}
    min_top1_agreement: dict[str, float] = {"f16": 1.0, "q8_0": 0.9, "q4_k_m": 0.8}


class Exl2Config(dg.Config):
    bits_per_weight: float = 4.0
    head_bits: int = 6


@dataclass
class GgufExport:
    entries: list[ModelVersion]
    agreements: list[Agreement]


def export_gguf(registry: Registry, source: ModelVersion, config: GgufConfig,
                log: Callable[[str], None] = print) -> GgufExport:
    """GGUF files of `source` in each quantization, registered only once all are built and measured.

    A version made before from the same source with the same llama.cpp is reused, with its measurement.
    """
    unknown = sorted(set(config.quantizations) - set(QUANTIZATIONS))
    if unknown:
        raise ExportError(f"unknown quantization {', '.join(unknown)}: choose from {', '.join(QUANTIZATIONS)}")
    llama_version = importlib.metadata.version("llama-cpp-python")
    recipes = {q: recipe_hash("gguf", GGUF_RECIPE_VERSION, source.version, q, llama_version) for q in config.quantizations}
    existing = {q: registry.find(recipe=r, kind="gguf") for q, r in recipes.items()}
    if all(existing.values()):
        log(f"GGUF files of {source.short} exist already: reusing them")
        entries = [existing[q] for q in config.quantizations]
        return GgufExport(entries, [Agreement(**e.metadata["agreement"]) for e in entries])
    with tempfile.TemporaryDirectory(dir=registry.root / ".staging") as scratch:
        scratch = Path(scratch)
        log(f"converting {source.short} to GGUF f16 with llama.cpp's converter")
        f16 = convert_to_gguf(source.path, scratch / "f16" / f"{source.name}-f16.gguf", "f16")
        files = {"f16": f16}
        for quantization in config.quantizations:
            if quantization != "f16":
                log(f"quantizing to {quantization}")
                files[quantization] = quantize(f16, scratch / quantization / f"{source.name}-{quantization}.gguf",
                                               quantization)
        log("comparing next-token logits with the transformers model")
        ids, reference = reference_logits(source.path)
        agreements = [gguf_agreement(files[q], q, AGREEMENT_PROMPTS, ids, reference) for q in config.quantizations]
        entries = [registry.register(files[q].parent, name=f"{source.name}-{q}", kind="gguf", format="gguf",
                                     parents=[source.version], recipe=recipes[q],
                                     metadata={"quantization": q, "llama_cpp_python": llama_version,
                                               "agreement": asdict(a)})
                   for q, a in zip(config.quantizations, agreements)]
    return GgufExport(entries, agreements)


@dataclass
class Exl2Outcome:
    entry: ModelVersion | None = None
    skipped: str = ""


def exl2_unavailable_reason() -> str:
    """Why EXL2 cannot be built here, or "" when it can."""
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device: exllamav2 quantizes on a GPU (its import builds a CUDA extension)"
    if importlib.util.find_spec("exllamav2") is None:
        return "exllamav2 is not installed: pip install -e '.[gpu]'"
    return ""


def calibration_length(model_dir: Path) -> int:
    """Calibration rows no longer than the model's positions: exllamav2 cuts its 2,048-token rows to the
    context only for models without RoPE, and a RoPE model fed longer rows measures NaN (seen on an H200)."""
    positions = json.loads((model_dir / "config.json").read_text()).get("max_position_embeddings") or EXL2_ROWS
    return min(EXL2_ROWS, positions)


def export_exl2(registry: Registry, source: ModelVersion, config: Exl2Config) -> Exl2Outcome:
    reason = exl2_unavailable_reason()
    if reason:
        return Exl2Outcome(skipped=reason)
    recipe = recipe_hash("exl2", source.version, str(config.bits_per_weight), str(config.head_bits))
    existing = registry.find(recipe=recipe, kind="exl2")
    if existing is not None:
        return Exl2Outcome(entry=existing)
    with registry.staging() as staged, tempfile.TemporaryDirectory() as work:
        length = str(calibration_length(source.path))
        command = [sys.executable, "-m", "exllamav2.conversion.convert_exl2", "-i", str(source.path), "-o", work,
                   "-cf", str(staged), "-b", str(config.bits_per_weight), "-hb", str(config.head_bits),
                   "-l", length, "-ml", length]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            raise ExportError(f"exllamav2 conversion failed: {result.stderr.strip()[-500:]}")
        entry = registry.register(staged, name=f"{source.name}-exl2-{config.bits_per_weight:g}bpw", kind="exl2",
                                  format="exl2", parents=[source.version], recipe=recipe,
                                  metadata={"bits_per_weight": config.bits_per_weight})
    return Exl2Outcome(entry=entry)
