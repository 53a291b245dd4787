"""Partitioned Parquet datasets with atomic, conditional, resumable materialization.

Layout under a store root::

    <asset>/<partition>/_manifest.json                          the commit point
    <asset>/<partition>/v<version>/<table>/part-NNNNN.parquet   zstd shards of one materialization
    <asset>/<partition>/v<version>/_shards.parquet              shard index: table, path, rows, bytes, sha256
    <asset>/<partition>/v<version>/_attempt.json                who writes this version, with which fingerprint
    <asset>/<partition>/v<version>/_progress/<phase>/<task>.json completion records (resume inside a partition)
    <asset>/<partition>/v<version>/_work/...                    a stage's intermediate files, never published

**Commit protocol.** A writer opens a version prefix of its own (or resumes an unfinished one with the
same configuration fingerprint), writes shards there, then publishes them with one conditional write
of ``_manifest.json``: compare-and-swap against the manifest it saw when it opened (``If-Match`` /
``If-None-Match`` on S3, an exclusive lock + content check locally). A second writer that started from
the same manifest loses with :class:`CommitConflict` naming the run that won; nothing is overwritten.

**Retention.** A committed manifest keeps the superseded versions in its ``history``; they stay
readable for :class:`RetentionPolicy` ``grace_seconds`` after being superseded (and the last
``keep_superseded`` of them regardless), so a reader that resolved the previous manifest finishes its
read. Garbage collection runs after each commit, best effort: it deletes only superseded versions past
retention and unfinished attempts idle for ``abandon_after_seconds``, never a version the current
manifest references; a failure is logged and retried by the next commit (or ``dataplatform gc``).
Nothing on an error path deletes data: a failed or killed run leaves its unfinished version for the
next run with the same fingerprint to resume.

This works identically on a local disk and on S3, which has no rename.
"""

from __future__ import annotations

import array
import collections
import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataplatform import names
from dataplatform.core.snapshot_keys import validate_snapshot_key
from dataplatform.io.object_store import TEMP_PREFIX, LocalLocation, ObjectStore, S3Location, StoreLocation

log = logging.getLogger(__name__)

MANIFEST_NAME = "_manifest.json"
MANIFEST_FORMAT = "dataplatform.partition/v2"
SHARD_INDEX_NAME = "_shards.parquet"
SHARD_CACHE_ENTRIES = 4  # shard lists of committed versions a DatasetStore keeps (see DatasetStore.shards)
ATTEMPT_NAME = "_attempt.json"
PROGRESS_DIR = "_progress"
WORK_DIR = "_work"
DEFAULT_TABLE = names.DATA
PARQUET_COMPRESSION = "zstd"
ROW_GROUP_ROWS = 10_000
VERSION_TIME_FORMAT = "%Y%m%dT%H%M%S"

SHARD_INDEX_SCHEMA = pa.schema(
    [
        pa.field("table", pa.string()),
        pa.field("path", pa.string()),
        pa.field("rows", pa.int64()),
        pa.field("bytes", pa.int64()),
        pa.field("sha256", pa.string()),
    ]
)


class PartitionNotFound(LookupError):
    pass


class CommitConflict(RuntimeError):
    """Another run committed the partition after this run started; this run published nothing."""


class IncompleteVersion(RuntimeError):
    """A commit would name shards that are not in storage (deleted under a running writer)."""


