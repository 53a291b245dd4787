"""``deduplicate``: exact + MinHash-LSH dedup of one in-memory batch against itself and a prior index.

This is the reference implementation: the dedup stage (``dataplatform.stages.dedup``) runs the
same algorithm out of core, bucket by bucket, and its tests prove both give the same result. It
is also the convenient way to dedup a batch that fits in memory.

Phases (each a function below):

1. :func:`considered_documents` - rows with no ``drop_reason`` and a non-empty normalised text,
   in priority order ``(snapshot rank, doc_id, input row)``: node ``i`` of the batch.
2. :func:`exact_pass` - normalised-text hash; within the batch the first node of a hash is kept,
   and every node whose hash a prior snapshot kept points at that prior document.
3. :func:`minhash_pass` - signatures, band hashes and shingle fingerprints of the exact
   survivors; prior documents sharing a band become LSH nodes ``0..k-1`` (they win ties); one
   candidate pair per (bucket member, bucket's first node).
4. :func:`verify_pairs` - the pairs' Jaccard per ``config.verify``.
5. :func:`cluster` - connected components of the verified pairs; the smallest node of a
   component (a prior document if any, else the batch's highest priority) is the keeper.
6. :func:`assemble` - ``duplicate_of`` / ``drop_reason`` per row, stats and the index rows of
   the kept documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from . import lsh
from .config import DedupConfig
from .index import EXACT_BAND, INDEX_SCHEMA, as_index_frame, build_index_rows, empty_index, signatures_of
from .minhash import Fingerprints, shingle_hashes, signatures_from_shingles
from .normalize import content_hash, normalize_buffers

__all__ = ["DROP_EXACT", "DROP_MINHASH", "DedupResult", "SignatureIndex", "deduplicate"]

DROP_EXACT = "duplicate:exact"
DROP_MINHASH = "duplicate:minhash"
STAT_KEYS = (
    "input_rows",
    "considered",
    DROP_EXACT,
    DROP_MINHASH,
    "cross_snapshot",
    "kept",
    "candidate_pairs",
    "verified_pairs",
    "index_rows",
)


@dataclass(frozen=True)
class DedupResult:
    """What :func:`deduplicate` returns.

    * ``frame``: the input with ``duplicate_of`` (doc_id of the kept document, or null) and
      ``drop_reason`` filled (``duplicate:exact`` / ``duplicate:minhash``) where it was null.
    * ``index_rows``: :data:`~.index.INDEX_SCHEMA` rows of this batch's kept documents, to append
      to the index for the next snapshot.
    * ``stats``: counts for metadata: ``input_rows``, ``considered`` (null drop_reason and
      non-empty normalised text), ``duplicate:exact``, ``duplicate:minhash``, ``cross_snapshot``
      (duplicates whose keeper is in the prior index), ``kept``, ``candidate_pairs``,
      ``verified_pairs``, ``index_rows``.
    """

    frame: pl.DataFrame
    index_rows: pa.Table
    stats: dict[str, int]


@dataclass(frozen=True)
class Considered:
    """The documents dedup looks at, in priority order: node ``i`` is input row ``rows[i]``; its
    normalised text is document ``doc_of_node[i]`` of the ``(data, offsets)`` buffers."""

    rows: np.ndarray
    ids: np.ndarray
    snapshots: np.ndarray
    data: np.ndarray
    offsets: np.ndarray
    doc_of_node: np.ndarray

    @property
    def size(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class ExactPass:
    content_hash: np.ndarray  # uint64 per node
    keeper: np.ndarray  # batch node each node is an exact copy of (itself when none)
    prior_keeper: np.ndarray  # object: doc_id of the prior document a node copies, or None
    alive: np.ndarray  # bool: survives exact dedup


@dataclass(frozen=True)
class MinhashPass:
    """LSH over the exact survivors ``live``; LSH node ``x < k`` is prior document ``prior_ids[x]``,
    node ``k + j`` is batch node ``live[j]``."""

    live: np.ndarray
    signatures: np.ndarray  # (len(live), num_perm)
    band_hashes: np.ndarray  # (len(live), bands)
    fingerprints: Fingerprints  # document j = live[j]
    prior_ids: np.ndarray
    prior_signatures: np.ndarray  # (k, num_perm)
    prior_has_signature: np.ndarray  # bool (k,)
    prior_fingerprints: Fingerprints  # empty for prior documents indexed without them
    prior_has_fingerprints: np.ndarray  # bool (k,)
    u: np.ndarray  # candidate pairs over LSH nodes, u < v
    v: np.ndarray

    @property
    def k(self) -> int:
        return len(self.prior_ids)


@dataclass(frozen=True)
class Clusters:
    minhash_dup: np.ndarray  # bool per batch node
    keeper: np.ndarray  # batch node kept for a near-duplicate in the batch (itself otherwise)
    prior_keeper: np.ndarray  # object: prior doc_id kept for a near-duplicate, or None


def snapshot_ranks(snapshots: np.ndarray, config: DedupConfig) -> np.ndarray:
    """Sort key of each batch document's snapshot: its rank in ``config.snapshot_order``, or the
    snapshot name itself (Common Crawl names sort chronologically)."""
    if config.snapshot_order is None:
        return snapshots
    rank_of = {s: i for i, s in enumerate(config.snapshot_order)}
    unknown = sorted(set(snapshots.tolist()) - rank_of.keys())
    if unknown:
        raise ValueError(f"DedupConfig.snapshot_order: snapshot(s) {unknown[:5]} not listed")
    return np.array([rank_of[s] for s in snapshots.tolist()], dtype=np.int64)


def order_prior(df: pl.DataFrame, config: DedupConfig) -> pl.DataFrame:
    """Index rows sorted by ``(snapshot rank, doc_id)`` so that 'first' means the keeper; a
    snapshot missing from ``config.snapshot_order`` ranks first."""
    if config.snapshot_order is not None:
        rank = pl.col("snapshot").replace_strict(
            {s: i for i, s in enumerate(config.snapshot_order)}, default=-1, return_dtype=pl.Int64
        )
        return df.sort(rank, "doc_id", maintain_order=True)
    return df.sort("snapshot", "doc_id", maintain_order=True)


def considered_documents(df: pl.DataFrame, config: DedupConfig) -> Considered:
    open_rows = np.flatnonzero((df["drop_reason"].is_null() & df["text"].is_not_null()).to_numpy())
    texts = df["text"].gather(open_rows) if len(open_rows) < df.height else df["text"]
    data, offsets = normalize_buffers(texts)
    nonempty = np.diff(offsets) > 0
    rows = open_rows[nonempty]
    ids = df["doc_id"].cast(pl.Utf8).to_numpy()[rows].astype(str)
    snaps = df["snapshot"].cast(pl.Utf8).to_numpy()[rows].astype(str)
    order = np.lexsort((np.arange(len(rows)), ids, snapshot_ranks(snaps, config)))
    return Considered(rows[order], ids[order], snaps[order], data, offsets, np.flatnonzero(nonempty)[order])


def exact_pass(nodes: Considered, prior: pl.DataFrame | None, config: DedupConfig) -> ExactPass:
    m = nodes.size
    hashes = content_hash((nodes.data, nodes.offsets))[nodes.doc_of_node]
    keeper = np.arange(m)
    prior_keeper = np.full(m, None, dtype=object)
    if not config.exact:
        return ExactPass(hashes, keeper, prior_keeper, np.ones(m, dtype=bool))
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    keeper = first[inverse]  # first occurrence = highest priority (nodes are in priority order)
    alive = keeper == np.arange(m)
    if prior is not None:
        exact_rows = prior.filter(pl.col("band") == EXACT_BAND).unique("band_hash", keep="first", maintain_order=True)
        hit = pl.DataFrame({"band_hash": pl.Series(hashes, dtype=pl.UInt64), "node": np.arange(m)}).join(
            exact_rows, on="band_hash", how="inner"
        )
        if hit.height:
            # every copy of a hash that an earlier snapshot kept points at that document
            prior_keeper[hit["node"].to_numpy()] = hit["doc_id"].to_numpy()
            matched = (prior_keeper != None)[keeper]  # noqa: E711
            prior_keeper = np.where(matched, prior_keeper[keeper], None)
            alive &= ~matched
    return ExactPass(hashes, keeper, prior_keeper, alive)


def _live_sketches(nodes: Considered, live: np.ndarray, config: DedupConfig):
    """Signatures, band hashes and fingerprints of the live nodes (row j = node live[j])."""
    buf_docs = np.sort(nodes.doc_of_node[live])
    lens = np.diff(nodes.offsets)
    pick = np.zeros(len(lens), dtype=bool)
    pick[buf_docs] = True
    if pick.all():
        data, offsets = nodes.data, nodes.offsets
    else:  # bytes of the live documents, in buffer order (a byte mask: no per-byte index array)
        data = nodes.data[np.repeat(pick, lens)]
        offsets = np.zeros(len(buf_docs) + 1, dtype=np.int64)
        np.cumsum(lens[buf_docs], out=offsets[1:])
    shingles = shingle_hashes((data, offsets), config.ngram)
    row = np.searchsorted(buf_docs, nodes.doc_of_node[live])
    sig = signatures_from_shingles(shingles, config.num_perm, config.seed)[row]
    return sig, lsh.band_hashes(sig, config.bands, config.rows), Fingerprints.of(shingles).take(row)


@dataclass(frozen=True)
class _PriorNodes:
    ids: np.ndarray  # doc_id of LSH node x < k
    hits: pl.DataFrame  # band, band_hash, node
    signatures: np.ndarray
    has_signature: np.ndarray
    fingerprints: Fingerprints
    has_fingerprints: np.ndarray


def _prior_nodes(prior: pl.DataFrame, bands: np.ndarray, config: DedupConfig) -> _PriorNodes:
    """Prior documents sharing a band hash with the batch, as LSH nodes in priority order, with
    the verification payload of their exact rows."""
    n_live = len(bands)
    batch_bands = pl.DataFrame(
        {
            "band": pl.Series(np.tile(np.arange(config.bands, dtype=np.int16), n_live)),
            "band_hash": pl.Series(bands.reshape(-1), dtype=pl.UInt64),
        }
    ).unique()
    hits = prior.filter(pl.col("band") >= 0).join(batch_bands, on=["band", "band_hash"], how="semi")
    docs = order_prior(hits.select("doc_id", "snapshot").unique(maintain_order=True), config).with_row_index("node")
    hits = hits.join(docs, on=["doc_id", "snapshot"], how="left")
    exact_rows = (
        prior.filter(pl.col("band") == EXACT_BAND)
        .join(docs, on=["doc_id", "snapshot"], how="inner")
        .unique("node", keep="first", maintain_order=True)
        .sort("node")
    )
    k = docs.height
    signatures = np.full((k, config.num_perm), 0xFFFFFFFF, dtype=np.uint32)
    has_signature = np.zeros(k, dtype=bool)
    nodes = exact_rows["node"].to_numpy().astype(np.int64)
    sig, present = signatures_of(exact_rows["signature"], config.num_perm)
    signatures[nodes], has_signature[nodes] = sig, present
    # fingerprints of node x: document x of a table with one (possibly empty) value per node
    fp_col = pl.DataFrame({"node": np.arange(k, dtype=np.int64)}).join(
        exact_rows.select(pl.col("node").cast(pl.Int64), "fingerprints"), on="node", how="left", maintain_order="left"
    )
    has_fingerprints = fp_col["fingerprints"].is_not_null().to_numpy()
    fingerprints = Fingerprints.from_arrow(fp_col["fingerprints"].to_arrow())
    return _PriorNodes(docs["doc_id"].to_numpy(), hits, signatures, has_signature, fingerprints, has_fingerprints)


def minhash_pass(nodes: Considered, exact: ExactPass, prior: pl.DataFrame | None, config: DedupConfig) -> MinhashPass:
    live = np.flatnonzero(exact.alive)
    sig, bands, fingerprints = _live_sketches(nodes, live, config)
    empty = pl.DataFrame(
        schema={
            "band": pl.Int16,
            "band_hash": pl.UInt64,
            "node": pl.UInt32,
            "doc_id": pl.Utf8,
            "snapshot": pl.Utf8,
            "signature": pl.Binary,
            "fingerprints": pl.Binary,
        }
    )
    found = _prior_nodes(prior if prior is not None else empty, bands, config)
    k = len(found.ids)
    u, v = lsh.candidate_pairs(
        np.concatenate(
            [found.hits["node"].to_numpy().astype(np.int64), np.repeat(np.arange(len(live), dtype=np.int64) + k, config.bands)]
        ),
        np.concatenate(
            [found.hits["band"].to_numpy().astype(np.int64), np.tile(np.arange(config.bands, dtype=np.int64), len(live))]
        ),
        np.concatenate([found.hits["band_hash"].to_numpy().astype(np.uint64), bands.reshape(-1)]),
    )
    keep = v >= k  # pairs of two prior documents: both are kept already
    return MinhashPass(
        live,
        sig,
        bands,
        fingerprints,
        found.ids,
        found.signatures,
        found.has_signature,
        found.fingerprints,
        found.has_fingerprints,
        u[keep],
        v[keep],
    )


def verify_pairs(mh: MinhashPass, config: DedupConfig) -> np.ndarray:
    """Which candidate pairs are duplicates. ``verify="exact"``: the exact Jaccard of the pair's
    fingerprint sets (a prior document indexed without fingerprints: the signature estimate);
    ``"signature"``: the signature estimate; ``"none"``: every pair. A prior document with neither
    payload is accepted."""
    if config.verify == "none" or len(mh.u) == 0:
        return np.ones(len(mh.u), dtype=bool)
    # payloads by LSH node: prior documents 0..k-1, then the live batch documents
    signatures = np.concatenate([mh.prior_signatures, mh.signatures])
    has_signature = np.concatenate([mh.prior_has_signature, np.ones(len(mh.live), dtype=bool)])
    ok = (lsh.estimated_jaccard(signatures[mh.u], signatures[mh.v]) >= config.threshold) | ~has_signature[mh.u]
    if config.verify == "exact":
        fingerprints = Fingerprints(
            np.concatenate([mh.prior_fingerprints.values, mh.fingerprints.values]),
            np.concatenate([mh.prior_fingerprints.offsets, mh.fingerprints.offsets[1:] + mh.prior_fingerprints.offsets[-1]]),
        )
        has_fp = np.concatenate([mh.prior_has_fingerprints, np.ones(len(mh.live), dtype=bool)])[mh.u]
        u, v = mh.u[has_fp], mh.v[has_fp]
        ok[has_fp] = lsh.fingerprint_jaccard(fingerprints.take(u), fingerprints.take(v)) >= config.threshold
    return ok


def cluster(mh: MinhashPass, ok: np.ndarray, size: int) -> Clusters:
    keeper = np.arange(size)
    prior_keeper = np.full(size, None, dtype=object)
    dup = np.zeros(size, dtype=bool)
    k, n_live = mh.k, len(mh.live)
    label = lsh.connected_components(k + n_live, mh.u[ok], mh.v[ok])[k:]
    is_dup = label != np.arange(n_live) + k
    from_prior = is_dup & (label < k)
    in_batch = is_dup & (label >= k)
    dup[mh.live[is_dup]] = True
    prior_keeper[mh.live[from_prior]] = mh.prior_ids[label[from_prior]]
    keeper[mh.live[in_batch]] = mh.live[label[in_batch] - k]
    return Clusters(dup, keeper, prior_keeper)


def assemble(
    df: pl.DataFrame,
    nodes: Considered,
    exact: ExactPass,
    near: Clusters,
    mh: MinhashPass | None,
    verified: np.ndarray | None,
    with_fingerprints: bool,
) -> DedupResult:
    m = nodes.size
    dup_of = np.full(m, None, dtype=object)
    reason = np.full(m, None, dtype=object)
    # near-duplicates point at their cluster's keeper
    mh_prior = near.minhash_dup & (near.prior_keeper != None)  # noqa: E711
    mh_batch = near.minhash_dup & ~mh_prior
    dup_of[mh_prior] = near.prior_keeper[mh_prior]
    dup_of[mh_batch] = nodes.ids[near.keeper[mh_batch]]
    reason[near.minhash_dup] = DROP_MINHASH
    cross = mh_prior.copy()
    # exact copies point at the final keeper of their exact group
    ex_prior = exact.prior_keeper != None  # noqa: E711
    ex_batch = (exact.keeper != np.arange(m)) & ~ex_prior
    dup_of[ex_prior] = exact.prior_keeper[ex_prior]
    target = exact.keeper[ex_batch]  # an alive node; follow it if MinHash dropped it
    dup_of[ex_batch] = np.where(dup_of[target] != None, dup_of[target], nodes.ids[target])  # noqa: E711
    cross |= ex_prior
    cross[np.flatnonzero(ex_batch)] = cross[target]
    reason[ex_prior | ex_batch] = DROP_EXACT

    kept = exact.alive & ~near.minhash_dup
    kept_live = kept[mh.live] if mh is not None else None
    index_rows = build_index_rows(
        nodes.ids[kept],
        nodes.snapshots[kept],
        exact.content_hash[kept],
        mh.band_hashes[kept_live] if mh is not None else None,
        mh.signatures[kept_live] if mh is not None else None,
        mh.fingerprints.take(np.flatnonzero(kept_live)) if mh is not None and with_fingerprints else None,
    )
    n_rows = df.height
    row_dup_of = np.full(n_rows, None, dtype=object)
    row_reason = np.full(n_rows, None, dtype=object)
    row_dup_of[nodes.rows] = dup_of
    row_reason[nodes.rows] = reason
    frame = df.with_columns(
        pl.Series("duplicate_of", row_dup_of.tolist(), dtype=pl.Utf8),
        pl.coalesce(pl.col("drop_reason"), pl.Series("r", row_reason.tolist(), dtype=pl.Utf8)).alias("drop_reason"),
    )
    stats = dict.fromkeys(STAT_KEYS, 0) | {
        "input_rows": n_rows,
        "considered": m,
        DROP_EXACT: int((ex_prior | ex_batch).sum()),
        DROP_MINHASH: int(near.minhash_dup.sum()),
        "cross_snapshot": int(cross.sum()),
        "kept": int(kept.sum()),
        "index_rows": index_rows.num_rows,
    }
    if mh is not None:
        stats |= {"candidate_pairs": int(len(mh.u)), "verified_pairs": int(verified.sum())}
    return DedupResult(frame, index_rows, stats)


def deduplicate(
    df: pl.DataFrame,
    *,
    index: pa.Table | pl.DataFrame | SignatureIndex | None = None,
    config: DedupConfig | None = None,
) -> DedupResult:
    """Exact + MinHash-LSH deduplication of a batch, against itself and a prior index.

    ``df`` has ``doc_id``, ``text``, ``snapshot`` and optionally ``drop_reason``. Rows whose
    ``drop_reason`` is already set pass through untouched and are not indexed; so do rows whose
    normalised text is empty. The keeper of each duplicate group is an index document if there
    is one (earlier snapshots were already published), else the member with the smallest
    ``(snapshot rank, doc_id)``; everyone else gets ``duplicate_of`` = keeper's doc_id and
    ``drop_reason`` = ``duplicate:exact`` (same normalised-text hash) or ``duplicate:minhash``
    (LSH cluster, verified per ``config.verify``). Output row order equals input row order.
    """
    config = config or DedupConfig()
    missing = {"doc_id", "text", "snapshot"} - set(df.columns)
    if missing:
        raise ValueError(f"deduplicate: input is missing column(s) {sorted(missing)}")
    if "drop_reason" not in df.columns:
        df = df.with_columns(pl.lit(None, pl.Utf8).alias("drop_reason"))
    nodes = considered_documents(df, config)
    prior = as_index_frame(index.table if isinstance(index, SignatureIndex) else index)
    prior = order_prior(prior, config) if prior is not None else None
    exact = exact_pass(nodes, prior, config)
    mh = ok = None
    near = Clusters(np.zeros(nodes.size, dtype=bool), np.arange(nodes.size), np.full(nodes.size, None, dtype=object))
    if config.minhash and exact.alive.any():
        mh = minhash_pass(nodes, exact, prior, config)
        ok = verify_pairs(mh, config)
        near = cluster(mh, ok, nodes.size)
    return assemble(df, nodes, exact, near, mh, ok, config.verify == "exact")


class SignatureIndex:
    """Cross-snapshot dedup index in memory: ``query`` a batch against it, then ``append`` its kept
    documents.

    >>> idx = SignatureIndex()
    >>> result_a, stats_a = idx.deduplicate(snapshot_a)   # query + append
    >>> result_b = idx.query(snapshot_b)                  # duplicate_of -> docs of snapshot A
    """

    def __init__(self, table: pa.Table | None = None, config: DedupConfig | None = None):
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
        return deduplicate(df, index=self.table, config=self.config).frame

    def append(self, rows: pa.Table) -> None:
        """Add index rows (as returned by :func:`deduplicate`)."""
        if rows.num_rows:
            self._parts.append(rows.cast(INDEX_SCHEMA))

    def deduplicate(self, df: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
        """``query`` + ``append`` the batch's kept documents; returns (result, stats)."""
        res = deduplicate(df, index=self.table, config=self.config)
        self.append(res.index_rows)
        return res.frame, res.stats

    def write_parquet(self, path: str | Path) -> None:
        pq.write_table(self.table, path, compression="zstd")

    @classmethod
    def read_parquet(cls, path: str | Path, config: DedupConfig | None = None) -> SignatureIndex:
        return cls(pq.read_table(path), config)
