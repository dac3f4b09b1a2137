"""The model registry: every model artifact as an immutable version (a content hash of its files) with its
lineage, and one promoted version for serving.

Layout under `root` (TWIN_HOME/models/registry by default):
    versions/<version>/files/...      the artifact (a model directory or one GGUF file)
    versions/<version>/manifest.json  written last: a version without one is incomplete and never listed
    promotions.json                   the promotion history, newest last (written atomically)
    .staging/                         artifacts being built; a crash leaves them here, never in versions/
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from filelock import FileLock
from pydantic import BaseModel, Field, PrivateAttr

from twin_resources.settings import twin_home

MANIFEST = "manifest.json"


class RegistryError(RuntimeError):
    """A registry operation that cannot be done: an unknown or incomplete version, nothing to roll back to."""


class ModelVersion(BaseModel):
    version: str
    name: str
    kind: str  # base, sft_adapter, dpo_adapter, merged, gguf, exl2
    format: str  # transformers, peft, gguf, exl2
    created_at: datetime
    parents: list[str] = Field(default_factory=list)  # versions this one was made from
    dataset: str | None = None  # the dataset version it was trained on
    recipe: str = ""  # hash of everything that produced it, so a re-run can reuse it
    also_made_by: list[str] = Field(default_factory=list)  # later recipes that produced the same files
    files: dict[str, int] = Field(default_factory=dict)  # relative path -> bytes
    metadata: dict = Field(default_factory=dict)
    path: Path = Path()  # where its files are (set when read)

    @property
    def short(self) -> str:
        return self.version[:12]

    def file(self, suffix: str = "") -> Path:
        """The first file ending in `suffix` (a GGUF file); the directory itself when `suffix` is empty."""
        if not suffix:
            return self.path
        for name in sorted(self.files):
            if name.endswith(suffix):
                return self.path / name
        raise RegistryError(f"model {self.short} has no *{suffix} file")


class Promotion(BaseModel):
    version: str
    at: datetime
    reason: str
    previous: str | None = None


def recipe_hash(*parts: str) -> str:
    """Names what produced a model (kind, inputs, settings), so a re-run can find and reuse it."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:16]


