"""Out-of-core dedup, the pure pieces: what one shard or one bucket partition computes.

The dedup stage (``dataplatform.stages.dedup``) runs :func:`~.pipeline.deduplicate`'s algorithm
as a map -> shuffle -> map over storage, so that no process holds more than one input shard or
one partition of buckets. This module holds the computations; the stage reads and writes.

Hash space. Every row that has to meet its peers is sent to one of :data:`INDEX_BUCKETS`
buckets by a hash: exact rows by their content hash, band rows by ``(band, band hash)`` (so a
whole LSH bucket lands in one place), per-document payloads (signature, shingle fingerprints) by
``(snapshot, doc_id)``. A run splits the buckets into ``partitions`` contiguous ranges, one task
each, sized from the input; the cross-snapshot index is stored per partition range, so a later
snapshot reads only the ranges holding buckets it touches.

Documents are keyed by ``(shard, row)`` inside the batch (the input shard and the row in it) and
by ``(snapshot, doc_id)`` in the index. Priority, as in the reference: index documents first by
``(snapshot rank, doc_id)``, then batch documents by ``(snapshot rank, doc_id, shard, row)``
(shard-major row order is the reference's input row order).

Steps:

* :func:`shard_sketches` (per input shard): exact rows, band rows and payload rows.
* :func:`exact_duplicates` (per partition): the exact verdict of every non-first copy of a hash.
* :func:`anchor_pairs` (per partition): inside each ``(band, band hash)`` group with a batch
  member, every member paired with the group's first (highest-priority) member; exact copies
  are left out beforehand, as in the reference.
* :func:`pair_jaccard` (per partition of pairs with both payloads attached): the verification.
* :func:`near_verdicts` (once, over the verified edges): keepers of near duplicates.
* :func:`exact_copy_verdicts` (per partition of exact verdicts): each copy follows its keeper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import xxhash

from dataplatform.core.ngrams import mix64

from . import lsh
from .config import DedupConfig
from .index import signature_array, signatures_of
from .minhash import Fingerprints, shingle_hashes, signatures_from_shingles
from .normalize import content_hash, normalize_buffers
from .pipeline import DROP_EXACT, DROP_MINHASH

__all__ = [
    "BAND_ROWS",
    "EXACT_ROWS",
    "INDEX_BANDS",
    "INDEX_BUCKETS",
    "INDEX_EXACT",
    "INDEX_SIGNATURES",
    "PAIR_COLUMNS",
    "PAYLOAD_ROWS",
    "ShardSketches",
    "anchor_pairs",
    "band_buckets",
    "band_keys",
    "doc_buckets",
    "exact_copy_verdicts",
    "exact_duplicates",
    "near_verdicts",
    "pair_jaccard",
    "partition_of",
    "partition_range",
    "shard_sketches",
]

INDEX_BUCKETS = 4096  # hash-space buckets (part of the index format)
_BUCKET_SHIFT = np.uint64(64 - 12)
_BAND_SALT = np.uint64(0xC2B2AE3D27D4EB4F)

_KEY = [pa.field("doc_id", pa.large_string()), pa.field("snapshot", pa.large_string())]
_ROW = [pa.field("shard", pa.int32()), pa.field("row", pa.int64())]
EXACT_ROWS = pa.schema([pa.field("bucket", pa.uint16()), pa.field("content_hash", pa.uint64()), *_KEY, *_ROW])
BAND_ROWS = pa.schema(
    [pa.field("bucket", pa.uint16()), pa.field("band", pa.int16()), pa.field("band_hash", pa.uint64()), *_KEY, *_ROW]
)
PAYLOAD_ROWS = pa.schema(
    [
        pa.field("bucket", pa.uint16()),
        *_KEY,
        *_ROW,
        pa.field("signature", pa.large_binary()),
        pa.field("fingerprints", pa.large_binary()),
    ]
)
INDEX_EXACT = pa.schema([pa.field("bucket", pa.uint16()), pa.field("content_hash", pa.uint64()), *_KEY])
INDEX_BANDS = pa.schema(
    [pa.field("bucket", pa.uint16()), pa.field("band", pa.int16()), pa.field("band_hash", pa.uint64()), *_KEY]
)
INDEX_SIGNATURES = pa.schema(
    [
        pa.field("bucket", pa.uint16()),
        *_KEY,
        pa.field("signature", pa.large_binary()),
        pa.field("fingerprints", pa.large_binary()),
    ]
)
# a candidate pair: u (index document: kind 0, or batch document: kind 1) and batch document v
PAIR_COLUMNS = [
    "u_kind",
    "u_doc_id",
    "u_snapshot",
    "u_shard",
    "u_row",
    "u_bucket",
    "v_doc_id",
    "v_snapshot",
    "v_shard",
    "v_row",
    "v_bucket",
]


# ----------------------------------------------------------------------------------- hash space
def band_keys(band: np.ndarray | int, hashes: np.ndarray) -> np.ndarray:
    """One uint64 per ``(band, hash)`` (band -1: content hashes of exact rows): equal pairs give
    equal keys; different pairs collide with probability 2^-64."""
    salt = (np.asarray(band, dtype=np.int64) + 1).astype(np.uint64) * _BAND_SALT
    with np.errstate(over="ignore"):
        return mix64(np.asarray(hashes, dtype=np.uint64) ^ salt)


def band_buckets(band: np.ndarray | int, hashes: np.ndarray) -> np.ndarray:
    """Bucket of each ``(band, hash)``: the top 12 bits of its :func:`band_keys`."""
    return (band_keys(band, hashes) >> _BUCKET_SHIFT).astype(np.uint16)


def doc_buckets(snapshots: list[str], doc_ids: list[str]) -> np.ndarray:
    """Bucket of each document's payload: the top 12 bits of XXH3-64 of ``snapshot \\0 doc_id``."""
    h = xxhash.xxh3_64_intdigest
    return np.array([h(f"{s}\0{d}".encode()) >> 52 for s, d in zip(snapshots, doc_ids)], dtype=np.uint16)


