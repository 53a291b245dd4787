"""Byte-level storage behind every dataset: a local directory or an S3 bucket prefix.

Both backends speak relative POSIX keys (``documents/CC-MAIN-2024-10/_manifest.json``). The only
atomic primitive the dataset layer relies on is :meth:`ObjectStore.put_bytes` of one small object
(S3 PUT is atomic per object; locally it is write-to-temp + ``os.replace``).

Stores are described by picklable ``*Location`` dataclasses so worker processes (or Ray tasks)
can rebuild them; credentials are never part of a location: workers read them from the
environment like every AWS SDK does.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO


class StorageKeyError(ValueError):
    """A key that would escape the store's root."""


# Files this package creates get the permissions `open()` would give them (0666 minus the umask),
# not mkstemp's 0600: a manifest must be as readable as the shards it names.
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
# Local writes go to a temp file beside the target and are renamed into place; leftovers of killed
# writers carry this prefix and are removed by garbage collection.
TEMP_PREFIX = ".tmp-"


def check_key(key: str) -> str:
    path = PurePosixPath(key)
    if path.is_absolute() or ".." in path.parts or key.startswith("/") or "\\" in key:
        raise StorageKeyError(f"storage key {key!r} must be a relative path without '..'")
    return key


class ObjectStore(abc.ABC):
    @abc.abstractmethod
    def uri(self, key: str) -> str: ...

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write one object atomically: readers see the old content or the new, never a part."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes | None:
        """Content of ``key``, or None if it does not exist."""

    @abc.abstractmethod
    def get_with_token(self, key: str) -> tuple[bytes | None, str | None]:
        """Content of ``key`` and a token identifying that content (None, None if absent)."""

    @abc.abstractmethod
    def put_if(self, key: str, data: bytes, expected_token: str | None) -> bool:
        """Compare-and-swap: write ``key`` only if its current token is ``expected_token``
        (``None``: only if it does not exist). Returns False, writing nothing, when another
        writer changed it first. Atomic against every other ``put_if`` of the same key."""

    @abc.abstractmethod
    def open_read(self, key: str) -> BinaryIO: ...

    @abc.abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """All keys under ``prefix`` (recursive), sorted."""

    @abc.abstractmethod
    def list_children(self, prefix: str) -> list[str]:
        """Names of the immediate 'folders' under ``prefix``, sorted."""

    def list_files(self, prefix: str) -> list[tuple[str, float]]:
        """Plain files directly under ``prefix`` with their modification times; only local stores
        leave temp files behind, so only they list anything here."""
        return []

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> None: ...

    @abc.abstractmethod
    def size(self, key: str) -> int: ...

    @contextlib.contextmanager
    @abc.abstractmethod
    def writable_path(self, key: str) -> Iterator[Path]:
        """Yield a local path to write ``key`` to; it is stored when the block exits cleanly."""

    @contextlib.contextmanager
    def readable_path(self, key: str) -> Iterator[Path]:
        """Yield a local path holding ``key`` (a temporary download for remote stores)."""
        with tempfile.TemporaryDirectory(prefix="dataplatform-") as tmp:
            local = Path(tmp) / PurePosixPath(key).name
            with self.open_read(key) as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 8 * 1024 * 1024)
            yield local


# ---------------------------------------------------------------------------------------- local
@dataclasses.dataclass(frozen=True)
class LocalLocation:
    root: str

    def open(self) -> LocalObjectStore:
        return LocalObjectStore(self.root)


