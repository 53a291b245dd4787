"""``deduplicate``: exact + MinHash-LSH dedup of one batch against itself and a prior index."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from . import lsh
from .config import DedupConfig
from .index import EXACT_BAND, SignatureIndex, as_index_frame, build_index_rows, empty_index
from .minhash import shingle_hashes, signatures_from_shingles
from .normalize import content_hash, normalize_buffers

__all__ = ["DedupResult", "deduplicate", "DROP_EXACT", "DROP_MINHASH"]

DROP_EXACT = "duplicate:exact"
DROP_MINHASH = "duplicate:minhash"


class DedupResult(tuple):
    """``(frame, index_rows)`` - unpacks as a pair - with ``.stats`` attached.

    * ``frame``: the input with ``duplicate_of`` (doc_id of the kept document, or null) and
      ``drop_reason`` filled (``duplicate:exact`` / ``duplicate:minhash``) where it was null.
    * ``index_rows``: :data:`~.index.INDEX_SCHEMA` rows of this batch's kept documents, to append
      to the index for the next snapshot.
    * ``stats``: counts for metadata: ``input_rows``, ``considered`` (null drop_reason and
      non-empty normalised text), ``duplicate:exact``, ``duplicate:minhash``,
      ``cross_snapshot`` (duplicates whose keeper is in the prior index), ``kept``,
      ``candidate_pairs``, ``verified_pairs``, ``index_rows``.
    """

    stats: dict[str, int]

    def __new__(cls, frame: pl.DataFrame, index_rows: pa.Table, stats: dict[str, int]):
        self = super().__new__(cls, (frame, index_rows))
        self.stats = stats
        return self

    @property
    def frame(self) -> pl.DataFrame:
        return self[0]

    @property
    def index_rows(self) -> pa.Table:
        return self[1]


def _priority_order(doc_ids: np.ndarray, snapshots: np.ndarray, config: DedupConfig) -> np.ndarray:
    """Permutation sorting documents by ``(snapshot rank, doc_id)`` (stable)."""
    if config.snapshot_order is not None:
        rank_of = {s: i for i, s in enumerate(config.snapshot_order)}
        unknown = sorted(set(snapshots.tolist()) - rank_of.keys())
        if unknown:
            raise ValueError(f"DedupConfig.snapshot_order: snapshot(s) {unknown[:5]} not listed")
        ranks = np.array([rank_of[s] for s in snapshots.tolist()], dtype=np.int64)
        return np.lexsort((np.arange(len(doc_ids)), doc_ids, ranks))
    return np.lexsort((np.arange(len(doc_ids)), doc_ids, snapshots))


def _index_order_key(df: pl.DataFrame, config: DedupConfig) -> pl.DataFrame:
    """Sort index rows by ``(snapshot rank, doc_id)`` so 'first' means the keeper."""
    if config.snapshot_order is not None:
        rank = pl.col("snapshot").replace_strict(
            {s: i for i, s in enumerate(config.snapshot_order)}, default=-1, return_dtype=pl.Int64
        )
        return df.sort(rank, "doc_id", maintain_order=True)
    return df.sort("snapshot", "doc_id", maintain_order=True)


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
    n_rows = df.height
    if "drop_reason" not in df.columns:
        df = df.with_columns(pl.lit(None, pl.Utf8).alias("drop_reason"))
    stats: dict[str, Any] = {
        "input_rows": n_rows, "considered": 0, DROP_EXACT: 0, DROP_MINHASH: 0,
        "cross_snapshot": 0, "kept": 0, "candidate_pairs": 0, "verified_pairs": 0,
        "index_rows": 0,
    }
    dup_of = np.full(n_rows, None, dtype=object)
    reason = np.full(n_rows, None, dtype=object)

    def finish(rows: pa.Table) -> DedupResult:
        stats["index_rows"] = rows.num_rows
        out = df.with_columns(
            pl.Series("duplicate_of", dup_of.tolist(), dtype=pl.Utf8),
            pl.coalesce(pl.col("drop_reason"), pl.Series("r", reason.tolist(), dtype=pl.Utf8))
            .alias("drop_reason"),
        )
        return DedupResult(out, rows, stats)

    if n_rows == 0:
        return finish(empty_index())

    # ---- documents to consider, in priority order --------------------------------------
    open_mask = df["drop_reason"].is_null() & df["text"].is_not_null()
    rows_open = np.flatnonzero(open_mask.to_numpy())
    texts = df["text"].gather(rows_open) if len(rows_open) < n_rows else df["text"]
    data, offsets = normalize_buffers(texts)
    nonempty = np.diff(offsets) > 0
    rows_c = rows_open[nonempty]
    ids_all = df["doc_id"].cast(pl.Utf8).to_numpy()
    snaps_all = df["snapshot"].cast(pl.Utf8).to_numpy()
    order = _priority_order(ids_all[rows_c].astype(str), snaps_all[rows_c].astype(str), config)
    rows_c = rows_c[order]  # node i of the batch = input row rows_c[i]
    # node i's bytes: document ``doc_of_node[i]`` of the (data, offsets) buffers
    doc_of_node = np.flatnonzero(nonempty)[order]
    m = len(rows_c)
    stats["considered"] = m
    ids = ids_all[rows_c].astype(str)
    snaps = snaps_all[rows_c].astype(str)
    if m == 0:
        return finish(empty_index())

    prior = as_index_frame(index)
    if prior is not None:
        prior = _index_order_key(prior, config)

    # ---- exact --------------------------------------------------------------------------
    hashes = content_hash((data, offsets))[doc_of_node]
    exact_keeper = np.arange(m)  # batch node that each node is an exact copy of (self = none)
    exact_prior: np.ndarray = np.full(m, None, dtype=object)  # index doc_id matched, if any
    alive = np.ones(m, dtype=bool)  # survives exact dedup
    if config.exact:
        _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        exact_keeper = first[inverse]  # first occurrence = highest priority (nodes are ordered)
        alive = exact_keeper == np.arange(m)
        if prior is not None:
            ex = prior.filter(pl.col("band") == EXACT_BAND).unique("band_hash", keep="first",
                                                                    maintain_order=True)
            hit = pl.DataFrame({"band_hash": pl.Series(hashes, dtype=pl.UInt64),
                                "node": np.arange(m)}).join(ex, on="band_hash", how="inner")
            if hit.height:
                nodes = hit["node"].to_numpy()
                exact_prior[nodes] = hit["doc_id"].to_numpy()
                # every copy of a hash that an earlier snapshot kept points at that document
                matched = np.zeros(m, dtype=bool)
                matched[nodes] = True
                matched = matched[exact_keeper]
                exact_prior = np.where(matched, exact_prior[exact_keeper], None)
                alive &= ~matched

    # ---- MinHash LSH over exact survivors ----------------------------------------------
    keeper_label = np.arange(m)  # final batch keeper node of each alive node
    minhash_prior = np.full(m, None, dtype=object)
    mh_dup = np.zeros(m, dtype=bool)
    live = np.flatnonzero(alive)
    sig = bh = None
    if config.minhash and len(live):
        # bytes of the live documents, in buffer order (a byte mask: no per-byte index array)
        buf_docs = np.sort(doc_of_node[live])
        lens_all = np.diff(offsets)
        pick = np.zeros(len(lens_all), dtype=bool)
        pick[buf_docs] = True
        if pick.all():
            dl, off_l = data, offsets
        else:
            dl = data[np.repeat(pick, lens_all)]
            off_l = np.zeros(len(buf_docs) + 1, dtype=np.int64)
            np.cumsum(lens_all[buf_docs], out=off_l[1:])
        sh = shingle_hashes((dl, off_l), config.ngram)
        sig = signatures_from_shingles(sh, config.num_perm, config.seed)
        # row r of sig/sh is buffer doc buf_docs[r]; live node j is row live_row[j]
        live_row = np.searchsorted(buf_docs, doc_of_node[live])
        sig = sig[live_row]
        bh = lsh.band_hashes(sig, config.bands, config.rows)
        nl = len(live)
        # prior documents sharing a band with this batch become nodes 0..k-1 (they win ties)
        k = 0
        prior_ids = np.zeros(0, dtype=object)
        prior_sig = None
        pb = ph = pn = np.zeros(0, np.int64)
        if prior is not None:
            batch_bands = pl.DataFrame({
                "band": pl.Series(np.tile(np.arange(config.bands, dtype=np.int16), nl)),
                "band_hash": pl.Series(bh.reshape(-1), dtype=pl.UInt64),
            }).unique()
            hits = prior.filter(pl.col("band") >= 0).join(batch_bands, on=["band", "band_hash"],
                                                          how="semi")
            if hits.height:
                docs = (hits.select("doc_id", "snapshot").unique(maintain_order=True))
                docs = _index_order_key(docs, config).with_row_index("node")
                k = docs.height
                prior_ids = docs["doc_id"].to_numpy()
                hits = hits.join(docs, on=["doc_id", "snapshot"], how="left")
                pb = hits["band"].to_numpy().astype(np.int64)
                ph = hits["band_hash"].to_numpy()
                pn = hits["node"].to_numpy().astype(np.int64)
                # signatures of those prior docs, from their exact rows
                sigs = prior.filter(pl.col("band") == EXACT_BAND).join(
                    docs, on=["doc_id", "snapshot"], how="inner"
                ).filter(pl.col("signature").is_not_null())
                if sigs.height:
                    prior_sig = np.full((k, config.num_perm), 0xFFFFFFFF, dtype=np.uint32)
                    has_sig = np.zeros(k, dtype=bool)
                    raw = b"".join(sigs["signature"].to_list())
                    arr = np.frombuffer(raw, dtype="<u4")
                    if arr.size == sigs.height * config.num_perm:
                        nodes = sigs["node"].to_numpy()
                        prior_sig[nodes] = arr.reshape(-1, config.num_perm)
                        has_sig[nodes] = True
                    else:
                        raise ValueError("index: signature width does not match "
                                         f"DedupConfig.num_perm={config.num_perm}")
        nodes_b = np.repeat(np.arange(nl, dtype=np.int64) + k, config.bands)
        bands_b = np.tile(np.arange(config.bands, dtype=np.int64), nl)
        u, v = lsh.candidate_pairs(
            np.concatenate([pn, nodes_b]),
            np.concatenate([pb, bands_b]),
            np.concatenate([ph.astype(np.uint64), bh.reshape(-1)]),
        )
        keep_edge = v >= k  # prior-prior pairs are both kept already
        u, v = u[keep_edge], v[keep_edge]
        stats["candidate_pairs"] = int(len(u))
        ok = np.ones(len(u), dtype=bool)
        if config.verify != "none" and len(u):
            both = u >= k
            bu, bv = u[both] - k, v[both] - k
            if config.verify == "exact":
                j = lsh.shingle_jaccard(sh, live_row[bu], live_row[bv])
            else:
                j = lsh.estimated_jaccard(sig[bu], sig[bv])
            ok[both] = j >= config.threshold
            cross = ~both
            if cross.any() and prior_sig is not None:
                cu, cv = u[cross], v[cross] - k
                jc = lsh.estimated_jaccard(prior_sig[cu], sig[cv])
                # prior docs indexed without a signature cannot be verified: accept the band match
                ok[cross] = (jc >= config.threshold) | ~has_sig[cu]
        u, v = u[ok], v[ok]
        stats["verified_pairs"] = int(len(u))
        label = lsh.connected_components(k + nl, u, v)[k:]
        own = np.arange(nl) + k
        dup = label != own
        from_prior = dup & (label < k)
        live_dup = live[dup]
        mh_dup[live_dup] = True
        minhash_prior[live[from_prior]] = prior_ids[label[from_prior]]
        in_batch = dup & (label >= k)
        keeper_label[live[in_batch]] = live[label[in_batch] - k]

    # ---- assemble ------------------------------------------------------------------------
    node_dup_of = np.full(m, None, dtype=object)
    node_reason = np.full(m, None, dtype=object)
    cross = np.zeros(m, dtype=bool)
    # minhash dups
    mh_prior = mh_dup & (minhash_prior != None)  # noqa: E711
    node_dup_of[mh_prior] = minhash_prior[mh_prior]
    mh_batch = mh_dup & ~mh_prior
    node_dup_of[mh_batch] = ids[keeper_label[mh_batch]]
    node_reason[mh_dup] = DROP_MINHASH
    cross |= mh_prior
    # exact dups: point at the final keeper of their exact group
    ex_prior = exact_prior != None  # noqa: E711
    ex_batch = (exact_keeper != np.arange(m)) & ~ex_prior
    node_dup_of[ex_prior] = exact_prior[ex_prior]
    cross |= ex_prior
    tgt = exact_keeper[ex_batch]  # an alive node; follow it if minhash dropped it
    via = node_dup_of[tgt]
    node_dup_of[ex_batch] = np.where(via != None, via, ids[tgt])  # noqa: E711
    cross[np.flatnonzero(ex_batch)] = cross[tgt]
    node_reason[ex_prior | ex_batch] = DROP_EXACT

    dup_of[rows_c] = node_dup_of
    reason[rows_c] = node_reason
    stats[DROP_EXACT] = int((ex_prior | ex_batch).sum())
    stats[DROP_MINHASH] = int(mh_dup.sum())
    stats["cross_snapshot"] = int(cross.sum())
    kept = alive & ~mh_dup
    stats["kept"] = int(kept.sum())

    kept_live = kept[live] if len(live) else np.zeros(0, bool)
    rows = build_index_rows(
        ids[kept], snaps[kept],
        hashes[kept],
        bh[kept_live] if bh is not None else None,
        sig[kept_live] if sig is not None else None,
    )
    return finish(rows)