def partition_of(buckets: np.ndarray, partitions: int) -> np.ndarray:
    return (np.asarray(buckets, dtype=np.int64) * partitions) // INDEX_BUCKETS


def partition_range(partition: int, partitions: int) -> tuple[int, int]:
    """Buckets ``[lo, hi)`` of one of ``partitions`` contiguous ranges."""
    return -(-partition * INDEX_BUCKETS // partitions), -(-(partition + 1) * INDEX_BUCKETS // partitions)


# ------------------------------------------------------------------------------- per input shard
@dataclass(frozen=True)
class ShardSketches:
    exact: pa.Table  # EXACT_ROWS
    bands: pa.Table  # BAND_ROWS
    payload: pa.Table  # PAYLOAD_ROWS
    considered: int


def shard_sketches(frame: pl.DataFrame, shard: int, first_row: int, config: DedupConfig) -> ShardSketches:
    """Exact, band and payload rows of the considered documents of ``frame`` (rows ``first_row``..
    of input shard ``shard``; columns ``doc_id``, ``text``, ``snapshot``, ``drop_reason``)."""
    open_rows = (frame["drop_reason"].is_null() & frame["text"].is_not_null()).to_numpy()
    idx = np.flatnonzero(open_rows)
    data, offsets = normalize_buffers(frame["text"].gather(idx))
    nonempty = np.diff(offsets) > 0
    rows = idx[nonempty]
    n = len(rows)
    ids = frame["doc_id"].cast(pl.Utf8).gather(rows).to_arrow().cast(pa.large_string())
    snaps = frame["snapshot"].cast(pl.Utf8).gather(rows).to_arrow().cast(pa.large_string())
    key = [ids, snaps, pa.array(np.full(n, shard, np.int32)), pa.array(rows + first_row)]
    hashes = content_hash((data, offsets))[nonempty]
    exact = pa.table([pa.array(band_buckets(-1, hashes)), pa.array(hashes), *key], schema=EXACT_ROWS)
    if not config.minhash or n == 0:
        return ShardSketches(exact, BAND_ROWS.empty_table(), PAYLOAD_ROWS.empty_table(), n)
    offsets = np.concatenate(([0], offsets[1:][nonempty]))  # empty documents hold no bytes
    shingles = shingle_hashes((data, offsets), config.ngram)
    sig = signatures_from_shingles(shingles, config.num_perm, config.seed)
    bands = lsh.band_hashes(sig, config.bands, config.rows)  # (n, bands)
    band_no = np.repeat(np.arange(config.bands, dtype=np.int16)[None, :], n, axis=0).reshape(-1)
    take = pa.array(np.repeat(np.arange(n), config.bands))
    band_rows = pa.table(
        [
            pa.array(band_buckets(band_no, bands.reshape(-1))),
            pa.array(band_no),
            pa.array(bands.reshape(-1)),
            *(c.take(take) for c in key),
        ],
        schema=BAND_ROWS,
    )
    payload = pa.table(
        [
            pa.array(doc_buckets(snaps.to_pylist(), ids.to_pylist())),
            *key,
            signature_array(sig),
            Fingerprints.of(shingles).to_arrow(),
        ],
        schema=PAYLOAD_ROWS,
    )
    return ShardSketches(exact, band_rows, payload, n)


# ------------------------------------------------------------------------------- per partition
def _rank(config: DedupConfig, prior: bool) -> pl.Expr:
    """Snapshot sort key (see :func:`~.pipeline.snapshot_ranks`; index snapshots missing from the
    order rank first, batch ones were refused before the run)."""
    if config.snapshot_order is None:
        return pl.col("snapshot").cast(pl.Utf8).alias("rank")
    ranks = {s: i for i, s in enumerate(config.snapshot_order)}
    return pl.col("snapshot").replace_strict(ranks, default=-1 if prior else None, return_dtype=pl.Int64).alias("rank")


def exact_duplicates(batch: pl.DataFrame, prior: pl.DataFrame | None, config: DedupConfig) -> pl.DataFrame:
    """Verdicts of the batch rows (:data:`EXACT_ROWS`) that copy an earlier one: columns ``shard``,
    ``row``, ``keeper_prior`` (the keeper is an index document), ``keeper_doc_id``,
    ``keeper_shard``, ``keeper_row`` (-1 for index keepers). ``prior``: index exact rows
    (``content_hash``, ``doc_id``, ``snapshot``) sharing hashes with the batch."""
    b = batch.with_columns(_rank(config, prior=False)).sort("content_hash", "rank", "doc_id", "shard", "row")
    first = b.unique("content_hash", keep="first", maintain_order=True).select(
        "content_hash", keeper_doc_id="doc_id", keeper_shard="shard", keeper_row="row"
    )
    matched = pl.DataFrame(schema={"content_hash": pl.UInt64, "keeper_doc_id": pl.Utf8})
    if prior is not None and prior.height:
        matched = (
            prior.with_columns(_rank(config, prior=True))
            .sort("rank", "doc_id", maintain_order=True)
            .unique("content_hash", keep="first", maintain_order=True)
            .select("content_hash", keeper_doc_id=pl.col("doc_id").cast(pl.Utf8))
        )
    to_prior = b.join(matched, on="content_hash", how="inner").select(
        "shard",
        "row",
        keeper_prior=pl.lit(True),
        keeper_doc_id="keeper_doc_id",
        keeper_shard=pl.lit(-1, pl.Int32),
        keeper_row=pl.lit(-1, pl.Int64),
    )
    to_batch = (
        b.join(matched, on="content_hash", how="anti")
        .join(first, on="content_hash")
        .filter((pl.col("shard") != pl.col("keeper_shard")) | (pl.col("row") != pl.col("keeper_row")))
        .select(
            "shard",
            "row",
            keeper_prior=pl.lit(False),
            keeper_doc_id="keeper_doc_id",
            keeper_shard="keeper_shard",
            keeper_row="keeper_row",
        )
    )
    return pl.concat([to_prior, to_batch]).with_columns(pl.col("keeper_doc_id").cast(pl.Utf8))


def anchor_pairs(batch: pl.DataFrame, prior: pl.DataFrame | None, config: DedupConfig) -> pl.DataFrame:
    """Candidate pairs (:data:`PAIR_COLUMNS`) of one partition: in every ``(band, band_hash)``
    group holding a batch row (:data:`BAND_ROWS`, exact copies already removed), each member
    paired with the group's first member; index rows (``band``, ``band_hash``, ``doc_id``,
    ``snapshot``) come first. Pairs of two index documents are dropped. Unique."""
    cols = ["band", "band_hash", "kind", "rank", "doc_id", "snapshot", "shard", "row"]
    members = [batch.with_columns(_rank(config, prior=False), kind=pl.lit(1, pl.Int8)).select(cols)]
    if prior is not None and prior.height:
        hits = prior.join(batch.select("band", "band_hash").unique(), on=["band", "band_hash"], how="semi")
        members.insert(
            0,
            hits.with_columns(
                _rank(config, prior=True), kind=pl.lit(0, pl.Int8), shard=pl.lit(-1, pl.Int32), row=pl.lit(-1, pl.Int64)
            ).select(cols),
        )
    m = pl.concat([f.with_columns(pl.col("doc_id").cast(pl.Utf8), pl.col("snapshot").cast(pl.Utf8)) for f in members])
    m = m.sort(cols)
    group = ["band", "band_hash"]
    anchor = {f"u_{c}": pl.col(c).first().over(group) for c in ("kind", "doc_id", "snapshot", "shard", "row")}
    pairs = (
        m.with_columns(**anchor, is_first=pl.int_range(pl.len()).over(group) == 0)
        .filter(~pl.col("is_first") & (pl.col("kind") == 1))
        .select(
            "u_kind",
            "u_doc_id",
            "u_snapshot",
            "u_shard",
            "u_row",
            v_doc_id="doc_id",
            v_snapshot="snapshot",
            v_shard="shard",
            v_row="row",
        )
        .unique(["u_kind", "u_snapshot", "u_doc_id", "u_shard", "u_row", "v_shard", "v_row"], maintain_order=True)
    )
    return pairs.with_columns(
        u_bucket=pl.Series(doc_buckets(pairs["u_snapshot"].to_list(), pairs["u_doc_id"].to_list())),
        v_bucket=pl.Series(doc_buckets(pairs["v_snapshot"].to_list(), pairs["v_doc_id"].to_list())),
    ).select(PAIR_COLUMNS)


def pair_jaccard(pairs: pl.DataFrame, config: DedupConfig) -> np.ndarray:
    """Which pairs are duplicates, as :func:`~.pipeline.verify_pairs` decides: ``pairs`` holds the
    payloads ``u_signature``, ``v_signature``, ``u_fingerprints``, ``v_fingerprints`` (an index
    document may have no fingerprints: signature estimate; nor a signature: accepted)."""
    if config.verify == "none" or pairs.height == 0:
        return np.ones(pairs.height, dtype=bool)
    sig_u, has_u = signatures_of(pairs["u_signature"], config.num_perm)
    sig_v, _ = signatures_of(pairs["v_signature"], config.num_perm)
    ok = (lsh.estimated_jaccard(sig_u, sig_v) >= config.threshold) | ~has_u
    if config.verify == "exact":
        has_fp = pairs["u_fingerprints"].is_not_null().to_numpy()
        exact = pairs.filter(pl.Series(has_fp))
        j = lsh.fingerprint_jaccard(
            Fingerprints.from_arrow(exact["u_fingerprints"].to_arrow()),
            Fingerprints.from_arrow(exact["v_fingerprints"].to_arrow()),
        )
        ok[has_fp] = j >= config.threshold
    return ok


# ------------------------------------------------------------------------------------- once
def _edge_ends(edges: pl.DataFrame, side: str) -> pl.DataFrame:
    kind = pl.col("u_kind").cast(pl.Int8) if side == "u" else pl.lit(1, pl.Int8)
    return edges.select(
        kind=kind,
        doc_id=pl.col(f"{side}_doc_id").cast(pl.Utf8),
        snapshot=pl.col(f"{side}_snapshot").cast(pl.Utf8),
        shard=f"{side}_shard",
        row=f"{side}_row",
    )


def near_verdicts(edges: pl.DataFrame, config: DedupConfig) -> pl.DataFrame:
    """The verdict of every near duplicate: ``shard``, ``row``, ``duplicate_of``, ``drop_reason``,
    ``cross_snapshot``. ``edges``: verified pairs (``u_kind``, ``u_doc_id``, ``u_snapshot``,
    ``u_shard``, ``u_row``, ``v_doc_id``, ``v_snapshot``, ``v_shard``, ``v_row``). A connected
    component's keeper is its first node in priority order."""
    key = ["kind", "doc_id", "snapshot", "shard", "row"]
    u, v = _edge_ends(edges, "u"), _edge_ends(edges, "v")
    nodes = (
        pl.concat([u, v])
        .unique()
        .with_columns(_rank(config, prior=True))
        .sort("kind", "rank", "doc_id", "shard", "row")
        .drop("rank")
        .with_row_index("node")
    )
    u_id, v_id = (e.join(nodes, on=key, how="left", maintain_order="left")["node"].to_numpy().astype(np.int64) for e in (u, v))
    label = lsh.connected_components(nodes.height, u_id, v_id)
    keeper = nodes[label]
    return (
        nodes.with_columns(keeper_kind=keeper["kind"], keeper_doc_id=keeper["doc_id"])
        .filter(pl.Series(label != np.arange(nodes.height)) & (pl.col("kind") == 1))
        .select(
            "shard",
            "row",
            duplicate_of="keeper_doc_id",
            drop_reason=pl.lit(DROP_MINHASH),
            cross_snapshot=pl.col("keeper_kind") == 0,
        )
        .sort("shard", "row")
    )


def exact_copy_verdicts(exact: pl.DataFrame, near: pl.DataFrame) -> pl.DataFrame:
    """The verdicts of exact copies (``exact``: :func:`exact_duplicates` of any set of
    partitions), in :func:`near_verdicts`' columns: a copy follows its keeper's own verdict, so a
    copy of a near duplicate names that duplicate's keeper. ``near``: every near verdict, or any
    superset of those whose row keeps one of these copies."""
    follow = near.select(keeper_shard="shard", keeper_row="row", via="duplicate_of", via_cross="cross_snapshot")
    return exact.join(follow, on=["keeper_shard", "keeper_row"], how="left").select(
        "shard",
        "row",
        duplicate_of=pl.coalesce("via", "keeper_doc_id"),
        drop_reason=pl.lit(DROP_EXACT),
        cross_snapshot=pl.col("keeper_prior") | pl.col("via_cross").fill_null(False),
    )
