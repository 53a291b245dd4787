"""Partitioned Parquet datasets with atomic, manifest-committed materialization.

Layout under a store root::

    <asset>/<partition>/_manifest.json                       the commit point
    <asset>/<partition>/v<version>/<table>/part-NNNNN.parquet  zstd shards of one materialization

A materialization writes its shards under a fresh ``v<version>/`` prefix, then writes the manifest
(one atomic object PUT / ``os.replace``) naming exactly those shards, then deletes older versions.
Readers resolve shards only through the manifest, so they see the previous version or the new
one, never a mix; a crash before the manifest leaves the old version readable and some orphaned
shards that the next materialization of that partition removes. This works identically on a
local disk and on S3, which has no rename.

A partition may hold several named tables committed together (``data`` plus e.g. ``quarantine``
or ``dropped``), so a stage's output and what it set aside always come from the same run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dataplatform.core.snapshot_keys import validate_snapshot_key
from dataplatform.io.object_store import LocalLocation, ObjectStore, S3Location, StoreLocation

MANIFEST_NAME = "_manifest.json"
MANIFEST_FORMAT = "dataplatform.partition/v1"
DEFAULT_TABLE = "data"
PARQUET_COMPRESSION = "zstd"
ROW_GROUP_ROWS = 10_000


class PartitionNotFound(LookupError):
    pass


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    table: str
    key: str  # relative to the partition folder
    rows: int
    bytes: int
    sha256: str


def open_store(location: StoreLocation) -> ObjectStore:
    return location.open()


def shard_key(asset: str, partition: str, version: str, table: str, index: int) -> str:
    return f"{asset}/{partition}/v{version}/{table}/part-{index:05d}.parquet"


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

    def __enter__(self) -> "ShardSink":
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


def iter_shard_batches(location: StoreLocation, key: str, batch_rows: int, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Read one shard back in bounded batches (downloads it first when the store is remote)."""
    store = open_store(location)
    with store.readable_path(key) as path:
        parquet = pq.ParquetFile(path)
        yield from parquet.iter_batches(batch_size=batch_rows, columns=columns)


