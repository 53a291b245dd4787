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
fingerprints  binary      on the exact row only, when the batch was verified exactly: the
                          32-bit shingle fingerprints (:class:`~.minhash.Fingerprints`), so
                          that pairs with a later snapshot are verified exactly too
============  ==========  ==============================================================

Only kept documents are indexed, so any match points at a document that is still in the data.
The table is plain Arrow: concatenate the rows of several batches (``pa.concat_tables``) -
:class:`~.pipeline.SignatureIndex` wraps that as ``query`` + ``append``. This is the in-memory
reference's format; the dedup stage stores the same rows bucketed by hash
(``dataplatform.stages.dedup``) so that a new snapshot reads only the buckets it touches.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from .minhash import Fingerprints, binary_buffers

__all__ = [
    "EXACT_BAND",
    "INDEX_SCHEMA",
    "empty_index",
    "build_index_rows",
    "as_index_frame",
    "signature_array",
    "signatures_of",
]

EXACT_BAND = -1
INDEX_SCHEMA = pa.schema(
    [
        pa.field("band", pa.int16(), nullable=False),
        pa.field("band_hash", pa.uint64(), nullable=False),
        pa.field("doc_id", pa.large_string(), nullable=False),
        pa.field("snapshot", pa.large_string(), nullable=False),
        pa.field("signature", pa.large_binary(), nullable=True),
        pa.field("fingerprints", pa.large_binary(), nullable=True),
    ]
)


def empty_index() -> pa.Table:
    return INDEX_SCHEMA.empty_table()


def signature_array(signatures: np.ndarray) -> pa.Array:
    """``(n, num_perm)`` uint32 signatures as one little-endian binary value per document."""
    sig = np.ascontiguousarray(signatures.astype("<u4", copy=False))
    n, width = sig.shape[0], sig.shape[1] * 4
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(sig.tobytes())])


def signatures_of(values: pa.Array | pa.ChunkedArray | pl.Series, num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """``(signatures (n, num_perm) uint32, present bool)`` from a binary column written by
    :func:`signature_array`; null values give all-``0xFFFFFFFF`` rows with ``present`` False.
    A value of another width (another ``num_perm``) raises."""
    arr = values.to_arrow() if isinstance(values, pl.Series) else values
    present = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    data, offsets = binary_buffers(arr)
    widths = np.diff(offsets)
    if np.any(widths[present] != 4 * num_perm):
        raise ValueError(f"index: signature width does not match DedupConfig.num_perm={num_perm}")
    out = np.full((len(widths), num_perm), 0xFFFFFFFF, dtype=np.uint32)
    out[present] = data.view("<u4").reshape(-1, num_perm)
    return out, present


def build_index_rows(
    doc_ids: list[str] | np.ndarray,
    snapshots: list[str] | np.ndarray,
    content_hashes: np.ndarray | None,
    band_hashes: np.ndarray | None,
    signatures: np.ndarray | None,
    fingerprints: Fingerprints | None = None,
) -> pa.Table:
    """Index rows for kept documents: one exact row (if ``content_hashes``) and one row per band
    (if ``band_hashes``, shape ``(n, bands)``). Rows are grouped by band, then document order."""
    n = len(doc_ids)
    ids = pa.array(list(doc_ids), pa.large_string())
    snaps = pa.array(list(snapshots), pa.large_string())
    parts = []
    if content_hashes is not None and n:
        sig_arr = signature_array(signatures) if signatures is not None else pa.nulls(n, pa.large_binary())
        fp_arr = fingerprints.to_arrow() if fingerprints is not None else pa.nulls(n, pa.large_binary())
        parts.append(
            pa.table(
                [
                    pa.array(np.full(n, EXACT_BAND, np.int16)),
                    pa.array(np.asarray(content_hashes, np.uint64)),
                    ids,
                    snaps,
                    sig_arr,
                    fp_arr,
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
                    pa.nulls(n * nb, pa.large_binary()),
                ],
                schema=INDEX_SCHEMA,
            )
        )
    return pa.concat_tables(parts) if parts else empty_index()


def as_index_frame(index: pa.Table | pl.DataFrame | None) -> pl.DataFrame | None:
    """The index as a Polars frame (or None when absent/empty), checking its columns."""
    if index is None:
        return None
    df = index if isinstance(index, pl.DataFrame) else pl.from_arrow(index)
    assert isinstance(df, pl.DataFrame)
    missing = {"band", "band_hash", "doc_id", "snapshot"} - set(df.columns)
    if missing:
        raise ValueError(f"index: missing column(s) {sorted(missing)}")
    if df.height == 0:
        return None
    for column in ("signature", "fingerprints"):
        if column not in df.columns:
            df = df.with_columns(pl.lit(None, pl.Binary).alias(column))
    return df.with_columns(
        pl.col("band").cast(pl.Int16),
        pl.col("band_hash").cast(pl.UInt64),
        pl.col("doc_id").cast(pl.Utf8),
        pl.col("snapshot").cast(pl.Utf8),
    )
