"""The logical feature store: Qdrant, as a server (`QDRANT_URL`) or embedded on disk under TWIN_HOME.

Qdrant's embedded mode commits every point to sqlite with an fsync (about 3.5 ms a point on this disk)
and lets one process at a time open a store. So the embedded store is a published snapshot: a writer
copies it to memory-backed storage (/dev/shm), writes there at memory speed through the normal client,
and publishes the result atomically (one fsync per file, then a symlink swap). Readers open a private
copy. A run killed midway publishes nothing; readers never see half a write; a reader and a writer,
or a server and a pipeline run, never lock each other out. Writers take turns through a file lock.
"""

import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from filelock import FileLock
from pydantic import Field
from qdrant_client import QdrantClient, models

from twin_resources.settings import twin_home

KEEP_VERSIONS = 2  # the live one, and the one a slow reader may still be copying
WRITE_BATCH = 256
READ_PREFIX = "twin-qdrant-read-"  # then the reading process's pid: copies outlive a killed reader


class VectorStoreError(RuntimeError):
    """The vector store cannot be opened or written."""


def _fast_scratch() -> str | None:
    """A memory-backed folder where sqlite's fsync costs nothing, when the system has one."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _scratch_folder() -> Path:
    return Path(_fast_scratch() or tempfile.gettempdir())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_read_copies(pid: int | None = None) -> None:
    """Remove the private copies a reader process holds (this one by default): for exit paths that skip
    the readers' own cleanup, such as a worker ending on a signal."""
    for copy in _scratch_folder().glob(f"{READ_PREFIX}{pid or os.getpid()}-*"):
        shutil.rmtree(copy, ignore_errors=True)


def sweep_orphaned_read_copies() -> None:
    """Remove copies whose reader is gone (killed with -9, say): memory-backed storage is memory."""
    for copy in _scratch_folder().glob(f"{READ_PREFIX}*-*"):
        owner = copy.name.removeprefix(READ_PREFIX).split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(copy, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


class VectorStore(dg.ConfigurableResource):
    """Qdrant collections of cleaned documents and embedded chunks."""

    url: str = Field(default="", description="Qdrant server URL; empty for the embedded store under `home`")
    api_key: str = Field(default="", description="API key for a Qdrant server")
    home: str = Field(default_factory=lambda: str(twin_home()), description="where the embedded store lives")

    @property
    def embedded(self) -> bool:
        return not self.url

    @property
    def location(self) -> str:
        return self.url if self.url else str(self._root / "current")

    @property
    def _root(self) -> Path:
        return Path(self.home) / "qdrant"

    @contextmanager
    def read(self) -> Iterator[QdrantClient]:
        """A client for searching; on the embedded store, a private snapshot of what was last published."""
        if not self.embedded:
            yield self._server_client()
            return
        sweep_orphaned_read_copies()
        with self._private_copy(f"{READ_PREFIX}{os.getpid()}-", rebuild_if_lost=False) as (client, _):
            yield client

    @contextmanager
    def write(self) -> Iterator[QdrantClient]:
        """A client whose writes become visible together when the block ends without an error."""
        if not self.embedded:
            yield self._server_client()
            return
        self._root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self._root / "write.lock")):
            self._sweep_killed_writers()
            with self._private_copy(self._write_prefix, rebuild_if_lost=True) as (client, store):
                yield client
                client.close()  # flushed and unlocked before its files are copied
                self._publish(store)

    @contextmanager
    def _private_copy(self, prefix: str, rebuild_if_lost: bool) -> Iterator[tuple[QdrantClient, Path]]:
        """An embedded client over a scratch copy of the live store, removed afterwards."""
        with tempfile.TemporaryDirectory(prefix=prefix, dir=_fast_scratch()) as scratch:
            store = Path(scratch) / "store"
            self._copy_live(store, rebuild_if_lost)
            try:
                client = QdrantClient(path=str(store))
            except Exception as error:  # qdrant's local mode reads every collection here
                raise VectorStoreError(f"the vector store {self.location} is damaged ({type(error).__name__}); "
                                       f"remove {self._root} and run `twin features` to rebuild it") from error
            try:
                yield client, store
            finally:
                client.close()

    def published_at(self) -> float | None:
        """When the embedded store last changed (None before the first write, or on a server)."""
        live = self._root / "current"
        return live.lstat().st_mtime if self.embedded and live.is_symlink() else None

    @property
    def _write_prefix(self) -> str:
        return f"twin-qdrant-write-{hashlib.sha256(str(self._root.resolve()).encode()).hexdigest()[:10]}-"

    def _sweep_killed_writers(self) -> None:
        """Scratch copies left by a writer that was killed: none can be live while we hold the lock."""
        for stale in _scratch_folder().glob(self._write_prefix + "*"):
            shutil.rmtree(stale, ignore_errors=True)

    def _server_client(self) -> QdrantClient:
        try:
            return QdrantClient(url=self.url, api_key=self.api_key or None, timeout=60)
        except Exception as error:
            raise VectorStoreError(f"cannot reach Qdrant at {self.url}: {error}") from None

    def _copy_live(self, target: Path, rebuild_if_lost: bool) -> None:
        live = self._root / "current"
        if live.is_symlink() and not live.exists() and not rebuild_if_lost:
            raise VectorStoreError(f"the vector store is broken: {live} points to {os.readlink(live)}, which is "
                                   "missing; `twin features` rebuilds it")
        if live.exists():
            shutil.copytree(live.resolve(), target, ignore=shutil.ignore_patterns(".lock"))
        else:
            target.mkdir(parents=True)

    def _publish(self, store: Path) -> None:
        versions = self._root / "versions"
        version = versions / f"{time.time_ns()}-{uuid.uuid4().hex[:6]}"
        shutil.copytree(store, version, ignore=shutil.ignore_patterns(".lock"))
        _fsync_tree(version)
        pointer = self._root / f".current-{uuid.uuid4().hex}"
        pointer.symlink_to(version.relative_to(self._root))
        pointer.replace(self._root / "current")  # atomic: readers see the old or the new store, whole
        for stale in sorted(versions.iterdir())[:-KEEP_VERSIONS]:
            shutil.rmtree(stale, ignore_errors=True)