class PartitionWriter:
    """Collects the shards of one materialization and commits them with one manifest write."""

    def __init__(self, store: "DatasetStore", asset: str, partition: str) -> None:
        self.store = store
        self.asset = asset
        self.partition = partition
        self.version = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self.shards: list[ShardInfo] = []
        self.schemas: dict[str, pa.Schema] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.committed: dict[str, Any] | None = None

    @property
    def prefix(self) -> str:
        return f"{self.asset}/{self.partition}"

    def shard_key(self, index: int, table: str = DEFAULT_TABLE) -> str:
        return shard_key(self.asset, self.partition, self.version, table, index)

    def declare_table(self, table: str, schema: pa.Schema) -> None:
        self.schemas[table] = schema

    def add(self, shard: ShardInfo) -> None:
        self.shards.append(shard)

    def write_table(self, table_name: str, data: pa.Table, index: int = 0) -> ShardInfo:
        """Write a whole (small) table as one shard from this process."""
        self.declare_table(table_name, data.schema)
        info = write_parquet_shard(
            self.store.location, self.shard_key(index, table_name), data.to_batches(ROW_GROUP_ROWS) or [data],
            data.schema, table_name, self.prefix,
        )
        self.add(info)
        return info

    def add_file(self, local_path: str | Path, name: str | None = None) -> str:
        """Store a non-tabular artifact (a model file) with this version; returns its key."""
        name = name or Path(local_path).name
        key = f"{self.prefix}/v{self.version}/files/{name}"
        data = Path(local_path).read_bytes()
        self.store.object_store.put_bytes(key, data)
        self.files[name] = {"path": key[len(self.prefix) + 1 :], "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        return key

    def commit(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        tables: dict[str, dict[str, Any]] = {}
        for name, schema in self.schemas.items():
            tables[name] = {"schema": schema.to_string(show_schema_metadata=False), "rows": 0, "bytes": 0, "shards": []}
        for shard in sorted(self.shards, key=lambda s: (s.table, s.key)):
            entry = tables.setdefault(shard.table, {"schema": None, "rows": 0, "bytes": 0, "shards": []})
            entry["shards"].append({"path": shard.key, "rows": shard.rows, "bytes": shard.bytes, "sha256": shard.sha256})
            entry["rows"] += shard.rows
            entry["bytes"] += shard.bytes
        manifest = {
            "format": MANIFEST_FORMAT,
            "asset": self.asset,
            "partition": self.partition,
            "version": self.version,
            "committed_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "tables": tables,
            "files": self.files,
            "metadata": metadata or {},
        }
        body = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
        self.store.object_store.put_bytes(f"{self.prefix}/{MANIFEST_NAME}", body)
        self.committed = manifest
        self.store.remove_stale_versions(self.asset, self.partition, keep=self.version)
        return manifest

    def abort(self) -> None:
        self.store.object_store.delete_prefix(f"{self.prefix}/v{self.version}")


class DatasetStore:
    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self.object_store = open_store(location)

    @classmethod
    def local(cls, root: str | Path) -> "DatasetStore":
        return cls(LocalLocation(str(Path(root).resolve())))

    @classmethod
    def s3(cls, bucket: str, prefix: str = "", endpoint_url: str | None = None, region_name: str | None = None) -> "DatasetStore":
        return cls(S3Location(bucket, prefix, endpoint_url, region_name))

    # ------------------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def write_partition(self, asset: str, partition: str) -> Iterator[PartitionWriter]:
        """Open a materialization of ``asset``/``partition``; commit it only if the block succeeds.

        The caller commits explicitly (``writer.commit(metadata)``) once it knows the metadata; a
        block that raises, or exits without committing, leaves the previous version in place.
        """
        validate_snapshot_key(partition)
        _check_asset(asset)
        writer = PartitionWriter(self, asset, partition)
        try:
            yield writer
        except BaseException:
            with contextlib.suppress(Exception):
                writer.abort()
            raise
        if writer.committed is None:
            writer.abort()

    def remove_stale_versions(self, asset: str, partition: str, keep: str) -> None:
        for child in self.object_store.list_children(f"{asset}/{partition}"):
            if child.startswith("v") and child != f"v{keep}":
                self.object_store.delete_prefix(f"{asset}/{partition}/{child}")

    # ------------------------------------------------------------------------------ reading
    def manifest(self, asset: str, partition: str) -> dict[str, Any] | None:
        validate_snapshot_key(partition)
        _check_asset(asset)
        raw = self.object_store.get_bytes(f"{asset}/{partition}/{MANIFEST_NAME}")
        return json.loads(raw) if raw is not None else None

    def require_manifest(self, asset: str, partition: str) -> dict[str, Any]:
        manifest = self.manifest(asset, partition)
        if manifest is None:
            raise PartitionNotFound(
                f"{asset}/{partition} has not been materialized in {self.describe()} (no {MANIFEST_NAME})"
            )
        return manifest

    def partitions(self, asset: str) -> list[str]:
        return [p for p in self.object_store.list_children(asset)
                if self.object_store.get_bytes(f"{asset}/{p}/{MANIFEST_NAME}") is not None]

    def shard_keys(self, asset: str, partition: str, table: str = DEFAULT_TABLE) -> list[str]:
        manifest = self.require_manifest(asset, partition)
        entry = manifest["tables"].get(table)
        if entry is None:
            return []
        return [f"{asset}/{partition}/{s['path']}" for s in entry["shards"]]

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
        parts = []
        for key in self.shard_keys(asset, partition, table):
            with self.object_store.readable_path(key) as path:
                parts.append(pq.read_table(path, columns=columns))
        if not parts:
            manifest = self.require_manifest(asset, partition)
            if table not in manifest["tables"]:
                raise KeyError(f"{asset}/{partition} has no table {table!r}; tables: {sorted(manifest['tables'])}")
            return pa.table({})
        return pa.concat_tables(parts)

    def read_frame(self, asset: str, partition: str, table: str = DEFAULT_TABLE, columns: list[str] | None = None) -> pl.DataFrame:
        return pl.from_arrow(self.read_table(asset, partition, table, columns))

    def scan(self, asset: str, partition: str, table: str = DEFAULT_TABLE) -> pl.LazyFrame:
        """Lazy scan over a partition's shards (local stores scan in place; S3 via object_store)."""
        keys = self.shard_keys(asset, partition, table)
        if isinstance(self.location, LocalLocation):
            return pl.scan_parquet([self.object_store.uri(k) for k in keys]) if keys else pl.LazyFrame()
        loc = self.location
        options = {"aws_region": loc.region_name or "us-east-1"}
        if loc.endpoint_url:
            options["aws_endpoint_url"] = loc.endpoint_url
            options["aws_allow_http"] = "true" if loc.endpoint_url.startswith("http://") else "false"
        return pl.scan_parquet([self.object_store.uri(k) for k in keys], storage_options=options) if keys else pl.LazyFrame()

    def describe(self) -> str:
        return self.object_store.uri("")


def _check_asset(asset: str) -> None:
    if not asset or not all(c.isalnum() or c == "_" for c in asset):
        raise ValueError(f"asset name {asset!r} must be [A-Za-z0-9_]+")
