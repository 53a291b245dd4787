"""Deduplication stage: ``scored`` (high quality + REWIRE candidates) -> ``deduplicated``, out of core.

Exact (normalised-text hash) and MinHash-LSH dedup within the snapshot and against every earlier
snapshot through the ``dedup_signature_index`` dataset, with the algorithm and keeper rule of the
in-memory reference :func:`dataplatform.core.dedup.deduplicate` (tests prove both agree). No
process holds more than one input shard or one bucket partition; every step but the connected
components of the (small) verified edge list is a task mapped over the shard engine (process
pool, Ray) by the common stage runner (:class:`~dataplatform.stages.runner.StageRun`):

==============  ====================  =====================================================
phase           one task per          writes (under ``<deduplicated version>/_work/``)
==============  ====================  =====================================================
1 signatures    input shard           exact, band and payload (signature + shingle
                                      fingerprints) rows, split by bucket partition (then
                                      the driver writes ``plan.json``: who wrote what)
2 exact         bucket partition      exact verdicts: copies and their keeper (then the
                                      driver writes a bitmap of the copies)
3 buckets       bucket partition      candidate pairs, routed by the partition holding the
                                      first document's payload
4 attach        payload partition     pairs + the first document's payload (an earlier
                                      snapshot's from its index), routed by the second's
5 verify        payload partition     verified edges (phases 4-5 only if ``verify != "none"``)
6 clusters      - (the driver)        connected components of the edges: near verdicts
  follow        exact partition       each exact copy takes its keeper's verdict, split by
                                      group of input shards
  gather        group of input shards each shard's verdicts (the driver then writes the
                                      bitmap of dropped rows, one group file at a time)
7 apply         input shard           ``data`` / ``rewrite_pool`` / ``dropped`` shards
                                      (``part-NNNNN`` = input shard NNNNN)
8 index         bucket partition      this snapshot's index part: kept documents' rows
==============  ====================  =====================================================

Each task is a frozen :class:`~dataplatform.stages.runner.ShardTask` (``index``: the input shard
or bucket partition) carrying store locations and keys; it returns a
:class:`~dataplatform.stages.runner.TaskResult` (counts, partition numbers, shards). The runner
records each finished task in the version it writes, so a killed run resumes inside any phase:
recorded tasks are skipped, their results read back. The driver steps (the bitmaps, the plan,
phase 6) are deterministic functions of recorded results and work files and write the same
bytes again when a resumed run redoes them. The work files live under the in-progress version
(``run.work_key``), where a resumed run finds them; they are never named by a manifest. Besides
the edges, the driver holds the bitmaps (one bit per input row) and one file at a time: exact
copies, which can be most of a crawl, never reach it.

**Two partitions, one truth.** ``deduplicated`` is committed first (its own fingerprint: the
scored version and the committed index version of every earlier snapshot compared against, the
:class:`DedupConfig` and :class:`DedupRunOptions`), then ``dedup_signature_index`` (fingerprint:
the same configuration and the ``deduplicated`` version it describes, which it also records as
``deduplicated_version`` in its metadata). Only then are the work files deleted, the plan first.
The index is built from the work files (phase 1 rows of the documents phase 6 kept), which is
why it comes second: committed first, it could describe a ``deduplicated`` that never commits.
A run stopped between the two commits leaves ``deduplicated`` committed, the index stale or
missing, and the work files in place; the re-run finds ``deduplicated`` up to date and builds
only the index from them (resuming its tasks). If the work files are gone too (the index was
removed by hand after a complete run), ``deduplicated`` is rebuilt. Readers of the index never
trust a segment that disagrees with the committed ``deduplicated``: a later snapshot's run
refuses (:class:`StaleSignatureIndex`) an earlier snapshot whose segment records another
``deduplicated`` version, or whose ``deduplicated`` is committed without a segment, instead of
silently comparing against the wrong documents or none. With both partitions up to date a
re-run does nothing.

The index of a snapshot is three tables, ``exact`` (content hashes), ``bands`` (LSH band hashes)
and ``signatures`` (signature + fingerprints, by document), each with one part per bucket
partition of that snapshot's run. A later snapshot opens only the parts holding buckets it
touches, streams them and keeps the rows that join its own, so its memory does not grow with the
number of earlier snapshots. Snapshot N is compared with the index segments of the snapshots whose
names sort before N (Common Crawl names sort chronologically).
"""

from __future__ import annotations

import array
import dataclasses
import io
import itertools
import json
import math
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dataplatform import names
from dataplatform.core.dedup import DedupConfig
from dataplatform.core.dedup.buckets import (
    BAND_ROWS,
    EXACT_ROWS,
    INDEX_BANDS,
    INDEX_BUCKETS,
    INDEX_EXACT,
    INDEX_SIGNATURES,
    PAYLOAD_ROWS,
    anchor_pairs,
    band_keys,
    exact_copy_verdicts,
    exact_duplicates,
    near_verdicts,
    pair_jaccard,
    partition_of,
    partition_range,
    shard_sketches,
)
from dataplatform.core.dedup.index import EXACT_BAND, INDEX_SCHEMA
from dataplatform.core.schemas import DEDUPLICATED, conform
from dataplatform.execution.shard_executor import InlineExecutor, ShardExecutor
from dataplatform.io.datasets import (
    WORK_DIR,
    DatasetStore,
    ShardInfo,
    ShardSink,
    iter_shard_batches,
)
from dataplatform.io.object_store import ObjectStore, StoreLocation
from dataplatform.stages.runner import (
    ProgressSink,
    ShardTask,
    StageReport,
    StageRun,
    TaskList,
    TaskResult,
    add_counts,
    upstream_versions,
)

DROPPED_TABLE, REWRITE_TABLE, SCORED_ASSET = names.DROPPED, names.REWRITE_CANDIDATES, names.SCORED

DEDUPLICATED_ASSET = names.DEDUPLICATED
SIGNATURE_INDEX_ASSET = names.SIGNATURE_INDEX
REWRITE_POOL_TABLE = names.REWRITE_POOL
INDEX_TABLES = {names.INDEX_EXACT: INDEX_EXACT, names.INDEX_BANDS: INDEX_BANDS, names.INDEX_SIGNATURES: INDEX_SIGNATURES}
# Bumped whenever shingling/MinHash/banding or the index layout changes: index segments of
# another version cannot be compared with new ones and must be rebuilt.
# v3: word hashes of core.ngrams, index bucketed into INDEX_BUCKETS hash buckets.
SIGNATURE_FORMAT = "minhash-word-oph/v3"
# The DedupConfig fields that decide band-hash values; all segments of an index must agree on them.
SIGNATURE_FIELDS = ("ngram", "num_perm", "bands", "rows", "seed")


class IncompatibleSignatureIndex(ValueError):
    """An earlier snapshot's index segment cannot be compared with this run's signatures."""


class StaleSignatureIndex(IncompatibleSignatureIndex):
    """An earlier snapshot's index segment does not describe its committed ``deduplicated``."""


def signature_params(config: DedupConfig) -> dict:
    return {"format": SIGNATURE_FORMAT, "buckets": INDEX_BUCKETS, **{f: getattr(config, f) for f in SIGNATURE_FIELDS}}


