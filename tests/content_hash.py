"""Content hashes of committed datasets that do not depend on how rows are cut into shards.

A hash is the sha256 of every row serialised as canonical JSON (keys sorted, bytes as hex,
timestamps as ISO strings), with the rows sorted: it changes when any value, row or column
changes, not when the same rows move between shards or change order inside a table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from dataplatform.io.datasets import DatasetStore


def _default(value):
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def table_content_hash(store: DatasetStore, asset: str, partition: str, table: str) -> str:
    rows = store.read_table(asset, partition, table).to_pylist()
    lines = sorted(json.dumps(row, sort_keys=True, default=_default, allow_nan=True) for row in rows)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def partition_content_hashes(store: DatasetStore, asset: str, partition: str) -> dict[str, str]:
    tables = store.require_manifest(asset, partition)["tables"]
    return {table: table_content_hash(store, asset, partition, table) for table in sorted(tables)}


def shard_sha256s(store: DatasetStore, asset: str, partition: str) -> dict[str, list[str]] | None:
    """sha256 of every committed shard, per table in shard order (None if not materialized)."""
    manifest = store.manifest(asset, partition)
    if manifest is None:
        return None
    return {table: [s.sha256 for s in store.shards(asset, partition, table, manifest)] for table in sorted(manifest["tables"])}
