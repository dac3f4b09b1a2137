"""The model registry: every model artifact as an immutable version (a content hash of its files) with its
lineage, and a promoted version per channel (each author, and `default`) for serving.

Layout under `root` (TWIN_HOME/models/registry by default), and under an S3 prefix when TWIN_REGISTRY_URL
names one (then `root` holds only the versions this process has used):
    versions/<version>/files/...      the artifact (a model directory or one GGUF file)
    versions/<version>/manifest.json  written last: a version without one is incomplete and never listed
    promotions/<channel>.json         each channel's promotion history, newest last (written atomically):
                                      `default`, and an author's key for a twin of their own
    assets/<asset>/<partition>.json   the version a model asset last produced, for its downstream assets
    .staging/                         artifacts being built; a crash leaves them here, never in versions/
"""

import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from filelock import FileLock
from pydantic import Field, PrivateAttr

from twin_resources.domain.models import DEFAULT_CHANNEL, ModelVersion, Promotion, RegistryError
from twin_resources.registry_storage import Conflict, LocalStorage, RegistryStorage, S3Storage
from twin_resources.settings import load_settings

MANIFEST = "manifest.json"
LEGACY_PROMOTIONS = "promotions.json"
UPDATE_ATTEMPTS = 20


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


class Registry:
    """The registry: records and files in `storage` (by default the local directory `root`), with `root` as
    the local copy that models are loaded from. Safe across processes and pods: records change only
    through conditional writes, and a version's manifest is written after its files."""

    def __init__(self, root: Path, storage: RegistryStorage | None = None):
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        (self.root / ".staging").mkdir(exist_ok=True)
        self._lock = FileLock(str(self.root / ".lock"))  # the local copy's: moves into versions/
        self.storage = storage or LocalStorage(self.root, self._lock)

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """An empty directory to build an artifact in; removed afterwards, whatever happens."""
        directory = Path(tempfile.mkdtemp(dir=self.root / ".staging"))
        try:
            yield directory
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _update(self, key: str, change: Callable[[object | None], object]):
        """Apply `change` to the record at `key` as it is now; another writer in between means reading and
        applying again, never overwriting what it wrote."""
        for _ in range(UPDATE_ATTEMPTS):
            record = self.storage.read(key)
            value = change(record.value if record else None)
            try:
                self.storage.write(key, value, if_tag=record.tag if record else None)
                return value
            except Conflict:
                continue
        raise RegistryError(f"{key}: {UPDATE_ATTEMPTS} concurrent writers in a row; try again")

    def register(self, staged: Path, *, name: str, kind: str, format: str, parents: list[str] = (),
                 dataset: str | None = None, recipe: str = "", metadata: dict | None = None) -> ModelVersion:
        """Move the files in `staged` into a new version; the same files again give the same version
        (its manifest then learns the new recipe and metadata, so `find` reuses it next time)."""
        version, sizes = content_hash(staged)
        target = self.versions_dir / version
        with self._lock:
            if self.storage.read(_manifest_key(version)) is not None:
                return self._remember(version, recipe, metadata or {})
            shutil.rmtree(target, ignore_errors=True)  # an earlier crash between move and manifest
            target.mkdir()
            shutil.move(str(staged), str(target / "files"))
            staged.mkdir()  # the staging context removes it
            self.storage.publish(f"versions/{version}/files", target / "files")
            entry = ModelVersion(version=version, name=name, kind=kind, format=format, parents=list(parents),
                                 dataset=dataset, recipe=recipe, files=sizes, metadata=metadata or {},
                                 created_at=datetime.now(UTC))
            try:
                self.storage.write(_manifest_key(version), _manifest(entry), if_tag=None)
            except Conflict:  # another pod registered the same files a moment ago
                return self._remember(version, recipe, metadata or {})
        return self.get(version)

    def _remember(self, version: str, recipe: str, metadata: dict) -> ModelVersion:
        def learn(manifest):
            entry = ModelVersion.model_validate(manifest)
            if recipe not in (entry.recipe, *entry.also_made_by):
                entry.also_made_by.append(recipe)
            entry.metadata.update(metadata)
            return _manifest(entry)

        entry = self.get(version)
        known = recipe in (entry.recipe, *entry.also_made_by)
        if not (known and all(entry.metadata.get(k) == v for k, v in metadata.items())):
            self._update(_manifest_key(version), learn)
        return self.get(version)

    def _version_ids(self, prefix: str = "") -> list[str]:
        return [key.split("/")[1] for key in self.storage.keys(f"versions/{prefix}") if key.endswith(f"/{MANIFEST}")
                and key.count("/") == 2]

    def get(self, version: str) -> ModelVersion:
        """A version by its hash or an unambiguous prefix of it, its files in the local copy."""
        if not version or not re.fullmatch(r"[0-9a-f]+", version):
            raise RegistryError(f"not a model version: {version!r} (a hash, or its first characters)")
        matches = self._version_ids(version)
        if not matches:
            raise RegistryError(f"no model version {version!r} in {self.location} (see: twin models list)")
        if len(matches) > 1:
            raise RegistryError(f"model version prefix {version!r} is ambiguous: "
                                + ", ".join(sorted(m[:12] for m in matches)))
        return self._with_files(self._read(matches[0]))

    @property
    def location(self) -> str:
        return getattr(self.storage, "url", str(self.root))

    def _read(self, version: str) -> ModelVersion:
        try:
            record = self.storage.read(_manifest_key(version))
            entry = ModelVersion.model_validate(record.value if record else None)
        except (OSError, ValueError) as error:
            raise RegistryError(f"model version {version[:12]} has an unreadable manifest: {error}") from None
        entry.path = self.versions_dir / version / "files"
        return entry

    def _missing(self, entry: ModelVersion) -> list[str]:
        return [n for n, size in entry.files.items()
                if not (entry.path / n).is_file() or (entry.path / n).stat().st_size != size]

    def _with_files(self, entry: ModelVersion) -> ModelVersion:
        """`entry` with its files in the local copy: fetched from the store on first use."""
        if self._missing(entry) and self.storage.remote:
            with self._lock:
                if self._missing(entry):
                    shutil.rmtree(entry.path, ignore_errors=True)
                    self.storage.fetch(f"versions/{entry.version}/files", entry.files, entry.path)
        if missing := self._missing(entry):
            raise RegistryError(f"model version {entry.short} is incomplete: {', '.join(missing[:3])} "
                                "missing or truncated")
        return entry

    def versions(self) -> list[ModelVersion]:
        """Every complete version, oldest first (a remote store's are complete once listed: files go first)."""
        entries = []
        for version in self._version_ids():
            try:
                entry = self._read(version)
                entries.append(entry if self.storage.remote else self._with_files(entry))
            except RegistryError:
                continue  # shown as absent; `get` names the problem
        return sorted(entries, key=lambda e: e.created_at)

    def find(self, *, recipe: str, kind: str | None = None) -> ModelVersion | None:
        """The newest version made by `recipe` (the same inputs and settings), if any."""
        found = [e for e in self.versions()
                 if recipe in (e.recipe, *e.also_made_by) and (kind is None or e.kind == kind)]
        return self.get(found[-1].version) if found else None

    # promotion: one history per channel, an author's key or "default"

    def _history_key(self, channel: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", channel):
            raise RegistryError(f"not a promotion channel: {channel!r} (an author's key, or {DEFAULT_CHANNEL!r})")
        return f"promotions/{channel}.json"

    def channels(self) -> list[str]:
        """Every channel with a promotion: `default` first, then authors' keys."""
        found = {key.removeprefix("promotions/").removesuffix(".json") for key in self.storage.keys("promotions/")
                 if key.endswith(".json") and key.count("/") == 1}
        if not self.storage.remote and self.storage.read(LEGACY_PROMOTIONS) is not None:
            found.add(DEFAULT_CHANNEL)
        return sorted(found, key=lambda c: (c != DEFAULT_CHANNEL, c))

    def promotions(self, channel: str = DEFAULT_CHANNEL) -> list[Promotion]:
        """The channel's promotion history, oldest first."""
        record = self.storage.read(self._history_key(channel))
        if record is None and channel == DEFAULT_CHANNEL:
            record = self.storage.read(LEGACY_PROMOTIONS)  # one channel only, before authors had their own
        return [Promotion.model_validate({**p, "channel": channel}) for p in (record.value if record else [])]

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
        return self._remember(entry.version, entry.recipe, metadata)

    def promote(self, version: str, reason: str, channel: str = DEFAULT_CHANNEL) -> Promotion:
        """Make `version` the one served in `channel`; only a complete version that did not fail its
        evaluation gate can be promoted. One conditional write: concurrent promotions all land, in order."""
        entry = self.get(version)  # raises for unknown, incomplete or corrupt versions
        if entry.metadata.get("gate") == "failed":
            raise RegistryError(f"model version {entry.short} failed its evaluation gate and is never served: "
                                f"{entry.metadata.get('gate_reason', 'see its eval_report')}")
        key = self._history_key(channel)
        made: list[Promotion] = []

        def append(stored):
            if stored is None and channel == DEFAULT_CHANNEL and (legacy := self.storage.read(LEGACY_PROMOTIONS)):
                stored = legacy.value
            history = stored or []
            made[:] = [Promotion(version=entry.version, at=datetime.now(UTC), reason=reason, channel=channel,
                                 previous=history[-1]["version"] if history else None)]
            return history + [made[0].model_dump(mode="json", exclude={"channel"})]

        self._update(key, append)
        return made[0]

    def rollback(self, reason: str = "rollback", channel: str = DEFAULT_CHANNEL) -> Promotion:
        """Promote again the version that was promoted in `channel` before the current one."""
        history = self.promotions(channel)
        if not history or history[-1].previous is None:
            raise RegistryError(f"nothing to roll back to in {channel!r}: fewer than two promotions recorded")
        return self.promote(history[-1].previous, reason, channel)

    # a candidate that passed its gate, waiting for a person's approval (TWIN_PROMOTION=manual)

    def _candidate_key(self, channel: str) -> str:
        return "candidates/" + self._history_key(channel).removeprefix("promotions/")

    def propose(self, version: str, reason: str, channel: str) -> None:
        entry = self.get(version)
        self.storage.write(self._candidate_key(channel),
                           {"version": entry.version, "reason": reason, "at": datetime.now(UTC).isoformat()})

    def candidate(self, channel: str) -> dict | None:
        """The version waiting for approval in `channel` (version, reason, at), if any."""
        record = self.storage.read(self._candidate_key(channel))
        return record.value if record else None

    def approve(self, version: str, channel: str) -> Promotion:
        """Promote the candidate waiting in `channel`, which `version` must name."""
        waiting = self.candidate(channel)
        entry = self.get(version)
        if waiting is None or waiting["version"] != entry.version:
            raise RegistryError(f"{entry.short} is not waiting for approval in {channel!r}"
                                + (f" ({waiting['version'][:12]} is)" if waiting else ": no candidate is"))
        promotion = self.promote(entry.version, f"approved: {waiting['reason']}", channel)
        self.storage.delete(self._candidate_key(channel))
        return promotion

    # which version each model asset last produced: what its downstream assets receive

    def _pointer_key(self, asset: str, partition: str | None) -> str:
        return f"assets/{asset}/{partition or '__all__'}.json"

    def record_output(self, asset: str, partition: str | None, version: str) -> None:
        self.storage.write(self._pointer_key(asset, partition), {"version": version})

    def output_of(self, asset: str, partition: str | None) -> ModelVersion:
        record = self.storage.read(self._pointer_key(asset, partition))
        if record is None:
            raise RegistryError(f"{asset} has not been materialized{f' for {partition}' if partition else ''} "
                                "in this registry yet")
        return self.get(record.value["version"])


def _manifest_key(version: str) -> str:
    return f"versions/{version}/{MANIFEST}"


def _manifest(entry: ModelVersion) -> dict:
    return entry.model_dump(mode="json", exclude={"path"})


def default_registry(home: str = "", root: str = "", url: str | None = None) -> Registry:
    """`root` when given, else `<home or TWIN_HOME>/models/registry`; with `url` (default: TWIN_REGISTRY_URL),
    the registry is in that bucket and `root` is its local copy."""
    settings = load_settings()
    url = settings.registry_url if url is None else url
    local = Path(root) if root else Path(home or settings.twin_home) / "models" / ("registry-cache" if url else "registry")
    return Registry(local, S3Storage.from_url(url) if url else None)


class ModelRegistry(dg.ConfigurableResource):
    """Where model versions live: `TWIN_HOME/models/registry` unless `root` is given, or an S3 bucket (`url`)
    with a local copy under TWIN_HOME."""

    home: str = ""
    root: str = ""
    url: str = Field("", description="s3://bucket/prefix: the registry every pod shares; empty: local")
    _registry: Registry | None = PrivateAttr(default=None)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = default_registry(self.home, self.root, self.url)
        return self._registry
