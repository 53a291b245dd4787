"""Cross-snapshot signature index, stored as an Arrow table.

Snapshot N is deduplicated against snapshots 1..N-1 without reprocessing them: every *kept*
document contributes rows to the index, and a later batch only joins its own band hashes
against it.

Schema (:data:`INDEX_SCHEMA`), one row per kept document and band plus one "exact" row:

============  ==========  ==============================================================
column        type        meaning
============  ==========  ==============================================================
band          int16       LSH band ``0..bands-1``; :data:`EXACT_BAND` (-1) for the row
                          holding the normalised-text content hash
band_hash     uint64      the band's hash, or the XXH3-64 content hash on the exact row
doc_id        string      the kept document
snapshot      string      its snapshot
signature     binary      on the exact row only: the MinHash signature (``num_perm``
                          little-endian uint32), used to verify candidates; null elsewhere
============  ==========  ==============================================================

Only kept documents are indexed, so any match points at a document that is still in the data.
The table is plain Arrow: write it as Parquet next to the deduplicated snapshot and concatenate
(``pa.concat_tables``) - :class:`SignatureIndex` wraps that as ``query`` + ``append``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from .config import DedupConfig

__all__ = [
    "EXACT_BAND",
    "INDEX_SCHEMA",
    "empty_index",
    "build_index_rows",
    "as_index_frame",
    "SignatureIndex",
]

EXACT_BAND = -1
INDEX_SCHEMA = pa.schema(
    [
        pa.field("band", pa.int16(), nullable=False),
        pa.field("band_hash", pa.uint64(), nullable=False),
        pa.field("doc_id", pa.large_string(), nullable=False),
        pa.field("snapshot", pa.large_string(), nullable=False),
        pa.field("signature", pa.large_binary(), nullable=True),
    ]
)


def empty_index() -> pa.Table:
    return INDEX_SCHEMA.empty_table()


def build_index_rows(
    doc_ids: list[str] | np.ndarray,
    snapshots: list[str] | np.ndarray,
    content_hashes: np.ndarray | None,
    band_hashes: np.ndarray | None,
    signatures: np.ndarray | None,
) -> pa.Table:
    """Index rows for kept documents: one exact row (if ``content_hashes``) and one row per band
    (if ``band_hashes``, shape ``(n, bands)``). Rows are grouped by band, then document order."""
    n = len(doc_ids)
    ids = pa.array(list(doc_ids), pa.large_string())
    snaps = pa.array(list(snapshots), pa.large_string())
    parts = []
    if content_hashes is not None and n:
        if signatures is not None:
            sig = np.ascontiguousarray(signatures.astype("<u4", copy=False))
            width = sig.shape[1] * 4
            offs = np.arange(0, (n + 1) * width, width, dtype=np.int64)
            sig_arr = pa.LargeBinaryArray.from_buffers(
                pa.large_binary(), n, [None, pa.py_buffer(offs), pa.py_buffer(sig.tobytes())]
            )
        else:
            sig_arr = pa.nulls(n, pa.large_binary())
        parts.append(
            pa.table(
                [
                    pa.array(np.full(n, EXACT_BAND, np.int16)),
                    pa.array(np.asarray(content_hashes, np.uint64)),
                    ids,
                    snaps,
                    sig_arr,
                ],
                schema=INDEX_SCHEMA,
            )
        )
    if band_hashes is not None and n:
        nb = band_hashes.shape[1]
        parts.append(
            pa.table(
                [
                    pa.array(np.repeat(np.arange(nb, dtype=np.int16), n)),
                    pa.array(np.ascontiguousarray(band_hashes.T).reshape(-1)),
                    pa.concat_arrays([ids] * nb),
                    pa.concat_arrays([snaps] * nb),
                    pa.nulls(n * nb, pa.large_binary()),
                ],
                schema=INDEX_SCHEMA,
            )
        )
    return pa.concat_tables(parts) if parts else empty_index()


def as_index_frame(index: pa.Table | pl.DataFrame | "SignatureIndex" | None) -> pl.DataFrame | None:
    """The index as a Polars frame (or None when absent/empty), checking its columns."""
    if index is None:
        return None
    if isinstance(index, SignatureIndex):
        index = index.table
    df = index if isinstance(index, pl.DataFrame) else pl.from_arrow(index)
    assert isinstance(df, pl.DataFrame)
    missing = {"band", "band_hash", "doc_id", "snapshot"} - set(df.columns)
    if missing:
        raise ValueError(f"index: missing column(s) {sorted(missing)}")
    if df.height == 0:
        return None
    if "signature" not in df.columns:
        df = df.with_columns(pl.lit(None, pl.Binary).alias("signature"))
    return df.with_columns(
        pl.col("band").cast(pl.Int16), pl.col("band_hash").cast(pl.UInt64),
        pl.col("doc_id").cast(pl.Utf8), pl.col("snapshot").cast(pl.Utf8),
    )


class SignatureIndex:
    """Cross-snapshot dedup index: ``query`` a batch against it, then ``append`` its kept docs.

    >>> idx = SignatureIndex()
    >>> result_a, stats_a = idx.deduplicate(snapshot_a)   # query + append
    >>> result_b = idx.query(snapshot_b)                  # duplicate_of -> docs of snapshot A
    """

    def __init__(self, table: pa.Table | None = None, config: "DedupConfig | None" = None):
        from .config import DedupConfig

        self.config = config or DedupConfig()
        self._parts: list[pa.Table] = [] if table is None else [table.cast(INDEX_SCHEMA)]

    @property
    def table(self) -> pa.Table:
        if not self._parts:
            return empty_index()
        if len(self._parts) > 1:
            self._parts = [pa.concat_tables(self._parts).combine_chunks()]
        return self._parts[0]

    def __len__(self) -> int:
        return sum(t.num_rows for t in self._parts)

    def query(self, df: pl.DataFrame) -> pl.DataFrame:
        """Dedup ``df`` (columns ``doc_id``, ``text``, ``snapshot``, optional ``drop_reason``)
        against the index and itself, without changing the index. Returns the result frame with
        ``duplicate_of`` and ``drop_reason`` filled."""
        from .pipeline import deduplicate

        return deduplicate(df, index=self.table, config=self.config).frame

    def append(self, rows: pa.Table) -> None:
        """Add index rows (as returned by :func:`deduplicate`)."""
        if rows.num_rows:
            self._parts.append(rows.cast(INDEX_SCHEMA))

    def deduplicate(self, df: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
        """``query`` + ``append`` the batch's kept documents; returns (result, stats)."""
        from .pipeline import deduplicate

        res = deduplicate(df, index=self.table, config=self.config)
        self.append(res.index_rows)
        return res.frame, res.stats

    def write_parquet(self, path: str | Path) -> None:
        pq.write_table(self.table, path, compression="zstd")

    @classmethod
    def read_parquet(cls, path: str | Path, config: "DedupConfig | None" = None) -> "SignatureIndex":
        return cls(pq.read_table(path), config)