@dataclasses.dataclass(frozen=True)
class DedupRunOptions:
    """How the stage cuts the work (not what it computes).

    Attributes:
        batch_rows: input rows read at a time by the per-shard tasks.
        partition_rows: target rows (band + exact rows of the input) per bucket partition; sets
            how many partitions a run uses, hence the memory of one bucket task.
    """

    batch_rows: int = 2000
    partition_rows: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("batch_rows", "partition_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"DedupRunOptions.{name}: must be >= 1, got {getattr(self, name)}")


DEFAULT_CONFIG = DedupConfig()
DEFAULT_RUN_OPTIONS = DedupRunOptions()


# ------------------------------------------------------------------------------- work files
@dataclasses.dataclass(frozen=True)
class WorkArea:
    """Intermediate files of one run: ``<dedup version prefix>/_work/<kind>/<partition>/<source>``."""

    location: StoreLocation
    prefix: str

    def key(self, kind: str, partition: int, source: int | None = None) -> str:
        tail = f"{partition:05d}" if source is None else f"{partition:05d}/{source:05d}"
        return f"{self.prefix}/{kind}/{tail}.parquet"

    def bitmap_key(self, name: str) -> str:
        return f"{self.prefix}/{name}.npz"

    def plan_key(self) -> str:
        """Which input shards wrote which bucket partitions (what the index phase reads)."""
        return f"{self.prefix}/plan.json"


def committed_work_area(store: DatasetStore, snapshot: str, version: str) -> WorkArea:
    """The work area of ``deduplicated/<snapshot>`` version ``version`` (what
    ``StageRun.work_key`` names while that version is being written)."""
    return WorkArea(store.location, f"{DEDUPLICATED_ASSET}/{snapshot}/v{version}/{WORK_DIR}")


# work kind -> bucket partition -> input shards that wrote it, as 4-byte ints: every shard writes
# every partition, so this is 3 x partitions x shards numbers (~13 MB as Python lists at 13k shards
# and 9 partitions, held by the driver for the whole run and copied into each partition's task).
Wrote = dict[str, dict[int, array.array]]


def shard_numbers(values: Iterable[int] = ()) -> array.array:
    return array.array("i", values)


def save_plan(store: ObjectStore, work: WorkArea, partitions: int, wrote: Wrote) -> None:
    body = {
        "partitions": partitions,
        "wrote": {
            kind: {str(p): shards.tolist() for p, shards in sorted(parts.items())} for kind, parts in sorted(wrote.items())
        },
    }
    store.put_bytes(work.plan_key(), json.dumps(body, sort_keys=True).encode())


def load_plan(store: ObjectStore, work: WorkArea) -> tuple[int, Wrote] | None:
    """``(partitions, wrote)`` of a run whose work files are still there, else None."""
    raw = store.get_bytes(work.plan_key())
    if raw is None:
        return None
    body = json.loads(raw)
    wrote = {kind: {int(p): shard_numbers(shards) for p, shards in parts.items()} for kind, parts in body["wrote"].items()}
    return body["partitions"], wrote


def delete_work(store: ObjectStore, work: WorkArea) -> None:
    """Remove a run's work files, the plan first: a plan present means every work file is."""
    store.delete_prefix(work.plan_key())
    store.delete_prefix(work.prefix)


_WORK_ROW_GROUP = 50_000  # rows per row group of the work files (the unit a streaming read holds)


def _write(store: ObjectStore, key: str, table: pa.Table) -> None:
    with store.writable_path(key) as path:
        pq.write_table(table, path, compression="zstd", row_group_size=_WORK_ROW_GROUP)


def _read(store: ObjectStore, key: str, columns: list[str] | None = None) -> pl.DataFrame:
    with store.readable_path(key) as path:
        return pl.read_parquet(path, columns=columns)


def _read_all(store: ObjectStore, keys: Sequence[str], schema: pa.Schema, columns: list[str] | None = None) -> pl.DataFrame:
    frames = [_read(store, k, columns) for k in keys]
    if frames:
        return pl.concat(frames, how="vertical_relaxed")
    empty = pl.from_arrow(schema.empty_table())
    return empty.select(columns) if columns else empty


def _stream_matching(
    store: ObjectStore, key: str, keep, columns: list[str] | None = None, prefilter: pl.Expr | None = None
) -> Iterator[pl.DataFrame]:
    """The rows of a file that ``keep(frame) -> frame`` retains, one row group at a time (read by
    Polars: converting from Arrow costs a worker ~5 MB of retained heap per file). With a
    ``prefilter`` the reader evaluates it first and decodes the other columns of matching rows
    only (for files of large payloads where few rows match)."""
    with store.readable_path(key) as path:
        scan = pl.scan_parquet(path)
        if prefilter is not None:
            part = keep(scan.filter(prefilter).select(columns or pl.all()).collect())
            if part.height:
                yield part
            return
        meta = pq.ParquetFile(path).metadata
        if columns:
            scan = scan.select(columns)
        offset = 0
        for i in range(meta.num_row_groups):
            rows = meta.row_group(i).num_rows
            part = keep(scan.slice(offset, rows).collect())
            offset += rows
            if part.height:
                yield part


def _route(
    store: ObjectStore, work: WorkArea, kind: str, source: int, frame: pl.DataFrame, by: str, partitions: int
) -> list[int]:
    """Write ``frame`` split by the partition of its bucket column ``by``; returns the partitions written."""
    return _route_to(store, work, kind, source, frame, partition_of(frame[by].to_numpy(), partitions))


def _route_to(store: ObjectStore, work: WorkArea, kind: str, source: int, frame: pl.DataFrame, dest: np.ndarray) -> list[int]:
    """Write ``frame`` split by destination partition ``dest`` (one per row); returns the partitions written."""
    parts = frame.with_columns(_partition=pl.Series(dest))
    written = []
    for (p,), part in sorted(parts.partition_by("_partition", as_dict=True).items()):
        _write(store, work.key(kind, p, source), part.drop("_partition").to_arrow())
        written.append(p)
    return written


def _save_bitmap(store: ObjectStore, key: str, row_offsets: np.ndarray, parts: Iterable[pl.DataFrame]) -> None:
    """A set of (shard, row) as one bit per input row of the run (``row_offsets``: first row of
    each shard, then the total), from frames with ``shard`` and ``row`` read one at a time: the
    writer holds the packed bits and one frame."""
    packed = np.zeros((int(row_offsets[-1]) + 7) // 8, dtype=np.uint8)
    for part in parts:
        at = row_offsets[part["shard"].to_numpy().astype(np.int64)] + part["row"].to_numpy().astype(np.int64)
        np.bitwise_or.at(packed, at >> 3, (0x80 >> (at & 7)).astype(np.uint8))
    buf = io.BytesIO()
    np.savez(buf, offsets=row_offsets, bits=packed)
    store.put_bytes(key, buf.getvalue())


def _load_bitmap(store: ObjectStore, key: str | None):
    """``contains(shard, row) -> bool array`` of a bitmap written by :func:`_save_bitmap` (kept
    packed: one bit per input row); an absent key is the empty set."""
    if key is None:
        return lambda shard, row: np.zeros(len(shard), dtype=bool)
    with np.load(io.BytesIO(store.get_bytes(key))) as z:
        offsets, packed = z["offsets"], z["bits"]

    def contains(shard, row) -> np.ndarray:
        at = offsets[np.asarray(shard, np.int64)] + np.asarray(row, np.int64)
        return ((packed[at >> 3] >> (7 - (at & 7)).astype(np.uint8)) & 1).astype(bool)

    return contains


# ------------------------------------------------------------------------------- prior index
@dataclasses.dataclass(frozen=True)
class PriorParts:
    """One table of an earlier snapshot's index: its parts by partition of that snapshot's run."""

    snapshot: str
    partitions: int
    keys: tuple[tuple[int, str], ...]

    def for_buckets(self, buckets: np.ndarray) -> list[str]:
        """The parts holding any of ``buckets``."""
        wanted = set(partition_of(np.unique(buckets), self.partitions).tolist())
        return [key for p, key in self.keys if p in wanted]

    def overlapping(self, lo: int, hi: int) -> PriorParts:
        keep = tuple(
            (p, k)
            for p, k in self.keys
            if max(partition_range(p, self.partitions)[0], lo) < min(partition_range(p, self.partitions)[1], hi)
        )
        return dataclasses.replace(self, keys=keep)


_PART = re.compile(r"part-(\d+)\.parquet$")


def prior_index_parts(store: DatasetStore, snapshot: str, config: DedupConfig) -> tuple[dict[str, list[PriorParts]], list[str]]:
    """The index parts of every snapshot sorting before ``snapshot``; refuses segments built with
    other signature parameters (their band hashes would never match, silently missing duplicates)
    and segments that do not describe their snapshot's committed ``deduplicated``."""
    earlier = [s for s in store.partitions(SIGNATURE_INDEX_ASSET) if s < snapshot]
    wanted = signature_params(config)
    parts: dict[str, list[PriorParts]] = {t: [] for t in INDEX_TABLES}
    metadata = {}
    for s in earlier:
        meta = metadata[s] = store.require_manifest(SIGNATURE_INDEX_ASSET, s)["metadata"]
        found = meta.get("signature")
        if found != wanted:
            changed = sorted(k for k in wanted if (found or {}).get(k) != wanted[k])
            raise IncompatibleSignatureIndex(
                f"dedup_signature_index/{s} was built with {found} but this run uses {wanted} (differs in {changed}): "
                f"re-materialize deduplicated for {earlier} first, oldest first, or use the same settings"
            )
        for table in INDEX_TABLES:
            keys = tuple((int(_PART.search(k).group(1)), k) for k in store.shard_keys(SIGNATURE_INDEX_ASSET, s, table))
            parts[table].append(PriorParts(s, int(meta["partitions"]), keys))
    check_index_matches_deduplicated(store, snapshot, metadata)
    return parts, earlier


def check_index_matches_deduplicated(store: DatasetStore, snapshot: str, index_metadata: dict[str, dict]) -> None:
    """Every earlier snapshot with a committed ``deduplicated`` has an index segment built from
    that very version (``index_metadata``: the segments' manifest metadata by snapshot). A
    segment without a ``deduplicated`` partition (copied on its own) has nothing to disagree with."""
    committed = {
        s: store.require_manifest(DEDUPLICATED_ASSET, s)["version"] for s in store.partitions(DEDUPLICATED_ASSET) if s < snapshot
    }
    missing = sorted(set(committed) - set(index_metadata))
    stale = sorted(s for s, meta in index_metadata.items() if s in committed and meta.get("deduplicated_version") != committed[s])
    if missing or stale:
        raise StaleSignatureIndex(
            f"dedup of {snapshot} compares with earlier snapshots through dedup_signature_index, but "
            + "; ".join(
                [f"deduplicated/{s} is committed without its index segment" for s in missing]
                + [
                    f"dedup_signature_index/{s} was built from deduplicated version "
                    f"{index_metadata[s].get('deduplicated_version') or '(unrecorded)'}, deduplicated/{s} is "
                    f"version {committed[s]}"
                    for s in stale
                ]
            )
            + f" (a run stopped between the two commits?): re-materialize deduplicated for {missing + stale} first "
            "(with unchanged settings only the index is rebuilt)"
        )


def _prior_rows(
    store: ObjectStore, priors: Sequence[PriorParts], buckets: np.ndarray, keep, prefilter=None
) -> tuple[pl.DataFrame | None, dict]:
    """Rows of the earlier snapshots' parts holding ``buckets`` that ``keep`` retains, streamed
    part by part (``prefilter(snapshot) -> expression``: see :func:`_stream_matching`); and what
    was read."""
    found, read = [], {"prior_files_read": 0, "prior_rows_matched": 0}
    for prior in priors:
        for key in prior.for_buckets(buckets):
            read["prior_files_read"] += 1
            found.extend(_stream_matching(store, key, keep, prefilter=prefilter(prior.snapshot) if prefilter else None))
    frame = pl.concat(found) if found else None
    read["prior_rows_matched"] = frame.height if frame is not None else 0
    return frame, read


# ------------------------------------------------------------------------------- phase 1: signatures
@dataclasses.dataclass(frozen=True)
class SignatureTask(ShardTask):
    """Phase 1 of input shard ``index``."""

    source: StoreLocation
    input_key: str
    work: WorkArea
    partitions: int
    config: DedupConfig
    batch_rows: int


def run_signature_task(task: SignatureTask) -> TaskResult:
    """Exact, band and payload rows of one input shard, each split by bucket partition."""
    store = task.work.location.open()
    parts: dict[str, list[pa.Table]] = {"exact": [], "bands": [], "payload": []}
    rows = considered = 0
    columns = ["doc_id", "text", "snapshot", "drop_reason"]
    for batch in iter_shard_batches(task.source, task.input_key, task.batch_rows, columns=columns):
        sketches = shard_sketches(pl.from_arrow(pa.Table.from_batches([batch])), task.index, rows, task.config)
        parts["exact"].append(sketches.exact)
        parts["bands"].append(sketches.bands)
        parts["payload"].append(sketches.payload)
        rows += batch.num_rows
        considered += sketches.considered
    written = {}
    for kind, schema in (("exact", EXACT_ROWS), ("bands", BAND_ROWS), ("payload", PAYLOAD_ROWS)):
        table = pa.concat_tables(parts[kind]) if parts[kind] else schema.empty_table()
        written[kind] = _route(store, task.work, kind, task.index, pl.from_arrow(table), "bucket", task.partitions)
    return TaskResult(rows_in=rows, counters={"considered": considered}, payload={"written": written})


# ------------------------------------------------------------------------------- phase 2: exact
@dataclasses.dataclass(frozen=True)
class ExactTask(ShardTask):
    """Phase 2 of bucket partition ``index``."""

    work: WorkArea
    shards: Sequence[int]
    prior: tuple[PriorParts, ...]
    config: DedupConfig


def run_exact_task(task: ExactTask) -> TaskResult:
    """Exact verdicts of one bucket partition: copies of a hash in the batch or in the index."""
    store = task.work.location.open()
    batch = _read_all(store, [task.work.key("exact", task.index, s) for s in task.shards], EXACT_ROWS)
    hashes = batch.select("content_hash").unique()
    prior, read = _prior_rows(
        store,
        task.prior,
        batch["bucket"].to_numpy(),
        lambda f: f.join(hashes, on="content_hash", how="semi"),
        lambda _: pl.col("content_hash").is_in(hashes["content_hash"].implode()),
    )
    verdicts = exact_duplicates(batch, prior, task.config)
    _write(store, task.work.key("exact_verdicts", task.index), verdicts.to_arrow())
    return TaskResult(counters={"exact_copies": verdicts.height, **read})


# ------------------------------------------------------------------------------- phase 3: buckets
@dataclasses.dataclass(frozen=True)
class BucketTask(ShardTask):
    """Phase 3 of bucket partition ``index``."""

    work: WorkArea
    shards: Sequence[int]
    prior: tuple[PriorParts, ...]
    excluded: str | None  # bitmap of exact copies, left out of LSH
    partitions: int
    config: DedupConfig


def _keys_of(frame: pl.DataFrame) -> np.ndarray:
    return band_keys(frame["band"].to_numpy(), frame["band_hash"].to_numpy())


def _isin(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


def run_bucket_task(task: BucketTask) -> TaskResult:
    """Candidate pairs of one bucket partition, routed by the partition of their first document's
    payload. Two passes over the partition's band rows: their keys first (one uint64 each, sorted:
    no hash table), to find the LSH buckets with more than one member or an earlier snapshot's
    member (most hold one document), then the full rows of those buckets only."""
    store = task.work.location.open()
    files = [task.work.key("bands", task.index, s) for s in task.shards]
    copies = _load_bitmap(store, task.excluded)
    batch = _read_all(store, files, BAND_ROWS, ["bucket", "band", "band_hash", "shard", "row"])
    live = ~copies(batch["shard"].to_numpy(), batch["row"].to_numpy())
    keys = np.sort(_keys_of(batch)[live])
    buckets = batch["bucket"].to_numpy()[live]
    del batch
    repeated = keys[1:][keys[1:] == keys[:-1]]
    prior, read = _prior_rows(store, task.prior, buckets, lambda f: f.filter(pl.Series(_isin(_keys_of(f), keys))))
    shared = np.unique(np.concatenate([repeated, _keys_of(prior) if prior is not None else repeated[:0]]))
    keys = None  # free the sorted keys before the second pass

    def members(f: pl.DataFrame) -> pl.DataFrame:
        f = f.filter(pl.Series(_isin(_keys_of(f), shared)))
        return f.filter(pl.Series(~copies(f["shard"].to_numpy(), f["row"].to_numpy())))

    found = [part for key in files for part in _stream_matching(store, key, members)]
    batch = pl.concat(found) if found else pl.from_arrow(BAND_ROWS.empty_table())
    pairs = anchor_pairs(batch, prior, task.config)
    routes = _route(store, task.work, "pairs", task.index, pairs, "u_bucket", task.partitions)
    return TaskResult(counters={"anchor_pairs": pairs.height, **read}, payload={"routes": routes})


# ------------------------------------------------------------------------------- phases 4-5: verify
_PAIR_KEY = ["u_kind", "u_snapshot", "u_doc_id", "u_shard", "u_row", "v_shard", "v_row"]


@dataclasses.dataclass(frozen=True)
class AttachTask(ShardTask):
    """Phase 4 of payload partition ``index``."""

    work: WorkArea
    sources: tuple[int, ...]  # bucket partitions that routed pairs here
    shards: Sequence[int]  # input shards with payload rows in this partition
    prior: tuple[PriorParts, ...]  # signatures of earlier snapshots
    partitions: int
    config: DedupConfig


def _payload_of(
    store: ObjectStore, work: WorkArea, partition: int, shards: Sequence[int], wanted: pl.DataFrame, side: str, fingerprints: bool
) -> pl.DataFrame:
    """Signature (and fingerprints) of the batch documents ``wanted`` (``shard``, ``row``), as
    ``<side>_shard``, ``<side>_row``, ``<side>_signature``, ``<side>_fingerprints``."""
    columns = ["shard", "row", "signature"] + (["fingerprints"] if fingerprints else [])
    rows_of = {s: part["row"] for (s,), part in wanted.partition_by("shard", as_dict=True).items()}
    found = []
    for s in shards:  # one file per input shard: select its rows by row number before decoding payloads
        if s in rows_of:
            with store.readable_path(work.key("payload", partition, s)) as path:
                found.append(pl.scan_parquet(path).filter(pl.col("row").is_in(rows_of[s].implode())).select(columns).collect())
    frame = pl.concat(found) if found else pl.from_arrow(PAYLOAD_ROWS.empty_table()).select(columns)
    if not fingerprints:
        frame = frame.with_columns(fingerprints=pl.lit(None, pl.Binary))
    return frame.select(**{f"{side}_{c}": c for c in ("shard", "row", "signature", "fingerprints")})


def run_attach_task(task: AttachTask) -> TaskResult:
    """Unique candidate pairs whose first document's payload lives in this partition, with that
    payload attached, routed by the partition of the second document's payload."""
    store = task.work.location.open()
    pairs = pl.concat([_read(store, task.work.key("pairs", task.index, s)) for s in task.sources])
    pairs = pairs.unique(_PAIR_KEY, maintain_order=True)
    batch_u, prior_u = pairs.filter(pl.col("u_kind") == 1), pairs.filter(pl.col("u_kind") == 0)
    wanted = batch_u.select(shard="u_shard", row="u_row").unique()
    payload = _payload_of(store, task.work, task.index, task.shards, wanted, "u", task.config.verify == "exact")
    batch_u = batch_u.join(payload, on=["u_shard", "u_row"], how="left")
    prior_docs = prior_u.select(snapshot=pl.col("u_snapshot").cast(pl.Utf8), doc_id=pl.col("u_doc_id").cast(pl.Utf8)).unique()
    priors = [p for p in task.prior if p.snapshot in set(prior_docs["snapshot"].to_list())]
    ids_of = {snap: part["doc_id"] for (snap,), part in prior_docs.partition_by("snapshot", as_dict=True).items()}
    sigs, read = _prior_rows(
        store,
        priors,
        prior_u["u_bucket"].to_numpy(),
        lambda f: f.with_columns(pl.col("snapshot", "doc_id").cast(pl.Utf8)).join(
            prior_docs, on=["snapshot", "doc_id"], how="semi"
        ),
        lambda snap: pl.col("doc_id").is_in(ids_of[snap].implode()),
    )
    if sigs is None:
        sigs = pl.DataFrame(schema={"snapshot": pl.Utf8, "doc_id": pl.Utf8, "signature": pl.Binary, "fingerprints": pl.Binary})
    if task.config.verify != "exact" or "fingerprints" not in sigs.columns:
        sigs = sigs.with_columns(fingerprints=pl.lit(None, pl.Binary))
    prior_u = prior_u.with_columns(pl.col("u_snapshot", "u_doc_id").cast(pl.Utf8)).join(
        sigs.select(u_snapshot="snapshot", u_doc_id="doc_id", u_signature="signature", u_fingerprints="fingerprints"),
        on=["u_snapshot", "u_doc_id"],
        how="left",
    )
    attached = pl.concat([batch_u, prior_u.select(batch_u.columns)], how="vertical_relaxed")
    routes = _route(store, task.work, "pairs_u", task.index, attached, "v_bucket", task.partitions)
    return TaskResult(counters={"candidate_pairs": pairs.height, **read}, payload={"routes": routes})


@dataclasses.dataclass(frozen=True)
class VerifyTask(ShardTask):
    """Phase 5 of payload partition ``index``."""

    work: WorkArea
    sources: tuple[int, ...]  # attach partitions that routed pairs here
    shards: Sequence[int]
    config: DedupConfig


def run_verify_task(task: VerifyTask) -> TaskResult:
    """The verified edges among the pairs whose second document's payload lives here."""
    store = task.work.location.open()
    pairs = pl.concat([_read(store, task.work.key("pairs_u", task.index, s)) for s in task.sources], how="vertical_relaxed")
    wanted = pairs.select(shard="v_shard", row="v_row").unique()
    payload = _payload_of(store, task.work, task.index, task.shards, wanted, "v", task.config.verify == "exact")
    pairs = pairs.join(payload, on=["v_shard", "v_row"], how="left")
    edges = pairs.filter(pl.Series(pair_jaccard(pairs, task.config))).select(_EDGE_COLUMNS)
    _write(store, task.work.key("edges", task.index), edges.to_arrow())
    return TaskResult(counters={"verified_pairs": edges.height})


_EDGE_COLUMNS = ["u_kind", "u_doc_id", "u_snapshot", "u_shard", "u_row", "v_doc_id", "v_snapshot", "v_shard", "v_row"]


# ------------------------------------------------------------------------------- phase 7: apply
@dataclasses.dataclass(frozen=True)
class ApplyTask(ShardTask):
    """Phase 7 of input shard ``index``: output shard ``index`` of each table."""

    source: StoreLocation
    input_key: str
    work: WorkArea
    has_verdicts: bool
    out: StoreLocation
    partition_prefix: str
    data_key: str
    pool_key: str
    dropped_key: str
    batch_rows: int


def run_apply_task(task: ApplyTask) -> TaskResult:
    """Write one input shard's rows to ``data`` / ``rewrite_pool`` (kept) or ``dropped`` (with
    ``drop_reason`` and ``duplicate_of``)."""
    store = task.work.location.open()
    verdicts = (
        _read(store, task.work.key("verdicts", task.index), ["row", "duplicate_of", "drop_reason"])
        if task.has_verdicts
        else pl.DataFrame(schema={"row": pl.Int64, "duplicate_of": pl.Utf8, "drop_reason": pl.Utf8})
    )
    verdicts = verdicts.rename({"drop_reason": "_verdict"})
    result = TaskResult(routed={REWRITE_POOL_TABLE: 0})
    first = 0
    with (
        ShardSink(task.out, task.data_key, DEDUPLICATED, "data", task.partition_prefix) as data,
        ShardSink(task.out, task.pool_key, DEDUPLICATED, REWRITE_POOL_TABLE, task.partition_prefix) as pool,
        ShardSink(task.out, task.dropped_key, DEDUPLICATED, DROPPED_TABLE, task.partition_prefix) as dropped,
    ):
        for batch in iter_shard_batches(task.source, task.input_key, task.batch_rows):
            frame = (
                pl.from_arrow(pa.Table.from_batches([batch]))
                .with_columns(row=pl.int_range(first, first + batch.num_rows, dtype=pl.Int64))
                .join(verdicts, on="row", how="left", maintain_order="left")
                .with_columns(drop_reason=pl.coalesce("drop_reason", "_verdict"))
                .drop("row", "_verdict")
            )
            first += batch.num_rows
            kept = frame["drop_reason"].is_null()
            to_pool = kept & (frame["quality_label"] == "rewrite_candidate").fill_null(False)
            for sink, part in (
                (data, frame.filter(kept & ~to_pool)),
                (pool, frame.filter(to_pool)),
                (dropped, frame.filter(~kept)),
            ):
                sink.write(conform(part.to_arrow(), DEDUPLICATED))
            result.rows_in += frame.height
            result.rows_out += int((kept & ~to_pool).sum())
            result.routed[REWRITE_POOL_TABLE] += int(to_pool.sum())
            add_counts(result.drop_counts, {r: int(n) for r, n in frame.filter(~kept)["drop_reason"].value_counts().iter_rows()})
    result.shards = [data.info, pool.info, dropped.info]
    return result


# ------------------------------------------------------------------------------- phase 8: index
@dataclasses.dataclass(frozen=True)
class IndexTask(ShardTask):
    """Phase 8 of bucket partition ``index``: index part ``index`` of each table."""

    work: WorkArea
    shards: tuple[tuple[str, Sequence[int]], ...]  # (work kind, input shards that wrote it)
    dropped: str | None
    out: StoreLocation
    partition_prefix: str
    keys: tuple[tuple[str, str], ...]  # (index table, shard key)
    fingerprints: bool  # keep the shingle fingerprints (exact verification of later pairs)


_INDEX_SOURCES = {"exact": ("exact", EXACT_ROWS), "bands": ("bands", BAND_ROWS), "signatures": ("payload", PAYLOAD_ROWS)}


def run_index_task(task: IndexTask) -> TaskResult:
    """This snapshot's index part for one bucket partition: the kept documents' rows, streamed
    file by file."""
    store = task.work.location.open()
    dropped = _load_bitmap(store, task.dropped)
    shards = dict(task.shards)
    infos: list[ShardInfo] = []
    rows: dict[str, int] = {}
    for table, key in task.keys:
        kind, _ = _INDEX_SOURCES[table]
        columns = [c for c in INDEX_TABLES[table].names if c != "fingerprints" or task.fingerprints]

        def kept(f: pl.DataFrame, columns: list[str] = columns) -> pl.DataFrame:
            return f.filter(pl.Series(~dropped(f["shard"].to_numpy(), f["row"].to_numpy()))).select(columns)

        parts = (
            part
            for s in shards.get(kind, ())
            for part in _stream_matching(store, task.work.key(kind, task.index, s), kept, columns + ["shard", "row"])
        )
        first = next(parts, None)
        rows[table] = 0
        if first is None:
            continue
        with ShardSink(task.out, key, INDEX_TABLES[table], table, task.partition_prefix) as sink:
            for part in itertools.chain([first], parts):
                sink.write(conform(part.to_arrow(), INDEX_TABLES[table]))
                rows[table] += part.height
        infos.append(sink.info)
    return TaskResult(
        shards=infos, rows_in=rows.get(names.INDEX_EXACT, 0), rows_out=rows.get(names.INDEX_EXACT, 0), payload={"rows": rows}
    )


# ------------------------------------------------------------------------------- orchestration
@dataclasses.dataclass(frozen=True)
class _Plan:
    """What one call works on, fixed before anything runs."""

    store: DatasetStore
    snapshot: str
    executor: ShardExecutor
    config: DedupConfig
    options: DedupRunOptions
    progress: ProgressSink | None
    prior: dict[str, list[PriorParts]]
    earlier: list[str]
    inputs: list[str]  # scored shards: `data` then `rewrite_candidates`
    bytes_in: int
    partitions: int
    upstream: dict[str, str]

    @property
    def identity(self) -> dict[str, Any]:
        """The configuration part of both partitions' fingerprints."""
        return {"dedup": self.config, "run": self.options}

    def say(self, line: str) -> None:
        if self.progress:
            self.progress(f"{DEDUPLICATED_ASSET} {self.snapshot}: {line}")


@dataclasses.dataclass
class _Run:
    """One materialization of ``deduplicated``: its runner, where things are and what each phase
    left for the next."""

    plan: _Plan
    stage: StageRun
    work: WorkArea
    wrote: Wrote = dataclasses.field(default_factory=dict)
    row_offsets: np.ndarray | None = None
    stats: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def store(self) -> DatasetStore:
        return self.plan.store

    @property
    def config(self) -> DedupConfig:
        return self.plan.config

    @property
    def partitions(self) -> int:
        return self.plan.partitions

    def count(self, results: Sequence[TaskResult], *counters: str) -> None:
        for result in results:
            for name in counters:
                self.stats[name] = self.stats.get(name, 0) + int(result.counters.get(name, 0))

    def prior_for(self, table: str, partition: int) -> tuple[PriorParts, ...]:
        lo, hi = partition_range(partition, self.partitions)
        return tuple(p.overlapping(lo, hi) for p in self.plan.prior[table])


# The bucket-partition phases map with ``isolated=True``: a partition task holds up to
# `partition_rows` rows (~800 MB), so even a run with one partition runs it in a worker, never in
# the step's driver (a process pool otherwise runs a lone task inline).
def _routes(tasks: Sequence[ShardTask], results: Sequence[TaskResult], key: str = "routes") -> dict[int, list[int]]:
    """Destination partition -> the source tasks (in task order) that routed rows to it."""
    routes: dict[int, list[int]] = {}
    for task, result in zip(tasks, results):
        for dest in result.payload[key]:
            routes.setdefault(int(dest), []).append(task.index)
    return routes


def _phase_signatures(run: _Run) -> None:
    tasks = TaskList(
        run.plan.inputs,
        lambda i, key: SignatureTask(
            i, run.store.location, key, run.work, run.partitions, run.config, run.plan.options.batch_rows
        ),
    )
    run.wrote = {kind: {} for kind in ("exact", "bands", "payload")}
    positions = iter(range(len(tasks)))

    def fold(result: TaskResult) -> int:  # merged as it arrives: no result per shard is kept
        index = next(positions)  # results come in task order
        run.count([result], "considered")
        for kind, parts in result.payload["written"].items():
            for p in parts:
                run.wrote[kind].setdefault(int(p), shard_numbers()).append(index)
        return result.rows_in

    rows = np.array(run.stage.map("signatures", run_signature_task, tasks, collect=False, fold=fold), dtype=np.int64)
    run.row_offsets = np.concatenate(([0], np.cumsum(rows))).astype(np.int64)
    save_plan(run.store.object_store, run.work, run.partitions, run.wrote)


def _phase_exact(run: _Run) -> tuple[list[int], str]:
    """Exact verdicts per partition; returns the partitions that wrote them and the bitmap of the
    exact copies (left out of LSH)."""
    tasks = [
        ExactTask(p, run.work, shards, run.prior_for("exact", p), run.config) for p, shards in sorted(run.wrote["exact"].items())
    ]
    run.count(
        run.stage.map("exact", run_exact_task, tasks, collect=False, isolated=True),
        "prior_files_read",
        "prior_rows_matched",
    )
    parts = [t.index for t in tasks]
    store = run.store.object_store
    excluded = run.work.bitmap_key("exact_copies")
    copies = (_read(store, run.work.key("exact_verdicts", p), ["shard", "row"]) for p in parts)
    _save_bitmap(store, excluded, run.row_offsets, copies)
    return parts, excluded


def _phase_buckets(run: _Run, excluded: str | None) -> dict[int, list[int]]:
    """Candidate pairs per bucket partition; returns destination -> source partitions."""
    tasks = [
        BucketTask(p, run.work, shards, run.prior_for("bands", p), excluded, run.partitions, run.config)
        for p, shards in sorted(run.wrote["bands"].items())
    ]
    results = run.stage.map("buckets", run_bucket_task, tasks, collect=False, isolated=True)
    run.count(results, "prior_files_read", "prior_rows_matched")
    return _routes(tasks, results)


def _phase_verify(run: _Run, routes: dict[int, list[int]]) -> list[str]:
    """Attach both payloads to the candidate pairs and verify them; returns the edge files."""
    payload = run.wrote["payload"]
    attach = [
        AttachTask(
            p, run.work, tuple(src), payload.get(p, shard_numbers()), run.prior_for("signatures", p), run.partitions, run.config
        )
        for p, src in sorted(routes.items())
    ]
    results = run.stage.map("attach", run_attach_task, attach, collect=False, isolated=True)
    run.count(results, "candidate_pairs", "prior_files_read", "prior_rows_matched")
    second = _routes(attach, results)
    verify = [
        VerifyTask(p, run.work, tuple(src), payload.get(p, shard_numbers()), run.config) for p, src in sorted(second.items())
    ]
    run.count(run.stage.map("verify", run_verify_task, verify, collect=False, isolated=True), "verified_pairs")
    return [run.work.key("edges", t.index) for t in verify]


def _edges(run: _Run, edge_keys: list[str], pair_routes: dict[int, list[int]]) -> pl.DataFrame:
    """The verified edges (with ``verify="none"``: every candidate pair)."""
    store = run.store.object_store
    if run.config.verify == "none":  # every candidate pair is an edge
        keys = [run.work.key("pairs", dest, src) for dest, srcs in pair_routes.items() for src in srcs]
        edges = pl.concat([_read(store, k) for k in keys]).unique(_PAIR_KEY) if keys else None
        run.stats["candidate_pairs"] = run.stats["verified_pairs"] = edges.height if edges is not None else 0
    else:
        edges = pl.concat([_read(store, k) for k in edge_keys], how="vertical_relaxed") if edge_keys else None
    if edges is None:
        edges = pl.DataFrame(
            schema={
                c: pl.Int8 if c == "u_kind" else pl.Int32 if c.endswith("shard") else pl.Int64 if c.endswith("row") else pl.Utf8
                for c in _EDGE_COLUMNS
            }
        )
    return edges.select(_EDGE_COLUMNS)


def shard_group(shards: np.ndarray, groups: int, inputs: int) -> np.ndarray:
    """Group of each input shard: ``groups`` contiguous ranges of the ``inputs`` shards."""
    return (np.asarray(shards, np.int64) * groups) // max(inputs, 1)


@dataclasses.dataclass(frozen=True)
class FollowTask(ShardTask):
    """Clusters, step 2, for exact partition ``index``: its copies' verdicts, split by shard group."""

    work: WorkArea
    groups: int
    inputs: int


def run_follow_task(task: FollowTask) -> TaskResult:
    """Each exact copy of this partition follows its keeper's verdict (:func:`exact_copy_verdicts`)."""
    store = task.work.location.open()
    exact = _read(store, task.work.key("exact_verdicts", task.index))
    keepers = exact.select(shard="keeper_shard", row="keeper_row").unique()
    near = _read(store, task.work.key("near", 0)).join(keepers, on=["shard", "row"], how="semi")
    copies = exact_copy_verdicts(exact, near)
    groups = _route_to(
        store, task.work, "copies", task.index, copies, shard_group(copies["shard"].to_numpy(), task.groups, task.inputs)
    )
    return TaskResult(rows_out=copies.height, payload={"routes": groups})


@dataclasses.dataclass(frozen=True)
class GatherTask(ShardTask):
    """Clusters, step 3, for shard group ``index``: the verdicts of its shards, one file per shard."""

    work: WorkArea
    sources: tuple[int, ...]  # exact partitions that routed copies to this group
    shards: tuple[int, int]  # [first, end) input shards of the group


def run_gather_task(task: GatherTask) -> TaskResult:
    store = task.work.location.open()
    first, end = task.shards
    near = _read(store, task.work.key("near", 0)).filter(pl.col("shard").is_between(first, end, closed="left"))
    copies = [_read(store, task.work.key("copies", task.index, p)) for p in task.sources]
    verdicts = pl.concat([near, *copies], how="vertical_relaxed").sort("shard", "row")
    for (shard,), part in verdicts.partition_by("shard", as_dict=True).items():
        _write(store, task.work.key("verdicts", shard), part.to_arrow())
    _write(store, task.work.key("dropped", task.index), verdicts.select("shard", "row").to_arrow())
    return TaskResult(
        rows_out=verdicts.height,
        counters={"cross_snapshot": int(verdicts["cross_snapshot"].sum())},
        payload={"shards": verdicts["shard"].unique().sort().to_list()},
    )


def _phase_clusters(run: _Run, exact_parts: list[int], edge_keys: list[str], pair_routes: dict[int, list[int]]) -> set[int]:
    """Connected components over the verified edges, in this process (the edge list is small);
    then, in workers, every exact copy follows its keeper (per exact partition) and the verdicts
    are gathered per group of input shards into one file per shard. The driver never holds the
    exact copies, which can be most of a crawl. Writes the bitmap of dropped rows; returns the
    shards with verdicts. Deterministic: a resumed run redoes the components and writes the same
    file."""
    store = run.store.object_store
    edges = _edges(run, edge_keys, pair_routes)
    near = near_verdicts(edges, run.config)
    _write(store, run.work.key("near", 0), near.to_arrow())
    inputs, groups = len(run.plan.inputs), run.partitions
    follow = [FollowTask(p, run.work, groups, inputs) for p in exact_parts]
    follow_results = run.stage.map("follow", run_follow_task, follow, collect=False, isolated=True)
    routes = _routes(follow, follow_results)
    for g in np.unique(shard_group(near["shard"].to_numpy(), groups, inputs)).tolist():
        routes.setdefault(int(g), [])
    gather = [
        GatherTask(g, run.work, tuple(sources), (-(-g * inputs // groups), -(-(g + 1) * inputs // groups)))
        for g, sources in sorted(routes.items())
    ]
    gathered = run.stage.map("gather", run_gather_task, gather, collect=False, isolated=True)
    run.count(gathered, "cross_snapshot")
    with_verdicts = {s for result in gathered for s in result.payload["shards"]}
    dropped = (_read(store, run.work.key("dropped", t.index)) for t in gather)
    _save_bitmap(store, run.work.bitmap_key("dropped"), run.row_offsets, dropped)
    copies = sum(r.rows_out for r in follow_results)
    duplicates = sum(r.rows_out for r in gathered)
    run.plan.say(f"[clusters] {edges.height} verified edges + {copies} exact copies -> {duplicates} duplicates")
    return with_verdicts


def _phase_apply(run: _Run, with_verdicts: set[int]) -> None:
    stage, out = run.stage, run.store.location
    tasks = TaskList(
        run.plan.inputs,
        lambda i, key: ApplyTask(
            i,
            out,
            key,
            run.work,
            i in with_verdicts,
            out,
            stage.prefix,
            stage.shard_key(i, names.DATA),
            stage.shard_key(i, REWRITE_POOL_TABLE),
            stage.shard_key(i, DROPPED_TABLE),
            run.plan.options.batch_rows,
        ),
    )
    stage.map_into_report("apply", run_apply_task, tasks)


def _run_phases(run: _Run) -> dict[str, float]:
    """Phases 1-7 in order; returns the seconds per phase."""
    seconds: dict[str, float] = {}

    def timed(name: str, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        seconds[name] = round(time.perf_counter() - t, 3)
        return out

    timed("signatures", _phase_signatures, run)
    exact_parts, excluded = timed("exact", _phase_exact, run) if run.config.exact else ([], None)
    routes, edge_keys = {}, []
    if run.config.minhash:
        routes = timed("buckets", _phase_buckets, run, excluded)
        if run.config.verify != "none":
            edge_keys = timed("verify", _phase_verify, run, routes)
    with_verdicts = timed("clusters", _phase_clusters, run, exact_parts, edge_keys, routes)
    timed("apply", _phase_apply, run, with_verdicts)
    return seconds


def _summary(run: _Run, seconds: dict[str, float]) -> dict[str, Any]:
    """The stage's own metadata (the runner adds rows, bytes, drop counts, engine, docs/s)."""
    report = run.stage.report
    pool = report.routed.get(REWRITE_POOL_TABLE, 0)
    return {
        "rewrite_pool": pool,
        "cross_snapshot_duplicates": run.stats.get("cross_snapshot", 0),
        "duplicate_rate": round((report.rows_in - report.rows_out - pool) / max(report.rows_in, 1), 4),
        "compared_with_snapshots": run.plan.earlier,
        "considered": run.stats.get("considered", 0),
        "candidate_pairs": run.stats.get("candidate_pairs", 0),
        "verified_pairs": run.stats.get("verified_pairs", 0),
        "bucket_partitions": run.partitions,
        "prior_index_files_read": run.stats.get("prior_files_read", 0),
        "prior_index_rows_matched": run.stats.get("prior_rows_matched", 0),
        "phase_seconds": seconds,
        "phases_resumed": dict(run.stage.phases_resumed),
        "dedup_config": dataclasses.asdict(run.config),
    }


# ------------------------------------------------------------------------------- the index partition
def _index_stage(plan: _Plan, dedup_version: str) -> StageRun:
    """The runner of ``dedup_signature_index/<snapshot>`` describing ``deduplicated`` version
    ``dedup_version`` (building it has no side effect; entering it opens the materialization)."""
    return StageRun(
        plan.store,
        SIGNATURE_INDEX_ASSET,
        plan.snapshot,
        plan.executor,
        config=plan.identity,
        upstream={f"{DEDUPLICATED_ASSET}/{plan.snapshot}": dedup_version},
        progress=plan.progress,
    )


def _index_is_current(plan: _Plan, stage: StageRun) -> bool:
    """What ``stage`` will find on entering: the committed index has its fingerprint."""
    committed = plan.store.manifest(SIGNATURE_INDEX_ASSET, plan.snapshot)
    return not stage.rebuild and committed is not None and committed.get("fingerprint") == stage.fingerprint


def _index_tasks(plan: _Plan, stage: StageRun, work: WorkArea, wrote: Wrote) -> list[IndexTask]:
    kinds = ("exact", "bands", "payload") if plan.config.minhash else ("exact",)
    tables = [t for t in INDEX_TABLES if _INDEX_SOURCES[t][0] in kinds]
    for table in tables:
        stage.declare(table, INDEX_TABLES[table])
    parts = sorted({p for kind in kinds for p in wrote.get(kind, {})})
    return [
        IndexTask(
            p,
            work,
            tuple((k, wrote[k].get(p, shard_numbers())) for k in kinds),
            work.bitmap_key("dropped"),
            plan.store.location,
            stage.prefix,
            tuple((t, stage.shard_key(p, t)) for t in tables),
            plan.config.verify == "exact",
        )
        for p in parts
    ]


def _commit_index(
    plan: _Plan,
    dedup_version: str,
    work: WorkArea,
    layout: tuple[int, Wrote] | None,
    prior_rows: int,
    stage: StageRun | None = None,
) -> dict[str, Any]:
    """Phase 8 and the commit of the index of ``deduplicated`` version ``dedup_version`` (or its
    committed metadata when it is up to date); ``layout``: the ``(partitions, wrote)`` of the run
    whose work files it reads."""
    stage = stage or _index_stage(plan, dedup_version)
    with stage:
        if stage.up_to_date:
            return plan.store.require_manifest(SIGNATURE_INDEX_ASSET, plan.snapshot)["metadata"]
        partitions, wrote = layout
        results = stage.map("index", run_index_task, _index_tasks(plan, stage, work, wrote), isolated=True)
        rows: dict[str, int] = {}
        for result in results:
            add_counts(rows, result.payload["rows"])
        stage.report.bytes_out = sum(stage.writer.shards.totals(t)[2] for t in stage.writer.shards.tables())
        stage.commit(
            {
                "rows": rows.get(names.INDEX_EXACT, 0) + rows.get(names.INDEX_BANDS, 0),
                "documents": rows.get(names.INDEX_EXACT, 0),
                "table_rows": {t: rows.get(t, 0) for t in sorted(rows)},
                "prior_index_rows": prior_rows,
                "partitions": partitions,
                "signature": signature_params(plan.config),
                "deduplicated_version": dedup_version,
                "phases_resumed": dict(stage.phases_resumed),
            }
        )
        return stage.writer.committed["metadata"]


# ------------------------------------------------------------------------------- the stage
def _input_shards(store: DatasetStore, snapshot: str) -> tuple[list[str], int, int]:
    """The scored shards (``data`` then ``rewrite_candidates``), their rows and bytes."""
    manifest = store.require_manifest(SCORED_ASSET, snapshot)
    keys, rows, size = [], 0, 0
    for table in ("data", REWRITE_TABLE):
        keys += store.shard_keys(SCORED_ASSET, snapshot, table)
        entry = manifest["tables"].get(table) or {}
        rows += int(entry.get("rows", 0))
        size += int(entry.get("bytes", 0))
    return keys, rows, size


def _plan(
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor,
    config: DedupConfig,
    options: DedupRunOptions,
    progress: ProgressSink | None,
) -> _Plan:
    if not isinstance(executor, ShardExecutor) or not isinstance(config, DedupConfig) or not isinstance(options, DedupRunOptions):
        raise TypeError(
            "materialize_deduplicated(store, snapshot, executor, config, run_options): "
            f"got executor={type(executor).__name__}, config={type(config).__name__}, "
            f"run_options={type(options).__name__}"
        )
    if config.snapshot_order is not None and snapshot not in config.snapshot_order:
        raise ValueError(f"DedupConfig.snapshot_order: snapshot(s) {[snapshot]} not listed")
    prior, earlier = prior_index_parts(store, snapshot, config)
    inputs, total_rows, bytes_in = _input_shards(store, snapshot)
    per_row = 1 + (config.bands if config.minhash else 0)
    partitions = min(INDEX_BUCKETS, max(1, math.ceil(total_rows * per_row / options.partition_rows)))
    upstream = upstream_versions(store, [(SCORED_ASSET, snapshot), *((SIGNATURE_INDEX_ASSET, s) for s in earlier)])
    return _Plan(store, snapshot, executor, config, options, progress, prior, earlier, inputs, bytes_in, partitions, upstream)


def _deduplicate(plan: _Plan, stage: StageRun) -> tuple[StageReport, dict[str, Any]]:
    """Phases 1-7, the commit of ``deduplicated``, then the index from this run's work files."""
    for table in (names.DATA, REWRITE_POOL_TABLE, DROPPED_TABLE):
        stage.declare(table, DEDUPLICATED)
    run = _Run(plan, stage, WorkArea(plan.store.location, stage.work_key("").rstrip("/")))
    seconds = _run_phases(run)
    stage.report.bytes_in = plan.bytes_in
    report = stage.commit(_summary(run, seconds))
    started = time.perf_counter()
    index_info = _commit_index(
        plan, stage.writer.version, run.work, (run.partitions, run.wrote), run.stats.get("prior_rows_matched", 0)
    )
    # The returned report also times phase 8 (it ran after the commit, under the index's own report).
    report.extra["phase_seconds"] = {**seconds, "index": round(time.perf_counter() - started, 3)}
    delete_work(plan.store.object_store, run.work)
    return report, index_info


def _index_of_committed(plan: _Plan, report: StageReport) -> tuple[StageReport, dict[str, Any]] | None:
    """``deduplicated`` is up to date: its index too (nothing runs), or rebuilt from the work files
    its run left (it stopped between the two commits). None when the index must be rebuilt but the
    work files are gone."""
    version = plan.store.require_manifest(DEDUPLICATED_ASSET, plan.snapshot)["version"]
    work = committed_work_area(plan.store, plan.snapshot, version)
    stage = _index_stage(plan, version)
    layout = load_plan(plan.store.object_store, work)
    if layout is None and not _index_is_current(plan, stage):
        return None
    if layout is not None:
        plan.say(f"committed version {version} has work files left: building or checking its index from them")
    index_info = _commit_index(plan, version, work, layout, int(report.extra.get("prior_index_rows_matched", 0)), stage)
    delete_work(plan.store.object_store, work)  # what a run killed after the index commit left (usually nothing)
    return report, index_info


def materialize_deduplicated(
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor | None = None,
    config: DedupConfig = DEFAULT_CONFIG,
    run_options: DedupRunOptions = DEFAULT_RUN_OPTIONS,
    progress: ProgressSink | None = None,
) -> tuple[StageReport, dict[str, Any]]:
    """Deduplicate ``scored/<snapshot>`` into ``deduplicated/<snapshot>`` and write its segment of
    ``dedup_signature_index``; returns the stage report and the index segment's metadata
    (``rows``, ``documents``, ``table_rows``, ``partitions``, ``signature``, ...).

    Resumable and idempotent (see the module docstring): with both partitions up to date nothing
    runs and the committed reports come back (``report.extra["up_to_date"]``)."""
    plan = _plan(store, snapshot, executor or InlineExecutor(), config, run_options, progress)
    done = _materialize(plan)
    if done is None:
        plan.say("its index is stale or missing and the work files it is built from are gone: rebuilding deduplicated")
        done = _materialize(plan, rebuild=True)
    return done


def _materialize(plan: _Plan, rebuild: bool | None = None) -> tuple[StageReport, dict[str, Any]] | None:
    with StageRun(
        plan.store,
        DEDUPLICATED_ASSET,
        plan.snapshot,
        plan.executor,
        config=plan.identity,
        upstream=plan.upstream,
        progress=plan.progress,
        rebuild=rebuild,
    ) as stage:
        if stage.up_to_date:
            return _index_of_committed(plan, stage.report)
        return _deduplicate(plan, stage)


def read_signature_index(store: DatasetStore, snapshot: str) -> pa.Table:
    """One snapshot's index segment in the in-memory reference's :data:`INDEX_SCHEMA` (exact rows
    with their signatures, then band rows), for inspection and for
    :func:`dataplatform.core.dedup.deduplicate`. Reads the whole segment: not for stage use."""
    manifest = store.require_manifest(SIGNATURE_INDEX_ASSET, snapshot)
    tables = {
        t: pl.from_arrow(store.read_table(SIGNATURE_INDEX_ASSET, snapshot, t)) if t in manifest["tables"] else None
        for t in INDEX_TABLES
    }
    exact = tables["exact"].with_columns(pl.col("doc_id", "snapshot").cast(pl.Utf8))
    sigs = tables["signatures"]
    if sigs is not None and sigs.height:
        exact = exact.join(
            sigs.select(pl.col("doc_id", "snapshot").cast(pl.Utf8), "signature", "fingerprints"),
            on=["doc_id", "snapshot"],
            how="left",
            maintain_order="left",
        )
    else:
        exact = exact.with_columns(signature=pl.lit(None, pl.Binary), fingerprints=pl.lit(None, pl.Binary))
    parts = [
        exact.select(
            band=pl.lit(EXACT_BAND, pl.Int16),
            band_hash="content_hash",
            doc_id="doc_id",
            snapshot="snapshot",
            signature="signature",
            fingerprints="fingerprints",
        )
    ]
    if tables["bands"] is not None and tables["bands"].height:
        parts.append(
            tables["bands"].select(
                "band",
                "band_hash",
                pl.col("doc_id", "snapshot").cast(pl.Utf8),
                signature=pl.lit(None, pl.Binary),
                fingerprints=pl.lit(None, pl.Binary),
            )
        )
    return conform(pl.concat(parts, how="vertical_relaxed").to_arrow(), INDEX_SCHEMA)
