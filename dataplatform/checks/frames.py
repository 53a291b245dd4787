"""Reading committed datasets for checks: whole columns, row counts from manifests, the previous
version of a partition, and duplicate detection with bounded memory (no Dagster here)."""

from __future__ import annotations

import io
import math
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from dataplatform.io.datasets import SHARD_INDEX_NAME, DatasetStore

# Rows whose ids one pass of :func:`duplicate_values` holds in memory (~50 bytes each for string ids).
ROWS_PER_PASS = 5_000_000
EXAMPLES = 5


def table_rows(manifest: dict[str, Any], table: str) -> int:
    """Committed row count of ``table`` (0 when the table is absent)."""
    entry = manifest["tables"].get(table)
    return int(entry["rows"]) if entry else 0


def read_columns(store: DatasetStore, asset: str, partition: str, table: str, columns: list[str]) -> pl.DataFrame:
    """``columns`` of a whole committed table; an absent or empty table gives an empty frame with
    those columns (String), so rules need no special case. A missing column raises (bad data)."""
    manifest = store.require_manifest(asset, partition)
    if table not in manifest["tables"] or not store.shards(asset, partition, table, manifest):
        return pl.DataFrame(schema={c: pl.String for c in columns})
    return store.read_frame(asset, partition, table, columns=columns)


def scan_tables(store: DatasetStore, asset: str, partition: str, tables: tuple[str, ...]) -> pl.LazyFrame | None:
    """One lazy scan over several tables of a partition (``None`` when none has a shard)."""
    scans = [store.scan(asset, partition, t) for t in tables if store.shard_keys(asset, partition, t)]
    return pl.concat(scans, how="diagonal_relaxed") if scans else None


def duplicate_values(
    frame: pl.LazyFrame | pl.DataFrame, column: str, rows_per_pass: int = ROWS_PER_PASS
) -> tuple[int, int, list[str]]:
    """``(duplicate rows, null rows, examples)`` of ``column`` over the *whole* frame.

    Duplicate rows are the extra copies (a value present 3 times counts 2). Memory is bounded by
    ``rows_per_pass``: larger frames are processed in passes over hash buckets of the value, each
    reading only ``column``.
    """
    lf = frame.lazy().select(pl.col(column))
    total, nulls = lf.select(pl.len(), pl.col(column).null_count()).collect().row(0)
    passes = max(1, math.ceil(total / rows_per_pass))
    duplicates, examples = 0, []
    for bucket in range(passes):
        part = lf.drop_nulls()
        if passes > 1:
            part = part.filter(pl.col(column).hash(seed=0) % passes == bucket)
        counts = part.group_by(column).len().filter(pl.col("len") > 1).collect()
        duplicates += int(counts["len"].sum() or 0) - counts.height
        examples += [str(v) for v in counts.sort(column)[column].head(EXAMPLES - len(examples)).to_list()]
    return duplicates, int(nulls), examples


def previous_version(store: DatasetStore, asset: str, partition: str) -> str | None:
    """The version the current manifest superseded, if it is still in storage (retention keeps the
    last superseded versions for a while; see ``dataplatform.io.datasets.RetentionPolicy``)."""
    manifest = store.require_manifest(asset, partition)
    for entry in manifest.get("history", [])[:1]:
        key = f"{asset}/{partition}/v{entry['version']}/{SHARD_INDEX_NAME}"
        if store.object_store.get_bytes(key) is not None:
            return entry["version"]
    return None


def read_version_table(
    store: DatasetStore, asset: str, partition: str, version: str, table: str, columns: list[str]
) -> pl.DataFrame:
    """``columns`` of ``table`` as committed in an older ``version`` of the partition."""
    raw = store.object_store.get_bytes(f"{asset}/{partition}/v{version}/{SHARD_INDEX_NAME}")
    if raw is None:
        raise FileNotFoundError(f"{asset}/{partition}: version {version} is no longer in storage")
    paths = [r["path"] for r in pq.read_table(io.BytesIO(raw)).to_pylist() if r["table"] == table]
    frames = []
    for path in sorted(paths):
        with store.object_store.readable_path(f"{asset}/{partition}/{path}") as local:
            frames.append(pl.read_parquet(local, columns=columns))
    return pl.concat(frames) if frames else pl.DataFrame(schema={c: pl.String for c in columns})
