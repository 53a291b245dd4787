"""Deduplication stage: ``scored`` (high quality + REWIRE candidates) -> ``deduplicated``.

Exact (normalised-text hash) and MinHash-LSH dedup within the snapshot and against every
earlier snapshot, through the ``dedup_signature_index`` dataset: one index segment per
snapshot, holding the band hashes of the documents that snapshot kept. Snapshot N reads the
segments of the snapshots whose names sort before N (Common Crawl names sort chronologically),
so earlier snapshots are never reprocessed and their copy of a document is the one kept.

The LSH clustering needs all band hashes of a snapshot at once; only ``doc_id``, ``text`` and
``snapshot`` are loaded for it (the text is needed for exact Jaccard verification).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import polars as pl
import pyarrow as pa

from dataplatform import names
from dataplatform.core.dedup import INDEX_SCHEMA, DedupConfig, deduplicate, empty_index
from dataplatform.core.schemas import DEDUPLICATED, conform
from dataplatform.io.datasets import DatasetStore
from dataplatform.stages.runner import StageReport

DEDUPLICATED_ASSET = names.DEDUPLICATED
SIGNATURE_INDEX_ASSET = names.SIGNATURE_INDEX
REWRITE_POOL_TABLE = names.REWRITE_POOL
DROPPED_TABLE = names.DROPPED
REWRITE_TABLE = names.REWRITE_CANDIDATES
SCORED_ASSET = names.SCORED
# Bumped whenever shingling/MinHash/banding changes the values of band hashes: index segments of
# another version cannot be compared with new ones and must be rebuilt.
SIGNATURE_FORMAT = "minhash-word-oph/v2"
# The DedupConfig fields that decide band-hash values; all segments of an index must agree on them.
SIGNATURE_FIELDS = ("ngram", "num_perm", "bands", "rows", "seed")


class IncompatibleSignatureIndex(ValueError):
    pass


def signature_params(config: DedupConfig) -> dict:
    return {"format": SIGNATURE_FORMAT, **{f: getattr(config, f) for f in SIGNATURE_FIELDS}}


def prior_index(store: DatasetStore, snapshot: str, config: DedupConfig = DedupConfig()) -> tuple[pa.Table, list[str]]:
    """Index segments of every snapshot sorting before ``snapshot``; refuses segments built with
    other signature parameters (their band hashes would never match, silently missing duplicates)."""
    earlier = [s for s in store.partitions(SIGNATURE_INDEX_ASSET) if s < snapshot]
    wanted = signature_params(config)
    for s in earlier:
        found = store.require_manifest(SIGNATURE_INDEX_ASSET, s)["metadata"].get("signature")
        if found != wanted:
            changed = sorted(k for k in wanted if (found or {}).get(k) != wanted[k])
            raise IncompatibleSignatureIndex(
                f"dedup_signature_index/{s} was built with {found} but this run uses {wanted} (differs in {changed}): "
                f"re-materialize deduplicated for {earlier} first, oldest first, or use the same settings")
    tables = [store.read_table(SIGNATURE_INDEX_ASSET, s) for s in earlier]
    tables = [t.cast(INDEX_SCHEMA) for t in tables if t.num_rows]
    return (pa.concat_tables(tables) if tables else empty_index()), earlier


def materialize_deduplicated(store: DatasetStore, snapshot: str, config: DedupConfig = DedupConfig()) -> tuple[StageReport, dict[str, Any]]:
    started = time.perf_counter()
    report = StageReport("deduplicated", snapshot)
    high = store.read_frame(SCORED_ASSET, snapshot, "data")
    pool = store.read_frame(SCORED_ASSET, snapshot, REWRITE_TABLE)
    frame = pl.concat([f for f in (high, pool) if f.width], how="diagonal_relaxed") if (high.width or pool.width) else pl.DataFrame()
    index, earlier = prior_index(store, snapshot, config)
    if frame.is_empty():
        frame = pl.from_arrow(DEDUPLICATED.empty_table())
    result = deduplicate(frame, index=index, config=config)
    out, index_rows = result
    kept = out["drop_reason"].is_null()
    with store.write_partition(DEDUPLICATED_ASSET, snapshot) as writer:
        for table, rows in (
            ("data", out.filter(kept & (pl.col("quality_label") == "high_quality"))),
            (REWRITE_POOL_TABLE, out.filter(kept & (pl.col("quality_label") == "rewrite_candidate"))),
            (DROPPED_TABLE, out.filter(~kept)),
        ):
            info = writer.write_table(table, conform(rows.to_arrow(), DEDUPLICATED))
            if table == "data":
                report.rows_out, report.bytes_out = info.rows, info.bytes
        report.rows_in = frame.height
        report.drop_counts = {k: int(v) for k, v in result.stats.items() if k.startswith("duplicate:") and v}
        report.bytes_in = store.table_bytes(SCORED_ASSET, snapshot) + store.table_bytes(SCORED_ASSET, snapshot, REWRITE_TABLE)
        report.shards = 1
        report.wall_seconds = time.perf_counter() - started
        report.routed = {REWRITE_POOL_TABLE: int((kept & (out["quality_label"] == names.REWRITE_CANDIDATE)).sum())}
        report.extra = {
            "rewrite_pool": report.routed[REWRITE_POOL_TABLE],
            "cross_snapshot_duplicates": int(result.stats["cross_snapshot"]),
            "duplicate_rate": round((frame.height - int(kept.sum())) / max(frame.height, 1), 4),
            "compared_with_snapshots": earlier,
            "candidate_pairs": int(result.stats["candidate_pairs"]),
            "dedup_config": dataclasses.asdict(config),
        }
        writer.commit(report.as_metadata())
    index_info = {"rows": index_rows.num_rows, "documents": int(kept.sum()), "prior_index_rows": index.num_rows,
                  "signature": signature_params(config)}
    with store.write_partition(SIGNATURE_INDEX_ASSET, snapshot) as writer:
        writer.write_table("data", index_rows.cast(INDEX_SCHEMA))
        writer.commit(index_info)
    return report, index_info
