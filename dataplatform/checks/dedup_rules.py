"""Rules for ``deduplicated`` and ``dedup_signature_index`` (no Dagster here).

They test the tables' meaning, not how dedup computes them: kept documents (``data`` and the REWIRE
pool ``rewrite_pool``) are distinct, every duplicate in ``dropped`` names a kept document of this
or an earlier snapshot in ``duplicate_of``, and the signature index was built with the settings
in force. Earlier snapshots are the committed partitions whose names sort before this one (Common
Crawl names sort chronologically), as the dedup stage reads them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from dataplatform import names
from dataplatform.checks.frames import read_columns, table_rows
from dataplatform.checks.outcome import CheckOutcome, band_problem, outcome, sample_values
from dataplatform.core.dedup import DROP_EXACT, DROP_MINHASH, content_hash, normalize_buffers
from dataplatform.io.datasets import DatasetStore

KEPT_TABLES = (names.DATA, names.REWRITE_POOL)
DUPLICATE_REASONS = (DROP_EXACT, DROP_MINHASH)


def earlier_snapshots(store: DatasetStore, snapshot: str) -> list[str]:
    return [s for s in store.partitions(names.DEDUPLICATED) if s < snapshot]


def kept_ids(store: DatasetStore, snapshot: str) -> pl.Series:
    frames = [read_columns(store, names.DEDUPLICATED, snapshot, t, ["doc_id"]) for t in KEPT_TABLES]
    return pl.concat(frames)["doc_id"]


def _kept_content_hashes(store: DatasetStore, snapshot: str) -> tuple[np.ndarray, list[str]]:
    """Normalised-text hashes of the kept documents with non-empty normalised text (as dedup
    compares them), shard by shard, and their doc_ids."""
    hashes, ids = [], []
    for table in KEPT_TABLES:
        for key in store.shard_keys(names.DEDUPLICATED, snapshot, table):
            with store.object_store.readable_path(key) as path:
                shard = pl.read_parquet(path, columns=["doc_id", "text"])
            data, offsets = normalize_buffers(shard["text"])
            nonempty = np.diff(offsets) > 0
            hashes.append(content_hash((data, offsets))[nonempty])
            ids += [d for d, keep in zip(shard["doc_id"].to_list(), nonempty) if keep]
    return (np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)), ids


def no_duplicate_kept(store: DatasetStore, snapshot: str, max_earlier: int | None = None) -> CheckOutcome:
    """No two kept documents (``data`` + ``rewrite_pool``) of this snapshot share a normalised-text
    hash, and none shares one with a kept document of an earlier snapshot (the ``max_earlier`` latest
    ones when set: reading every earlier snapshot's text grows with the corpus)."""
    hashes, ids = _kept_content_hashes(store, snapshot)
    _, first, counts = np.unique(hashes, return_index=True, return_counts=True)
    within = [ids[i] for i in first[counts > 1]]
    problems = (
        [f"{int((counts - 1).sum())} kept document(s) repeat another's normalised text, e.g. {sample_values(within)}"]
        if within
        else []
    )
    earlier = earlier_snapshots(store, snapshot)
    earlier = earlier if max_earlier is None else earlier[len(earlier) - max_earlier :] if max_earlier else []
    seen_before: list[str] = []
    for other in earlier:
        other_hashes, _ = _kept_content_hashes(store, other)
        seen_before += [ids[i] for i in np.flatnonzero(np.isin(hashes, other_hashes))]
    if seen_before:
        problems.append(
            f"{len(seen_before)} kept document(s) repeat a kept document of {', '.join(earlier)}: "
            f"{sample_values(sorted(seen_before))}"
        )
    return outcome(
        f"{len(ids)} kept documents, all distinct (also against {len(earlier)} earlier snapshots)",
        problems,
        {
            "kept_with_text": len(ids),
            "repeated_within": len(within),
            "repeated_from_earlier": len(seen_before),
            "earlier_snapshots": earlier,
        },
    )


def duplicate_of_resolves(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """Every row of ``dropped`` is a duplicate (``duplicate:exact`` / ``duplicate:minhash``) whose
    ``duplicate_of`` names a kept document of this snapshot or of an earlier one, never itself."""
    dropped = read_columns(store, names.DEDUPLICATED, snapshot, names.DROPPED, ["doc_id", "drop_reason", "duplicate_of"])
    earlier = earlier_snapshots(store, snapshot)
    keepers = pl.concat([kept_ids(store, s) for s in (snapshot, *earlier)]).unique()
    problems = []
    reasons = dropped.filter(~pl.col("drop_reason").is_in(DUPLICATE_REASONS) | pl.col("drop_reason").is_null())
    if reasons.height:
        problems.append(
            f"{reasons.height} dropped row(s) with reasons other than duplicate:*: "
            f"{sample_values(sorted(set(reasons['drop_reason'].fill_null('null').to_list())))}"
        )
    dangling = dropped.filter(
        pl.col("duplicate_of").is_null()
        | ~pl.col("duplicate_of").is_in(keepers.implode())
        | (pl.col("duplicate_of") == pl.col("doc_id"))
    )
    if dangling.height:
        problems.append(
            f"{dangling.height} duplicate(s) whose duplicate_of is not a kept document of {snapshot} or "
            f"earlier: {sample_values(dangling['doc_id'].to_list())}"
        )
    return outcome(
        f"all {dropped.height} duplicates name a kept document",
        problems,
        {"duplicates": dropped.height, "dangling": dangling.height, "earlier_snapshots": earlier},
    )


def duplicate_rate(store: DatasetStore, snapshot: str, low: float, high: float, min_rows: int) -> CheckOutcome:
    """Share of input documents dropped as duplicates lies in [low, high]; below ``min_rows`` input
    documents only the upper bound applies (a small snapshot may have no duplicate)."""
    manifest = store.require_manifest(names.DEDUPLICATED, snapshot)
    kept = sum(table_rows(manifest, t) for t in KEPT_TABLES)
    dropped = table_rows(manifest, names.DROPPED)
    total = kept + dropped
    rate = dropped / total if total else None
    lower = low if total >= min_rows else None
    return outcome(
        f"duplicate rate {rate:.1%} of {total}" if rate is not None else "no documents",
        band_problem("duplicate rate", rate, lower, high) if total else [],
        {"duplicate_rate": rate, "documents": total, "duplicates": dropped, "band": [lower, high]},
    )


def signature_matches(store: DatasetStore, snapshot: str, expected: dict[str, Any]) -> CheckOutcome:
    """The index segment's recorded ``signature`` (format version + MinHash settings) equals
    ``expected`` (the configuration in force), every other segment's, and the settings the
    snapshot's ``deduplicated`` was computed with."""
    found = store.require_manifest(names.SIGNATURE_INDEX, snapshot)["metadata"].get("signature")
    problems = []
    if found != expected:
        differs = sorted(k for k in set(expected) | set(found or {}) if (found or {}).get(k) != expected.get(k))
        problems.append(f"built with {found}, configuration says {expected} (differs in {differs})")
    others = {
        s: store.require_manifest(names.SIGNATURE_INDEX, s)["metadata"].get("signature")
        for s in store.partitions(names.SIGNATURE_INDEX)
        if s != snapshot
    }
    disagree = sorted(s for s, sig in others.items() if sig != found)
    if disagree:
        problems.append(f"other segments were built with other settings: {sample_values(disagree)}")
    dedup = store.manifest(names.DEDUPLICATED, snapshot)
    used = (dedup or {}).get("metadata", {}).get("dedup_config") or {}
    mismatch = sorted(k for k in used if k in (found or {}) and used[k] != found[k])
    if mismatch:
        problems.append(f"deduplicated/{snapshot} used other settings for {mismatch}")
    return outcome(
        f"signature {found} matches the configuration",
        problems,
        {"signature": found, "expected": expected, "segments": len(others) + 1},
    )


def index_covers_kept(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """The index segment covers this snapshot's kept documents: its recorded document count equals
    the kept rows of ``deduplicated`` and every doc_id of its ``exact`` table is one of them."""
    manifest = store.require_manifest(names.SIGNATURE_INDEX, snapshot)
    meta = manifest["metadata"]
    kept = kept_ids(store, snapshot)
    problems = []
    indexed = meta.get("documents")
    if indexed is not None and indexed != kept.len():
        problems.append(f"index records {indexed} documents, deduplicated/{snapshot} kept {kept.len()}")
    if store.shard_keys(names.SIGNATURE_INDEX, snapshot, names.INDEX_EXACT):
        ids = store.scan(names.SIGNATURE_INDEX, snapshot, names.INDEX_EXACT).select("doc_id").unique().collect()["doc_id"]
        strangers = ids.filter(~ids.is_in(kept.implode()))
        if strangers.len():
            problems.append(
                f"{strangers.len()} indexed doc_id(s) are not kept documents of {snapshot}: "
                f"{sample_values(strangers.sort().to_list())}"
            )
    if kept.len() and not table_rows(manifest, names.INDEX_EXACT):
        problems.append(f"{kept.len()} kept documents but the index segment is empty")
    return outcome(f"index covers the {kept.len()} kept documents", problems, {"documents_indexed": indexed, "kept": kept.len()})
