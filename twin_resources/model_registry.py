"""The model registry: every model artifact as an immutable version (a content hash of its files) with its
lineage, and a promoted version per channel (each author, and `default`) for serving.

Layout under `root` (TWIN_HOME/models/registry by default):
    versions/<version>/files/...      the artifact (a model directory or one GGUF file)
    versions/<version>/manifest.json  written last: a version without one is incomplete and never listed
    promotions/<channel>.json         each channel's promotion history, newest last (written atomically):
                                      `default`, and an author's key for a twin of their own
    assets/<asset>/<partition>.json   the version a model asset last produced, for its downstream assets
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
from pydantic import PrivateAttr

from twin_resources.domain.models import DEFAULT_CHANNEL, ModelVersion, Promotion, RegistryError
from twin_resources.settings import twin_home

MANIFEST = "manifest.json"
LEGACY_PROMOTIONS = "promotions.json"


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

    # promotion: one history per channel, an author's key or "default"

    def _history_file(self, channel: str) -> Path:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", channel):
            raise RegistryError(f"not a promotion channel: {channel!r} (an author's key, or {DEFAULT_CHANNEL!r})")
        return self.root / "promotions" / f"{channel}.json"

    def channels(self) -> list[str]:
        """Every channel with a promotion: `default` first, then authors' keys."""
        found = {p.stem for p in (self.root / "promotions").glob("*.json")}
        if (self.root / LEGACY_PROMOTIONS).is_file():
            found.add(DEFAULT_CHANNEL)
        return sorted(found, key=lambda c: (c != DEFAULT_CHANNEL, c))

    def promotions(self, channel: str = DEFAULT_CHANNEL) -> list[Promotion]:
        """The channel's promotion history, oldest first."""
        path = self._history_file(channel)
        if not path.is_file() and channel == DEFAULT_CHANNEL:
            path = self.root / LEGACY_PROMOTIONS  # one channel only, before authors had their own
        if not path.is_file():
            return []
        return [Promotion.model_validate({**p, "channel": channel}) for p in json.loads(path.read_text())]

    def promoted(self, channel: str = DEFAULT_CHANNEL) -> ModelVersion | None:
        history = self.promotions(channel)
        return self.get(history[-1].version) if history else None

    def promoted_versions(self) -> dict[str, str]:
        """The version promoted in each channel."""
        return {channel: history[-1].version for channel in self.channels() if (history := self.promotions(channel))}

    def serving_version(self, channel: str | None) -> str | None:
        """What a request about `channel`'s author is answered with: their own promotion, else `default`."""
        promoted = self.promoted_versions()
        return promoted.get(channel or DEFAULT_CHANNEL) or promoted.get(DEFAULT_CHANNEL)

    def annotate(self, version: str, metadata: dict) -> ModelVersion:
        """Add `metadata` to a version's manifest (an evaluation's verdict, say)."""
        entry = self.get(version)
        with self._lock:
            return self._remember(entry, entry.recipe, metadata)

    def promote(self, version: str, reason: str, channel: str = DEFAULT_CHANNEL) -> Promotion:
        """Make `version` the one served in `channel`; only a complete version that did not fail its
        evaluation gate can be promoted."""
        entry = self.get(version)  # raises for unknown, incomplete or corrupt versions
        if entry.metadata.get("gate") == "failed":
            raise RegistryError(f"model version {entry.short} failed its evaluation gate and is never served: "
                                f"{entry.metadata.get('gate_reason', 'see its eval_report')}")
        path = self._history_file(channel)
        with self._lock:
            history = self.promotions(channel)
            promotion = Promotion(version=entry.version, at=datetime.now(UTC), reason=reason, channel=channel,
                                  previous=history[-1].version if history else None)
            path.parent.mkdir(exist_ok=True)
            _write_json_atomically(path, [p.model_dump(mode="json", exclude={"channel"})
                                          for p in history + [promotion]])
        return promotion

    def rollback(self, reason: str = "rollback", channel: str = DEFAULT_CHANNEL) -> Promotion:
        """Promote again the version that was promoted in `channel` before the current one."""
        history = self.promotions(channel)
        if not history or history[-1].previous is None:
            raise RegistryError(f"nothing to roll back to in {channel!r}: fewer than two promotions recorded")
        return self.promote(history[-1].previous, reason, channel)

    # a candidate that passed its gate, waiting for a person's approval (TWIN_PROMOTION=manual)

    def _candidate_file(self, channel: str) -> Path:
        return self.root / "candidates" / self._history_file(channel).name

    def propose(self, version: str, reason: str, channel: str) -> None:
        entry = self.get(version)
        path = self._candidate_file(channel)
        path.parent.mkdir(exist_ok=True)
        _write_json_atomically(path, {"version": entry.version, "reason": reason, "at": datetime.now(UTC).isoformat()})

    def candidate(self, channel: str) -> dict | None:
        """The version waiting for approval in `channel` (version, reason, at), if any."""
        path = self._candidate_file(channel)
        return json.loads(path.read_text()) if path.is_file() else None

    def approve(self, version: str, channel: str) -> Promotion:
        """Promote the candidate waiting in `channel`, which `version` must name."""
        waiting = self.candidate(channel)
        entry = self.get(version)
        if waiting is None or waiting["version"] != entry.version:
            raise RegistryError(f"{entry.short} is not waiting for approval in {channel!r}"
                                + (f" ({waiting['version'][:12]} is)" if waiting else ": no candidate is"))
        promotion = self.promote(entry.version, f"approved: {waiting['reason']}", channel)
        self._candidate_file(channel).unlink(missing_ok=True)
        return promotion

    # which version each model asset last produced: what its downstream assets receive

    def _pointer(self, asset: str, partition: str | None) -> Path:
        return self.root / "assets" / asset / f"{partition or '__all__'}.json"

    def record_output(self, asset: str, partition: str | None, version: str) -> None:
        path = self._pointer(asset, partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json_atomically(path, {"version": version})

    def output_of(self, asset: str, partition: str | None) -> ModelVersion:
        path = self._pointer(asset, partition)
        if not path.is_file():
            raise RegistryError(f"{asset} has not been materialized{f' for {partition}' if partition else ''} "
                                "in this registry yet")
        return self.get(json.loads(path.read_text())["version"])


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