class LocalObjectStore(ObjectStore):
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        self.location = LocalLocation(str(self.root))

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), FILE_MODE)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def get_with_token(self, key: str) -> tuple[bytes | None, str | None]:
        data = self.get_bytes(key)
        return (data, hashlib.sha256(data).hexdigest()) if data is not None else (None, None)

    def put_if(self, key: str, data: bytes, expected_token: str | None) -> bool:
        # An exclusive flock beside the object serialises compare-and-swaps between processes on
        # this machine (and on file systems with working POSIX locks); SIGKILL releases it.
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.lock"), "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                if self.get_with_token(key)[1] != expected_token:
                    return False
                self.put_bytes(key, data)
                return True
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def open_read(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        if base.is_file():
            return [prefix]
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def list_children(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir())

    def list_files(self, prefix: str) -> list[tuple[str, float]]:
        """Plain files directly under ``prefix`` with their modification times (temp-file cleanup)."""
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        out = []
        for p in base.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if p.is_file():
                    out.append((p.name, p.stat().st_mtime))
        return sorted(out)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    @contextlib.contextmanager
    def writable_path(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{path.name}")
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @contextlib.contextmanager
    def readable_path(self, key: str) -> Iterator[Path]:
        yield self._path(key)


# ------------------------------------------------------------------------------------------- S3
@dataclasses.dataclass(frozen=True)
class S3Location:
    """Where data lives in S3. ``endpoint_url`` is for S3-compatible servers (MinIO, moto, R2)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region_name: str | None = None

    def open(self) -> S3ObjectStore:
        return S3ObjectStore(self)


def make_s3_client(location: S3Location):
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=location.endpoint_url,
        region_name=location.region_name or os.environ.get("AWS_REGION") or "us-east-1",
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60),
    )


class S3ObjectStore(ObjectStore):
    def __init__(self, location: S3Location, client=None) -> None:
        if not location.bucket:
            raise ValueError("s3 bucket must not be empty")
        self.location = location
        self.bucket = location.bucket
        self.prefix = location.prefix.strip("/")
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = make_s3_client(self.location)
        return self._client

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes | None:
        return self.get_with_token(key)[0]

    def get_with_token(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            return None, None
        return response["Body"].read(), response["ETag"]

    def put_if(self, key: str, data: bytes, expected_token: str | None) -> bool:
        # S3 conditional writes (If-Match on the ETag read, If-None-Match: * for a first write):
        # the service refuses the PUT with 412 when another writer got there first.
        from botocore.exceptions import ClientError

        condition = {"IfNoneMatch": "*"} if expected_token is None else {"IfMatch": expected_token}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return False
            raise
        return True

    def open_read(self, key: str) -> BinaryIO:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        return _ClosingStream(body)

    def _paginate(self, prefix: str, delimiter: str | None = None):
        full = self._key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        if prefix and not full.endswith("/") and delimiter:
            full += "/"
        kwargs = {"Bucket": self.bucket, "Prefix": full}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            yield full, page

    def list_keys(self, prefix: str) -> list[str]:
        keys = []
        for _, page in self._paginate(prefix):
            keys.extend(self._strip(obj["Key"]) for obj in page.get("Contents", []))
        return sorted(keys)

    def list_children(self, prefix: str) -> list[str]:
        names = []
        for full, page in self._paginate(prefix, delimiter="/"):
            names.extend(p["Prefix"][len(full) :].rstrip("/") for p in page.get("CommonPrefixes", []))
        return sorted(names)

    def delete_prefix(self, prefix: str) -> None:
        keys = [self._key(k) for k in self.list_keys(prefix)]
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk]})

    def size(self, key: str) -> int:
        return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])

    @contextlib.contextmanager
    def writable_path(self, key: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="dataplatform-") as tmp:
            local = Path(tmp) / PurePosixPath(key).name
            yield local
            # upload_file switches to multipart above 8 MB; the object appears only when complete.
            self.client.upload_file(str(local), self.bucket, self._key(key))


class _ClosingStream:
    """botocore's StreamingBody as a context-managed, read-only binary file object."""

    def __init__(self, body) -> None:
        self._body = body

    def read(self, n: int = -1) -> bytes:
        return self._body.read(None if n is None or n < 0 else n)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


StoreLocation = LocalLocation | S3Location