@dataclasses.dataclass(frozen=True)
class RetentionPolicy:
    """How long what is no longer current stays in storage.

    ``grace_seconds``: a superseded version stays readable this long after a newer commit (readers
    that resolved the old manifest finish). ``keep_superseded``: the newest superseded versions kept
    whatever their age (a quick look back). ``abandon_after_seconds``: an unfinished attempt (killed
    or failed run) is kept this long for a re-run to resume, then removed. ``temp_after_seconds``:
    age after which a killed writer's temp files are removed.
    """

    grace_seconds: float = 3600.0
    keep_superseded: int = 2
    abandon_after_seconds: float = 7 * 24 * 3600.0
    temp_after_seconds: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("grace_seconds", "abandon_after_seconds", "temp_after_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"RetentionPolicy.{name} must be >= 0, got {getattr(self, name)}")
        if self.keep_superseded < 0:
            raise ValueError(f"RetentionPolicy.keep_superseded must be >= 0, got {self.keep_superseded}")


@dataclasses.dataclass(frozen=True, slots=True)
class ShardInfo:
    table: str
    key: str  # relative to the partition folder
    rows: int
    bytes: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class StoredFile:
    """A non-tabular artifact of a version (a model file): name, size and sha256."""

    name: str
    bytes: int
    sha256: str


def store_file(location: StoreLocation, key: str, local_path: str | Path) -> StoredFile:
    """Copy a local file to ``key`` (streamed, never read whole into memory) and describe it."""
    digest = hashlib.sha256()
    with open(local_path, "rb") as src, location.open().writable_path(key) as target, open(target, "wb") as dst:
        while chunk := src.read(8 * 1024 * 1024):
            digest.update(chunk)
            dst.write(chunk)
    return StoredFile(Path(local_path).name, Path(local_path).stat().st_size, digest.hexdigest())


def open_store(location: StoreLocation) -> ObjectStore:
    return location.open()


def shard_key(asset: str, partition: str, version: str, table: str, index: int) -> str:
    return f"{asset}/{partition}/v{version}/{table}/part-{index:05d}.parquet"


def default_run_id() -> str:
    """Who is writing, for conflict messages: the Dagster run id when set, else pid@host."""
    return os.environ.get("DAGSTER_RUN_ID") or f"pid {os.getpid()}@{socket.gethostname()}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_version() -> str:
    return _now().strftime(VERSION_TIME_FORMAT) + "-" + uuid.uuid4().hex[:8]


def _version_time(version: str) -> float | None:
    try:
        return dt.datetime.strptime(version.split("-", 1)[0], VERSION_TIME_FORMAT).replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


def _iso_to_ts(value: str | None) -> float | None:
    return dt.datetime.fromisoformat(value).timestamp() if value else None


# ------------------------------------------------------------------------------------ shard files
class ShardSink:
    """Streams record batches into one zstd Parquet shard; memory stays at one batch.

    Usable in worker processes: it opens its own store from the picklable ``location``. The shard
    is stored only if the ``with`` block exits cleanly; ``info`` describes it afterwards.
    """

    def __init__(self, location: StoreLocation, key: str, schema: pa.Schema, table: str, partition_prefix: str) -> None:
        self.location, self.key, self.schema, self.table = location, key, schema, table
        self.partition_prefix = partition_prefix
        self.rows = 0
        self.info: ShardInfo | None = None

    def __enter__(self) -> ShardSink:
        self._store = open_store(self.location)
        self._path_cm = self._store.writable_path(self.key)
        self._path = self._path_cm.__enter__()
        self._writer = pq.ParquetWriter(self._path, self.schema, compression=PARQUET_COMPRESSION)
        return self

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows:
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            self._writer.write_table(table.cast(self.schema), row_group_size=ROW_GROUP_ROWS)
            self.rows += batch.num_rows

    def __exit__(self, exc_type, exc, tb) -> None:
        self._writer.close()
        if exc_type is None:
            digest = hashlib.sha256()
            with open(self._path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            size = Path(self._path).stat().st_size
            self.info = ShardInfo(self.table, self.key[len(self.partition_prefix) + 1 :], self.rows, size, digest.hexdigest())
        self._path_cm.__exit__(exc_type, exc, tb)


def write_parquet_shard(
    location: StoreLocation,
    key: str,
    batches: Iterable[pa.RecordBatch | pa.Table],
    schema: pa.Schema,
    table: str,
    partition_prefix: str,
) -> ShardInfo:
    with ShardSink(location, key, schema, table, partition_prefix) as sink:
        for batch in batches:
            sink.write(batch)
    assert sink.info is not None
    return sink.info


def iter_shard_batches(
    location: StoreLocation, key: str, batch_rows: int, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Read one shard back in bounded batches (downloads it first when the store is remote)."""
    store = open_store(location)
    with store.readable_path(key) as path:
        parquet = pq.ParquetFile(path)
        yield from parquet.iter_batches(batch_size=batch_rows, columns=columns)


class ShardLedger:
    """The shards a writer will publish, kept as columns per table: ~150 B per shard instead of a
    ``ShardInfo`` object (~450 B), and written out as the shard index a chunk at a time.

    A crawl step's driver holds this for its whole run (3 tables x 90k WARC files is 270k shards:
    ~120 MB as objects, plus the same again while the old index was built from Python lists).
    """

    CHUNK = 8192  # rows of the shard index converted at once at commit

    def __init__(self) -> None:
        self._keys: dict[str, list[str]] = {}
        self._rows: dict[str, array.array] = {}
        self._bytes: dict[str, array.array] = {}
        self._sha256: dict[str, bytearray] = {}

    def add(self, shard: ShardInfo) -> None:
        if shard.table not in self._keys:
            self._keys[shard.table], self._sha256[shard.table] = [], bytearray()
            self._rows[shard.table], self._bytes[shard.table] = array.array("q"), array.array("q")
        self._keys[shard.table].append(shard.key)
        self._rows[shard.table].append(shard.rows)
        self._bytes[shard.table].append(shard.bytes)
        try:
            digest = bytes.fromhex(shard.sha256)
        except ValueError:
            digest = b""
        if len(digest) != 32:  # the packed column holds 32 bytes per shard
            raise ValueError(f"shard {shard.key}: sha256 must be 64 hex digits, got {shard.sha256!r}")
        self._sha256[shard.table] += digest

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._keys.values())

    def tables(self) -> list[str]:
        return sorted(self._keys)

    def keys(self, table: str) -> list[str]:
        return list(self._keys.get(table, ()))

    def totals(self, table: str) -> tuple[int, int, int]:
        """(shards, rows, bytes) of ``table``."""
        return len(self._keys.get(table, ())), sum(self._rows.get(table, ())), sum(self._bytes.get(table, ()))

    def __iter__(self) -> Iterator[ShardInfo]:
        for table in self.tables():
            for i in self._order(table):
                yield self._info(table, i)

    def _info(self, table: str, i: int) -> ShardInfo:
        sha = self._sha256[table][32 * i : 32 * (i + 1)].hex()
        return ShardInfo(table, self._keys[table][i], self._rows[table][i], self._bytes[table][i], sha)

    def _order(self, table: str) -> range | list[int]:
        keys = self._keys[table]
        if all(a < b for a, b in zip(keys, keys[1:])):  # tasks report in shard order: the usual case
            return range(len(keys))
        return sorted(range(len(keys)), key=keys.__getitem__)

    def index_bytes(self) -> bytes:
        """The shard index (``_shards.parquet``): one row per shard, sorted by table and path, one
        row group per table and ``CHUNK`` rows, so the peak is a chunk: one row group for a whole
        270k-shard index took ~110 MB more at commit. Readers see the same rows either way."""
        buffer = io.BytesIO()
        with pq.ParquetWriter(buffer, SHARD_INDEX_SCHEMA, compression=PARQUET_COMPRESSION) as writer:
            for table in self.tables():
                order = self._order(table)
                for start in range(0, len(order), self.CHUNK):
                    infos = [self._info(table, i) for i in order[start : start + self.CHUNK]]
                    columns = {f: [getattr(s, f) for s in infos] for f in ("table", "key", "rows", "bytes", "sha256")}
                    columns["path"] = columns.pop("key")
                    writer.write_table(pa.table(columns, schema=SHARD_INDEX_SCHEMA))
            if not len(self):
                writer.write_table(SHARD_INDEX_SCHEMA.empty_table())
        return buffer.getvalue()


_SHARD_NUMBER = re.compile(r"part-(\d+)\.parquet$")


class ShardsByIndex:
    """Keys of committed shards of several tables, grouped by their ``part-NNNNN`` number (shard
    ``i`` of one stage comes from shard ``i`` of its input, so shards line up across tables).

    Held by a driver for a whole map, so compact: per table, the shard numbers present (8 B each)
    and the key pattern they share; only a key off the pattern is kept as a string. A dict of key
    lists was ~1.6 KB per shard for the 8 tables assembly reads (~20 MB at 13k WARC files).
    """

    def __init__(self, store: DatasetStore, partition: str, sources: Sequence[tuple[str, str, str]]) -> None:
        """``sources``: ``(label, asset, table)``; a group lists ``(label, key)`` in this order."""
        self._sources: list[tuple[str, tuple[str, str], np.ndarray, dict[int, str]]] = []
        for label, asset, table in sources:
            keys = store.shard_keys(asset, partition, table)
            numbers = np.empty(len(keys), dtype=np.int64)
            pattern, odd = ("", ""), {}
            for i, key in enumerate(keys):
                match = _SHARD_NUMBER.search(key)
                if match is None:
                    raise ValueError(f"{asset}/{partition}: shard {key} is not named part-NNNNN.parquet")
                numbers[i] = number = int(match.group(1))
                pattern = (key[: match.start(1)], key[match.end(1) :]) if i == 0 else pattern
                if f"{pattern[0]}{number:05d}{pattern[1]}" != key:
                    odd[number] = key
            order = np.argsort(numbers, kind="stable")
            repeated = numbers[order][1:][np.diff(numbers[order]) == 0]
            if len(repeated):
                raise ValueError(f"{asset}/{partition}: two {table} shards are numbered {int(repeated[0])}")
            self._sources.append((label, pattern, numbers[order], odd))
        present = [numbers for _, _, numbers, _ in self._sources]
        self.indices: np.ndarray = np.unique(np.concatenate(present)) if present else np.empty(0, dtype=np.int64)

    def group(self, index: int) -> list[tuple[str, str]]:
        """``(label, key)`` of every source table that has shard ``index``."""
        found = []
        for label, (head, tail), numbers, odd in self._sources:
            at = int(np.searchsorted(numbers, index))
            if at < len(numbers) and numbers[at] == index:
                found.append((label, odd.get(index) or f"{head}{index:05d}{tail}"))
        return found


# ---------------------------------------------------------------------------------------- writing
class PartitionWriter:
    """One materialization of ``asset``/``partition``: shards in a private version prefix,
    completion records for resume, and a conditional manifest commit."""

    def __init__(
        self, store: DatasetStore, asset: str, partition: str, *, fingerprint: str | None = None, run_id: str | None = None
    ) -> None:
        self.store = store
        self.asset = asset
        self.partition = partition
        self.fingerprint = fingerprint
        self.run_id = run_id or default_run_id()
        self.shards = ShardLedger()
        self.schemas: dict[str, pa.Schema] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.committed: dict[str, Any] | None = None
        base, self._base_token = store.object_store.get_with_token(f"{self.prefix}/{MANIFEST_NAME}")
        self.base: dict[str, Any] | None = json.loads(base) if base is not None else None
        resumed = store.find_resumable_version(asset, partition, fingerprint, self.base) if fingerprint else None
        self.resumed = resumed is not None
        self.version = resumed or _new_version()
        self._publish_state = "not_started"  # -> "failed" | "unknown" | "succeeded"
        self.touch()

    @property
    def prefix(self) -> str:
        return f"{self.asset}/{self.partition}"

    @property
    def version_prefix(self) -> str:
        return f"{self.prefix}/v{self.version}"

    def shard_key(self, index: int, table: str = DEFAULT_TABLE) -> str:
        return shard_key(self.asset, self.partition, self.version, table, index)

    def work_key(self, name: str) -> str:
        """Key for an intermediate file of this materialization (never listed in the manifest)."""
        return f"{self.version_prefix}/{WORK_DIR}/{name}"

    def touch(self) -> None:
        """(Re)write the attempt record: who writes this version, with which fingerprint, when last
        active. Garbage collection leaves attempts alone while they are recent."""
        record = {"run_id": self.run_id, "fingerprint": self.fingerprint, "updated_at": _now().isoformat()}
        self.store.object_store.put_bytes(f"{self.version_prefix}/{ATTEMPT_NAME}", json.dumps(record).encode())

    # -- completion records -------------------------------------------------------------------
    def progress_key(self, phase: str, task_id: str) -> str:
        return f"{self.version_prefix}/{PROGRESS_DIR}/{phase}/{task_id}.json"

    def completed_ids(self, phase: str) -> set[str]:
        """Task ids of ``phase`` with a completion record in this version (records not read)."""
        prefix = f"{self.version_prefix}/{PROGRESS_DIR}/{phase}"
        return {
            key[len(prefix) + 1 : -len(".json")]
            for key in self.store.object_store.list_keys(prefix)
            if key.endswith(".json") and "/" not in key[len(prefix) + 1 :]
        }

    def read_record(self, phase: str, task_id: str) -> dict[str, Any]:
        raw = self.store.object_store.get_bytes(self.progress_key(phase, task_id))
        if raw is None:
            raise IncompleteVersion(f"{self.prefix}: completion record {phase}/{task_id} vanished under a running writer")
        return json.loads(raw)

    # -- contents -----------------------------------------------------------------------------
    def declare_table(self, table: str, schema: pa.Schema) -> None:
        self.schemas[table] = schema

    def add(self, shard: ShardInfo) -> None:
        self.shards.add(shard)

    def write_table(self, table_name: str, data: pa.Table, index: int = 0) -> ShardInfo:
        """Write a whole (small) table as one shard from this process."""
        self.declare_table(table_name, data.schema)
        info = write_parquet_shard(
            self.store.location,
            self.shard_key(index, table_name),
            data.to_batches(ROW_GROUP_ROWS) or [data],
            data.schema,
            table_name,
            self.prefix,
        )
        self.add(info)
        return info

    @property
    def files_prefix(self) -> str:
        """The folder of this version's non-tabular artifacts (model files)."""
        return f"{self.version_prefix}/files"

    def file_key(self, name: str) -> str:
        return f"{self.files_prefix}/{name}"

    def add_file(self, local_path: str | Path, name: str | None = None) -> str:
        """Store a non-tabular artifact (a model file) with this version; returns its key."""
        name = name or Path(local_path).name
        key = self.file_key(name)
        data = Path(local_path).read_bytes()
        self.store.object_store.put_bytes(key, data)
        self.register_file(StoredFile(name, len(data), hashlib.sha256(data).hexdigest()))
        return key

    def register_file(self, stored: StoredFile) -> None:
        """Publish with this version a file a worker already wrote at :meth:`file_key`."""
        self.files[stored.name] = {
            "path": self.file_key(stored.name)[len(self.prefix) + 1 :],
            "bytes": stored.bytes,
            "sha256": stored.sha256,
        }

    # -- commit -------------------------------------------------------------------------------
    def _tables(self) -> dict[str, dict[str, Any]]:
        tables = {
            name: {"schema": schema.to_string(show_schema_metadata=False), "rows": 0, "bytes": 0, "shards": 0}
            for name, schema in self.schemas.items()
        }
        for table in self.shards.tables():
            entry = tables.setdefault(table, {"schema": None, "rows": 0, "bytes": 0, "shards": 0})
            entry["shards"], entry["rows"], entry["bytes"] = self.shards.totals(table)
        return dict(sorted(tables.items()))

    def _check_complete(self) -> None:
        # Lists only the folders the manifest names: a version also holds a completion record per
        # task and (dedup) work files, several times the shards on a crawl.
        # One table at a time (one folder each, as a rule): a crawl's table has ~90k shards.
        groups = [self.shards.keys(t) for t in self.shards.tables()] + [[f["path"] for f in self.files.values()]]
        missing = []
        for keys in groups:
            by_folder: dict[str, list[str]] = {}
            for key in keys:
                by_folder.setdefault(key.rsplit("/", 1)[0], []).append(key)
            for folder, inside in sorted(by_folder.items()):
                present = set(self.store.object_store.list_keys(f"{self.prefix}/{folder}"))
                missing += [k for k in inside if f"{self.prefix}/{k}" not in present]
        if missing:
            raise IncompleteVersion(
                f"{self.prefix}: version {self.version} lacks {len(missing)} file(s) it would publish "
                f"(first: {missing[0]}); nothing was committed"
            )

    def _history(self, now: dt.datetime) -> list[dict[str, Any]]:
        if self.base is None:
            return []
        on_disk = set(self.store.object_store.list_children(self.prefix))
        previous = {
            "version": self.base["version"],
            "generation": self.base.get("generation", 0),
            "committed_at": self.base.get("committed_at"),
            "superseded_at": now.isoformat(),
            "run_id": self.base.get("run_id"),
        }
        older = [h for h in self.base.get("history", []) if f"v{h['version']}" in on_disk]
        return [previous, *older]

    def commit(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.committed is not None:
            raise RuntimeError(f"{self.prefix}: version {self.version} is already committed")
        objects = self.store.object_store
        objects.put_bytes(f"{self.version_prefix}/{SHARD_INDEX_NAME}", self.shards.index_bytes())
        self._check_complete()
        now = _now()
        manifest = {
            "format": MANIFEST_FORMAT,
            "asset": self.asset,
            "partition": self.partition,
            "version": self.version,
            "generation": (self.base or {}).get("generation", 0) + 1,
            "run_id": self.run_id,
            "fingerprint": self.fingerprint,
            "committed_at": now.isoformat(),
            "shard_index": f"v{self.version}/{SHARD_INDEX_NAME}",
            "tables": self._tables(),
            "files": self.files,
            "metadata": metadata or {},
            "history": self._history(now),
        }
        body = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
        self._publish(body)
        self.committed = manifest
        pa.default_memory_pool().release_unused()  # the index and the checks were this commit's peak
        self.store.collect_garbage_quietly(self.asset, self.partition)
        return manifest

    def _publish(self, body: bytes) -> None:
        key = f"{self.prefix}/{MANIFEST_NAME}"
        self._publish_state = "unknown"
        won = self.store.object_store.put_if(key, body, self._base_token)
        if not won:
            current = self.store.manifest(self.asset, self.partition)
            # A retried PUT whose first attempt landed is refused by its own condition: we did win.
            if current is not None and current.get("version") == self.version and current.get("run_id") == self.run_id:
                won = True
            else:
                self._publish_state = "failed"
                raise CommitConflict(_conflict_message(self, current))
        self._publish_state = "succeeded"

    def abort(self) -> None:
        """Give up this materialization. Its version is deleted only when it was certainly never
        published and no other run can be resuming it (no fingerprint); otherwise garbage collection
        decides later. Nothing a manifest may name is ever removed here."""
        if self.fingerprint is None and self._publish_state in ("not_started", "failed"):
            current = self.store.manifest(self.asset, self.partition)
            if current is None or current.get("version") != self.version:
                with contextlib.suppress(Exception):
                    self.store.object_store.delete_prefix(self.version_prefix)


def _conflict_message(writer: PartitionWriter, current: dict[str, Any] | None) -> str:
    base_generation = (writer.base or {}).get("generation", 0)
    if current is None:
        winner = "its manifest was removed"
    else:
        winner = (
            f"run {current.get('run_id', '?')} committed version {current.get('version')} "
            f"(generation {current.get('generation')}) at {current.get('committed_at')}"
        )
    return (
        f"{writer.prefix} was committed concurrently: {winner} after this run ({writer.run_id}) started from "
        f"generation {base_generation}. This run's output (version {writer.version}) was not published and the "
        f"committed data is untouched; re-run to rebuild on top of it."
    )


# ---------------------------------------------------------------------------------------- the store
class DatasetStore:
    def __init__(self, location: StoreLocation, retention: RetentionPolicy | None = None) -> None:
        self.location = location
        self.object_store = open_store(location)
        self.retention = retention or RetentionPolicy()
        # (asset, partition, version) -> its shards; most recently read last, SHARD_CACHE_ENTRIES kept.
        self._shard_cache: collections.OrderedDict[tuple[str, str, str], pa.Table] = collections.OrderedDict()

    @classmethod
    def local(cls, root: str | Path, retention: RetentionPolicy | None = None) -> DatasetStore:
        return cls(LocalLocation(str(Path(root).resolve())), retention)

    @classmethod
    def s3(
        cls,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region_name: str | None = None,
        retention: RetentionPolicy | None = None,
    ) -> DatasetStore:
        return cls(S3Location(bucket, prefix, endpoint_url, region_name), retention)

    # ------------------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def write_partition(
        self, asset: str, partition: str, *, fingerprint: str | None = None, run_id: str | None = None
    ) -> Iterator[PartitionWriter]:
        """Open a materialization of ``asset``/``partition``; the caller commits explicitly
        (``writer.commit(metadata)``) once it knows the metadata.

        With a ``fingerprint`` (a hash of everything that determines the output) an unfinished
        version with the same fingerprint is resumed: its completion records say which work is
        done. A block that raises or exits without committing publishes nothing and leaves the
        current version in place.
        """
        validate_snapshot_key(partition)
        _check_asset(asset)
        writer = PartitionWriter(self, asset, partition, fingerprint=fingerprint, run_id=run_id)
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        if writer.committed is None:
            writer.abort()

    def find_resumable_version(self, asset: str, partition: str, fingerprint: str, current: dict[str, Any] | None) -> str | None:
        """The newest unfinished attempt at ``asset``/``partition`` with ``fingerprint``, if any."""
        published = _published_versions(current)
        candidates = []
        for child in self.object_store.list_children(f"{asset}/{partition}"):
            if not child.startswith("v") or child[1:] in published:
                continue
            raw = self.object_store.get_bytes(f"{asset}/{partition}/{child}/{ATTEMPT_NAME}")
            if raw is not None and json.loads(raw).get("fingerprint") == fingerprint:
                candidates.append(child[1:])
        return max(candidates) if candidates else None

    # ------------------------------------------------------------------------------ garbage collection
    def collect_garbage(self, asset: str, partition: str, now: float | None = None) -> dict[str, list[str]]:
        """Delete what no reader can need any more; returns ``{"deleted": [...], "kept": [...]}``
        (version folders and temp files). Never deletes the current version or a retained one."""
        now = time.time() if now is None else now
        prefix = f"{asset}/{partition}"
        current = self.manifest(asset, partition)
        keep = _retained_versions(current, self.retention, now)
        superseded = {h["version"] for h in (current or {}).get("history", [])}
        deleted, kept = [], []
        for child in self.object_store.list_children(prefix):
            if not child.startswith("v"):
                continue
            version = child[1:]
            if version in keep or not self._expired(prefix, version, superseded, now):
                kept.append(child)
                continue
            self.object_store.delete_prefix(f"{prefix}/{child}")
            deleted.append(child)
        for name, mtime in self.object_store.list_files(prefix):
            if name.startswith(TEMP_PREFIX) and now - mtime > self.retention.temp_after_seconds:
                self.object_store.delete_prefix(f"{prefix}/{name}")
                deleted.append(name)
        return {"deleted": deleted, "kept": kept}

    def _expired(self, prefix: str, version: str, superseded: set[str], now: float) -> bool:
        if version in superseded:  # committed once, now past retention
            return True
        # An unfinished attempt (or a version that fell out of the history): idle long enough?
        raw = self.object_store.get_bytes(f"{prefix}/v{version}/{ATTEMPT_NAME}")
        if raw is None:
            # Killed before it recorded itself: no fingerprint, so no re-run can resume it; it holds at
            # most a temp file and goes with the temp files.
            started = _version_time(version)
            return started is not None and now - started > self.retention.temp_after_seconds
        last_active = _iso_to_ts(json.loads(raw).get("updated_at"))
        return last_active is not None and now - last_active > self.retention.abandon_after_seconds

    def collect_garbage_quietly(self, asset: str, partition: str) -> None:
        """Garbage collection after a commit: a failure must not fail (or undo) the commit."""
        try:
            self.collect_garbage(asset, partition)
        except Exception as exc:  # noqa: BLE001 - logged; the next commit or `dataplatform gc` retries
            log.warning("garbage collection of %s/%s failed (retried at the next commit): %s", asset, partition, exc)

    # ------------------------------------------------------------------------------ reading
    def manifest(self, asset: str, partition: str) -> dict[str, Any] | None:
        validate_snapshot_key(partition)
        _check_asset(asset)
        raw = self.object_store.get_bytes(f"{asset}/{partition}/{MANIFEST_NAME}")
        return json.loads(raw) if raw is not None else None

    def require_manifest(self, asset: str, partition: str) -> dict[str, Any]:
        manifest = self.manifest(asset, partition)
        if manifest is None:
            raise PartitionNotFound(f"{asset}/{partition} has not been materialized in {self.describe()} (no {MANIFEST_NAME})")
        return manifest

    def partitions(self, asset: str) -> list[str]:
        return [
            p
            for p in self.object_store.list_children(asset)
            if self.object_store.get_bytes(f"{asset}/{p}/{MANIFEST_NAME}") is not None
        ]

    def shards(
        self, asset: str, partition: str, table: str = DEFAULT_TABLE, manifest: dict[str, Any] | None = None
    ) -> list[ShardInfo]:
        """The committed shards of one table, in shard order (from the version's shard index)."""
        manifest = manifest or self.require_manifest(asset, partition)
        entry = manifest["tables"].get(table)
        if entry is None:
            return []
        if isinstance(entry.get("shards"), list):  # format v1: shards listed inline
            return [ShardInfo(table, s["path"], s["rows"], s["bytes"], s["sha256"]) for s in entry["shards"]]
        cache_key = (asset, partition, manifest["version"])
        if cache_key not in self._shard_cache:
            raw = self.object_store.get_bytes(f"{asset}/{partition}/{manifest['shard_index']}")
            if raw is None:
                raise PartitionNotFound(f"{asset}/{partition}: shard index of version {manifest['version']} is missing")
            # Kept as the Arrow table, not as ShardInfo objects (~0.4 KB each: ~60 MB for the 4
            # versions of a 13k-file snapshot's ~3 tables); the caller gets one table's list.
            self._shard_cache[cache_key] = pq.read_table(io.BytesIO(raw))
            # Bounded: a process that runs stage after stage (`dataplatform process`, a Dagster run)
            # otherwise keeps every shard index it ever read.
            while len(self._shard_cache) > SHARD_CACHE_ENTRIES:
                self._shard_cache.popitem(last=False)
        self._shard_cache.move_to_end(cache_key)
        index = self._shard_cache[cache_key]
        index = index.filter(pc.equal(index["table"], table))
        return [ShardInfo(*row) for row in zip(*(index[c].to_pylist() for c in ("table", "path", "rows", "bytes", "sha256")))]

    def shard_keys(self, asset: str, partition: str, table: str = DEFAULT_TABLE) -> list[str]:
        return [f"{asset}/{partition}/{s.key}" for s in self.shards(asset, partition, table)]

    def table_bytes(self, asset: str, partition: str, table: str = DEFAULT_TABLE) -> int:
        entry = self.require_manifest(asset, partition)["tables"].get(table)
        return int(entry["bytes"]) if entry else 0

    def file_key(self, asset: str, partition: str, name: str) -> str:
        manifest = self.require_manifest(asset, partition)
        entry = manifest.get("files", {}).get(name)
        if entry is None:
            raise PartitionNotFound(f"{asset}/{partition} has no file {name!r}; files: {sorted(manifest.get('files', {}))}")
        return f"{asset}/{partition}/{entry['path']}"

    def read_table(self, asset: str, partition: str, table: str = DEFAULT_TABLE, columns: list[str] | None = None) -> pa.Table:
        """Read a whole table of a partition (for small tables and tests; stages stream shards)."""
        manifest = self.require_manifest(asset, partition)
        parts = []
        for shard in self.shards(asset, partition, table, manifest):
            with self.object_store.readable_path(f"{asset}/{partition}/{shard.key}") as path:
                parts.append(pq.read_table(path, columns=columns))
        if not parts:
            if table not in manifest["tables"]:
                raise KeyError(f"{asset}/{partition} has no table {table!r}; tables: {sorted(manifest['tables'])}")
            return pa.table({})
        return pa.concat_tables(parts)

    def read_frame(
        self, asset: str, partition: str, table: str = DEFAULT_TABLE, columns: list[str] | None = None
    ) -> pl.DataFrame:
        return pl.from_arrow(self.read_table(asset, partition, table, columns))

    def scan(self, asset: str, partition: str, table: str = DEFAULT_TABLE) -> pl.LazyFrame:
        """Lazy scan over a partition's shards (local stores scan in place; S3 via object_store)."""
        keys = self.shard_keys(asset, partition, table)
        if not keys:
            return pl.LazyFrame()
        if isinstance(self.location, LocalLocation):
            return pl.scan_parquet([self.object_store.uri(k) for k in keys])
        loc = self.location
        options = {"aws_region": loc.region_name or "us-east-1"}
        if loc.endpoint_url:
            options["aws_endpoint_url"] = loc.endpoint_url
            options["aws_allow_http"] = "true" if loc.endpoint_url.startswith("http://") else "false"
        return pl.scan_parquet([self.object_store.uri(k) for k in keys], storage_options=options)

    def describe(self) -> str:
        return self.object_store.uri("")


def _published_versions(manifest: dict[str, Any] | None) -> set[str]:
    if manifest is None:
        return set()
    return {manifest["version"], *(h["version"] for h in manifest.get("history", []))}


def _retained_versions(manifest: dict[str, Any] | None, policy: RetentionPolicy, now: float) -> set[str]:
    if manifest is None:
        return set()
    keep = {manifest["version"]}
    for rank, entry in enumerate(manifest.get("history", [])):  # newest first
        superseded = _iso_to_ts(entry.get("superseded_at")) or now
        if rank < policy.keep_superseded or now - superseded < policy.grace_seconds:
            keep.add(entry["version"])
    return keep


def _check_asset(asset: str) -> None:
    if not asset or not all(c.isalnum() or c == "_" for c in asset):
        raise ValueError(f"asset name {asset!r} must be [A-Za-z0-9_]+")