def texts_hash(texts) -> str:
    """One hash for a sequence of texts (a training corpus), order included."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()[:16]


def content_hash(directory: Path) -> tuple[str, dict[str, int]]:
    """sha256 over every file's relative path and bytes, and the files' sizes."""
    digest, sizes = hashlib.sha256(), {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        digest.update(relative.encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        sizes[relative] = path.stat().st_size
    if not sizes:
        raise RegistryError(f"nothing to register: {directory} holds no files")
    return digest.hexdigest(), sizes


def _write_json_atomically(path: Path, payload) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(payload, handle, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


class Registry:
    """The registry at `root`. Safe across processes: writes go through a file lock and atomic renames."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        (self.root / ".staging").mkdir(exist_ok=True)
        self._lock = FileLock(str(self.root / ".lock"))

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """An empty directory to build an artifact in; removed afterwards, whatever happens."""
        directory = Path(tempfile.mkdtemp(dir=self.root / ".staging"))
        try:
            yield directory
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def register(self, staged: Path, *, name: str, kind: str, format: str, parents: list[str] = (),
                 dataset: str | None = None, recipe: str = "", metadata: dict | None = None) -> ModelVersion:
        """Move the files in `staged` into a new version; the same files again give the same version
        (its manifest then learns the new recipe and metadata, so `find` reuses it next time)."""
        version, sizes = content_hash(staged)
        target = self.versions_dir / version
        with self._lock:
            if (target / MANIFEST).is_file():
                return self._remember(self.get(version), recipe, metadata or {})
            shutil.rmtree(target, ignore_errors=True)  # an earlier crash between move and manifest
            target.mkdir()
            shutil.move(str(staged), str(target / "files"))
            staged.mkdir()  # the staging context removes it
            entry = ModelVersion(version=version, name=name, kind=kind, format=format, parents=list(parents),
                                 dataset=dataset, recipe=recipe, files=sizes, metadata=metadata or {},
                                 created_at=datetime.now(UTC))
            _write_json_atomically(target / MANIFEST, entry.model_dump(mode="json", exclude={"path"}))
        return self.get(version)

    def _remember(self, entry: ModelVersion, recipe: str, metadata: dict) -> ModelVersion:
        known = recipe in (entry.recipe, *entry.also_made_by)
        if known and all(entry.metadata.get(k) == v for k, v in metadata.items()):
            return entry
        if not known:
            entry.also_made_by.append(recipe)
        entry.metadata.update(metadata)
        _write_json_atomically(entry.path.parent / MANIFEST, entry.model_dump(mode="json", exclude={"path"}))
        return entry

    def get(self, version: str) -> ModelVersion:
        """A version by its hash or an unambiguous prefix of it."""
        if not version or not re.fullmatch(r"[0-9a-f]+", version):
            raise RegistryError(f"not a model version: {version!r} (a hash, or its first characters)")
        matches = [d for d in self.versions_dir.glob(f"{version}*") if (d / MANIFEST).is_file()]
        if not matches:
            raise RegistryError(f"no model version {version!r} in {self.root} (see: twin models list)")
        if len(matches) > 1:
            raise RegistryError(f"model version prefix {version!r} is ambiguous: "
                                + ", ".join(sorted(m.name[:12] for m in matches)))
        return self._read(matches[0])

    def _read(self, directory: Path) -> ModelVersion:
        try:
            entry = ModelVersion.model_validate_json((directory / MANIFEST).read_text())
        except (OSError, ValueError) as error:
            raise RegistryError(f"model version {directory.name[:12]} has an unreadable manifest: {error}") from None
        entry.path = directory / "files"
        missing = [n for n, size in entry.files.items()
                   if not (entry.path / n).is_file() or (entry.path / n).stat().st_size != size]
        if missing:
            raise RegistryError(f"model version {entry.short} is incomplete: {', '.join(missing[:3])} "
                                "missing or truncated")
        return entry

    def versions(self) -> list[ModelVersion]:
        """Every complete version, oldest first."""
        entries = []
        for directory in self.versions_dir.iterdir():
            if (directory / MANIFEST).is_file():
                try:
                    entries.append(self._read(directory))
                except RegistryError:
                    continue  # shown as absent; `get` names the problem
        return sorted(entries, key=lambda e: e.created_at)

    def find(self, *, recipe: str, kind: str | None = None) -> ModelVersion | None:
        """The newest version made by `recipe` (the same inputs and settings), if any."""
        found = [e for e in self.versions()
                 if recipe in (e.recipe, *e.also_made_by) and (kind is None or e.kind == kind)]
        return found[-1] if found else None

    def latest(self, kind: str) -> ModelVersion | None:
        found = [e for e in self.versions() if e.kind == kind]
        return found[-1] if found else None

    # promotion

    @property
    def _promotions_file(self) -> Path:
        return self.root / "promotions.json"

    def promotions(self) -> list[Promotion]:
        if not self._promotions_file.is_file():
            return []
        return [Promotion.model_validate(p) for p in json.loads(self._promotions_file.read_text())]

    def promoted(self) -> ModelVersion | None:
        history = self.promotions()
        return self.get(history[-1].version) if history else None

    def promote(self, version: str, reason: str) -> Promotion:
        """Make `version` the one served; only a complete version can be promoted."""
        entry = self.get(version)  # raises for unknown, incomplete or corrupt versions
        with self._lock:
            history = self.promotions()
            promotion = Promotion(version=entry.version, at=datetime.now(UTC), reason=reason,
                                  previous=history[-1].version if history else None)
            _write_json_atomically(self._promotions_file, [p.model_dump(mode="json") for p in history + [promotion]])
        return promotion

    def rollback(self, reason: str = "rollback") -> Promotion:
        """Promote again the version that was promoted before the current one."""
        history = self.promotions()
        if not history or history[-1].previous is None:
            raise RegistryError("nothing to roll back to: fewer than two promotions recorded")
        return self.promote(history[-1].previous, reason)


def default_registry(home: str = "", root: str = "") -> Registry:
    """`root` when given, else `<home or TWIN_HOME>/models/registry`."""
    return Registry(Path(root) if root else Path(home or twin_home()) / "models" / "registry")


class ModelRegistry(dg.ConfigurableResource):
    """Where model versions live: `TWIN_HOME/models/registry` unless `root` is given."""

    home: str = ""
    root: str = ""
    _registry: Registry | None = PrivateAttr(default=None)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = default_registry(self.home, self.root)
        return self._registry
