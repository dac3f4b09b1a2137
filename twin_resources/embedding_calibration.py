"""`auto` picks the embedding backend and precision by measuring them on this machine, once.

Machines differ: the same benchmark found bf16 faster than int8 on one CPU and slower on another, so no
rule about CPU features picks well everywhere. On first use, a sample of prose (the demo corpus, cut into
chunk-sized paragraphs) is embedded by every backend and precision that runs here; each is timed, and its
vectors are compared with the model's own fp32 vectors (sentence-transformers, fp32). The fastest whose
mean cosine to fp32 is at least `QUALITY_FLOOR` wins. The choice and its figures are cached per machine
(CPU model and flags, core count, library versions) and per model, in the user's cache directory, so every
`TWIN_HOME` on the machine shares it.
"""

import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from twin_resources.embedding_models import ModelFiles
from twin_resources.settings import PROJECT_ROOT

CANDIDATES = (("fastembed", "fp32"), ("fastembed", "int8"), ("sentence-transformers", "fp32"),
              ("sentence-transformers", "bf16"))
REFERENCE = ("sentence-transformers", "fp32")
# Mean cosine to the fp32 vectors. Retrieval ranks by cosine differences of a few hundredths between the
# best passages, so a backend may move vectors by less than that: 0.99 keeps int8 (0.993 measured here and
# 0.99+ on the build machine) and would refuse a quantization that visibly reorders neighbours.
QUALITY_FLOOR = 0.99
SAMPLE_TEXTS = 160
ROUNDS = 3  # each backend timed this many times, interleaved; its best counts (a busy moment skews one round)
SAMPLE = PROJECT_ROOT / "twin_assets" / "demo" / "corpus"


@dataclass
class Calibration:
    backend: str
    precision: str
    reason: str
    figures: dict[str, dict] = field(default_factory=dict)  # "backend/precision" -> texts/s, mean cosine


def machine_key() -> str:
    """What makes a measurement of this machine's: CPU model and flags, cores, and the libraries that run."""
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        cpu = "\n".join(sorted({line for line in cpu.splitlines() if line.startswith(("model name", "flags"))}))
    except OSError:
        cpu = platform.processor()
    versions = []
    for package in ("torch", "onnxruntime", "fastembed", "sentence-transformers"):
        try:
            versions.append(f"{package}={version(package)}")
        except PackageNotFoundError:
            versions.append(f"{package}=none")
    text = "|".join([platform.machine(), cpu, str(os.cpu_count()), *versions])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_file(files: ModelFiles) -> Path:
    import platformdirs

    return (Path(platformdirs.user_cache_dir("llm-twin")) / "embedding-calibration"
            / f"{files.name}-{files.fingerprint()[:12]}-{machine_key()}.json")


def sample_texts(limit: int = SAMPLE_TEXTS) -> list[str]:
    """Chunk-sized paragraphs of real prose: the demo author's writing that ships with the project."""
    paragraphs = [p.strip() for path in sorted(SAMPLE.rglob("*.md")) for p in path.read_text().split("\n\n")
                  if len(p.strip()) > 80 and not p.startswith("---")] if SAMPLE.is_dir() else []
    return (paragraphs * (limit // max(len(paragraphs), 1) + 1))[:limit] if paragraphs else []


def timed(embed, texts: list[str]) -> tuple[np.ndarray, float]:
    """The vectors and texts per second."""
    started = time.perf_counter()
    vectors = embed(texts)
    return vectors, len(texts) / (time.perf_counter() - started)


def calibrate(make_embedder, texts: list[str], log=lambda message: None) -> Calibration:
    """The fastest backend and precision whose vectors keep a mean cosine of `QUALITY_FLOOR` to fp32.
    `make_embedder(backend, precision)` returns an embed function; one that cannot run here is skipped.
    Each is loaded and warmed once, then timed in `ROUNDS` interleaved rounds, its best round counting."""
    figures, runners = {}, {}
    for candidate in CANDIDATES:
        try:
            runners[candidate] = make_embedder(*candidate)
            runners[candidate](texts[:8])  # loads the model
        except Exception as error:  # noqa: BLE001 - a backend this machine cannot run is no candidate
            figures["/".join(candidate)] = {"error": str(error)[:200]}
            runners.pop(candidate, None)
    vectors, speeds = {}, {candidate: 0.0 for candidate in runners}
    for _ in range(ROUNDS):
        for candidate, embed in runners.items():
            vectors[candidate], speed = timed(embed, texts)
            speeds[candidate] = max(speeds[candidate], speed)
    reference = vectors[REFERENCE]
    passing = []
    for (backend, precision), speed in speeds.items():
        cosine = float(np.mean(np.sum(vectors[(backend, precision)] * reference, axis=1)))
        figures[f"{backend}/{precision}"] = {"texts_per_s": round(speed, 1), "mean_cosine_to_fp32": round(cosine, 5)}
        log(f"embedding calibration: {backend} {precision}: {speed:.1f} texts/s, cosine to fp32 {cosine:.4f}")
        if cosine >= QUALITY_FLOOR:
            passing.append((speed, backend, precision))
    speed, backend, precision = max(passing)
    return Calibration(backend, precision, f"fastest of {len(passing)} within cosine {QUALITY_FLOOR} of fp32 "
                                           f"({speed:.1f} texts/s on {len(texts)} texts)", figures)


def load_or_calibrate(files: ModelFiles, make_embedder, fallback: Calibration, log=print,
                      texts: list[str] | None = None) -> Calibration:
    """The cached choice for this machine and model, else a new calibration on `texts` (default: the sample)
    that is cached, else `fallback` when there is nothing to calibrate on."""
    path = cache_file(files)
    if path.is_file():
        try:
            return Calibration(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            pass  # a damaged cache is measured again
    texts = sample_texts() if texts is None else texts
    if not texts:
        return fallback
    log(f"calibrating the embedding backends on {len(texts)} texts (once for this machine and model)")
    choice = calibrate(make_embedder, texts, log)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(f".{os.getpid()}.tmp")
    staged.write_text(json.dumps(asdict(choice), indent=2))
    staged.replace(path)
    return choice
