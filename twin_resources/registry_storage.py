"""Where the model registry keeps its records and its files: a local directory (one machine, the default) or
an S3 bucket that every pod of a cluster shares (`TWIN_REGISTRY_URL=s3://bucket/prefix`).

Records are small JSON documents (manifests, promotion histories, candidates, asset pointers). Each is read
with a tag and written conditionally: a write naming the tag it read fails with `Conflict` when another
writer got there first, so two concurrent promotions never lose one. Files are a version's artifact; the
registry publishes them before the version's manifest, so a version is visible only when complete.
"""

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from filelock import FileLock

from twin_resources.domain.models import RegistryError

UNCONDITIONAL = "*"  # a write's `if_tag` that overwrites whatever is there


class Conflict(RegistryError):
    """A conditional write lost: the record changed (or appeared) since it was read."""


@dataclass(frozen=True)
class Record:
    value: object
    tag: str  # the stored bytes' identity: what a conditional write names


class RegistryStorage(Protocol):
    remote: bool  # files live elsewhere and are copied into the local directory when used

    def read(self, key: str) -> Record | None: ...

    def write(self, key: str, value, if_tag: str | None = UNCONDITIONAL) -> None:
        """Store `value` at `key`; `if_tag=None`: only if absent; a tag: only if still the one read."""

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str) -> list[str]: ...

    def publish(self, key: str, directory: Path) -> None:
        """Make the files in `directory` available under `key` to every reader."""

    def fetch(self, key: str, files: dict[str, int], directory: Path) -> None:
        """Copy the files published under `key` into `directory` (which does not exist yet)."""


def _encode(value) -> bytes:
    return json.dumps(value, indent=2, default=str).encode()


class LocalStorage:
    """Records and files under one directory; conditional writes hold a file lock across processes."""

    remote = False

    def __init__(self, root: Path, lock: FileLock):
        self.root, self._lock = root, lock

    def read(self, key: str) -> Record | None:
        try:
            data = (self.root / key).read_bytes()
        except FileNotFoundError:
            return None
        return Record(json.loads(data), hashlib.sha256(data).hexdigest())

    def write(self, key: str, value, if_tag: str | None = UNCONDITIONAL) -> None:
        path = self.root / key
        with self._lock:
            if if_tag != UNCONDITIONAL:
                current = self.read(key)
                if (current.tag if current else None) != if_tag:
                    raise Conflict(f"{key} changed while it was being updated")
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as handle:
                handle.write(_encode(value))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, path)

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        folder, stem = (base, "") if prefix.endswith("/") else (base.parent, base.name)
        if not folder.is_dir():
            return []
        found = []
        for entry in folder.glob(f"{stem}*"):  # only the entries the prefix names are walked
            paths = entry.rglob("*") if entry.is_dir() else [entry]
            found += [path.relative_to(self.root).as_posix() for path in paths if path.is_file()]
        return sorted(found)

    def publish(self, key: str, directory: Path) -> None:
        pass  # the registry moved the files to their place under root already

    def fetch(self, key: str, files: dict[str, int], directory: Path) -> None:
        raise RegistryError(f"{key} is missing or truncated in {self.root}")


class S3Storage:
    """Records and files in an S3 bucket (or any S3-compatible store) under `prefix`, through dagster-aws's
    S3Resource. Conditional writes are S3's own `If-Match` / `If-None-Match` on PUT."""

    remote = True

    def __init__(self, client, bucket: str, prefix: str = ""):
        self.client, self.bucket = client, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"

    @classmethod
    def from_url(cls, url: str) -> "S3Storage":
        """`s3://bucket/prefix`; endpoint, region and credentials come from boto3's own variables
        (`AWS_ENDPOINT_URL` for a store other than AWS)."""
        from dagster_aws.s3 import S3Resource

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not url.startswith("s3://") or not bucket:
            raise RegistryError(f"TWIN_REGISTRY_URL: not an S3 URL: {url!r} (s3://bucket/prefix)")
        return cls(S3Resource(endpoint_url=os.environ.get("AWS_ENDPOINT_URL")).get_client(), bucket, prefix)

    def _error_code(self, error) -> str:
        return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))

    def read(self, key: str) -> Record | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except self.client.exceptions.NoSuchKey:
            return None
        return Record(json.loads(answer["Body"].read()), answer["ETag"])

    def write(self, key: str, value, if_tag: str | None = UNCONDITIONAL) -> None:
        from botocore.exceptions import ClientError

        condition = {} if if_tag == UNCONDITIONAL else {"IfNoneMatch": "*"} if if_tag is None else {"IfMatch": if_tag}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=_encode(value),
                                   ContentType="application/json", **condition)
        except ClientError as error:
            if self._error_code(error) in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise Conflict(f"{key} changed while it was being updated") from None
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def keys(self, prefix: str) -> list[str]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                         Prefix=self.prefix + prefix):
            found += [item["Key"].removeprefix(self.prefix) for item in page.get("Contents", [])]
        return sorted(found)

    def publish(self, key: str, directory: Path) -> None:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            self.client.upload_file(str(path), self.bucket, f"{self.prefix}{key}/{path.relative_to(directory).as_posix()}")

    def fetch(self, key: str, files: dict[str, int], directory: Path) -> None:
        """Downloaded beside `directory` and renamed into place, so a reader never sees half a version."""
        directory.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(dir=directory.parent, prefix=".fetching-"))
        try:
            for name, size in files.items():
                target = partial / name
                target.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, f"{self.prefix}{key}/{name}", str(target))
                if target.stat().st_size != size:
                    raise RegistryError(f"{key}/{name}: {target.stat().st_size} bytes in the store, {size} expected")
            os.replace(partial, directory)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