def ensure_collection(client: QdrantClient, name: str, indexed_fields: list[str],
                      dense: tuple[str, int] | None = None, sparse: str | None = None) -> bool:
    """Create `name` with a named dense vector (name, dimension) and a named sparse vector whose weights get
    Qdrant's IDF at search time, or payload only; True when it was (re)created.

    A collection whose vectors differ (another model's size, or the layout before hybrid search) is rebuilt.
    """
    vectors = {dense[0]: models.VectorParams(size=dense[1], distance=models.Distance.COSINE)} if dense else {}
    sparse_vectors = {sparse: models.SparseVectorParams(modifier=models.Modifier.IDF)} if sparse else None
    if client.collection_exists(name):
        params = client.get_collection(name).config.params
        current = {key: value.size for key, value in params.vectors.items()} if isinstance(params.vectors, dict) \
            else ({"": params.vectors.size} if params.vectors is not None else {})
        if current == {key: value.size for key, value in vectors.items()} \
                and set(params.sparse_vectors or {}) == set(sparse_vectors or {}):
            return False
        client.delete_collection(name)
    client.create_collection(name, vectors_config=vectors, sparse_vectors_config=sparse_vectors)
    if not is_embedded(client):  # the embedded mode has no payload indexes; it says so on every call
        for field in indexed_fields:
            client.create_payload_index(name, field, field_schema=models.PayloadSchemaType.KEYWORD)
    return True


def is_embedded(client: QdrantClient) -> bool:
    return client.init_options.get("path") is not None or client.init_options.get("location") == ":memory:"


def field_filter(**equal: str | list[str]) -> models.Filter:
    """A filter of exact matches; a list value matches any of its items."""
    conditions = [
        models.FieldCondition(key=key, match=models.MatchAny(any=value) if isinstance(value, list)
                              else models.MatchValue(value=value))
        for key, value in equal.items()
    ]
    return models.Filter(must=conditions)


def scroll_all(client: QdrantClient, collection: str, query_filter: models.Filter | None = None,
               payload: list[str] | bool = True, vectors: bool = False) -> list[models.Record]:
    """Every point matching `query_filter`, page by page."""
    records, offset = [], None
    while True:
        page, offset = client.scroll(collection, scroll_filter=query_filter, with_payload=payload,
                                     with_vectors=vectors, limit=1024, offset=offset)
        records.extend(page)
        if offset is None:
            return records


def upsert_in_batches(client: QdrantClient, collection: str, points: list[models.PointStruct]) -> None:
    for start in range(0, len(points), WRITE_BATCH):
        client.upsert(collection, points=points[start:start + WRITE_BATCH], wait=True)


def delete_points(client: QdrantClient, collection: str, ids: list[str]) -> None:
    for start in range(0, len(ids), WRITE_BATCH):
        client.delete(collection, points_selector=models.PointIdsList(points=ids[start:start + WRITE_BATCH]),
                      wait=True)
