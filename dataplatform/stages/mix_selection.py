"""The training mix's selection, sharded: no process holds more than one input shard or one range
of the mix order, whatever the number of snapshots.

:func:`~dataplatform.core.training_mix.plan_mix` defines the mix on whole frames: each source in a
seeded order (ascending hash of doc_id, ties by doc_id then input row), the prefix whose tokens are
closest to the source's budget. Here the same selection is a map -> range shuffle -> map:

1. ``candidates`` (one task per input shard): read the shard, leave out held-out text, count tokens,
   compute each row's order hash and write the rows into ranges of that hash (the top ``bits`` bits,
   so range r holds a contiguous stretch of the order); report documents and tokens per range.
2. the driver turns the per-range counts into budgets (:func:`plan_budgets`), finds the range where
   each source's budget falls and reads only that range's keys to place the cut exactly;
3. ``write`` (one task per source and range up to the cut): sort the range, keep its part of the
   prefix, count benchmark overlaps and write it as one shard of the mix.

Held-out text: a rewrite or pair whose source document, or a CoLoR-selected document, is in the
eval validation/test splits is left out, by membership in those splits' doc_ids held as a sorted
array of 64-bit hashes (8 bytes per held-out document, 2% of the curated ones by default; a hash
collision can only leave a document out, never let one in). A CoLoR-selected document is also left
out when curated raw text is in the mix and it came from ``decontaminated/data``: the train split
is that table's documents minus the held-out ones, so it is already a curated_raw candidate.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import math
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from dataplatform import names
from dataplatform.core.decontamination import count_overlaps
from dataplatform.core.eval_splits import stable_id_hash
from dataplatform.core.schemas import MIX, conform
from dataplatform.core.tokenizer_utils import count_tokens, load_tokenizer
from dataplatform.core.training_mix import MixBudget, SourceSelection, closest_prefix, mix_order_hash
from dataplatform.io.datasets import DatasetStore, ShardSink, iter_shard_batches
from dataplatform.io.object_store import StoreLocation
from dataplatform.stages.decontamination import cached_benchmark_index
from dataplatform.stages.runner import ShardTask, StageRun, TaskResult

HELD_OUT_SALT = "held-out"
ORDER = ["__h", "doc_id", "__task", "__row"]  # the mix order (plan_mix's: hash, doc_id, input row)
CANDIDATE_SCHEMA = {
    "doc_id": pl.String,
    "source_doc_id": pl.String,
    "snapshot": pl.String,
    "text": pl.String,
    "n_tokens": pl.Int64,
    "__h": pl.UInt64,
    "__task": pl.Int64,
    "__row": pl.Int64,
}
ROW_COLUMNS = ("doc_id", "source_doc_id", "snapshot", "text", "__row")


# ------------------------------------------------------------------------------ the input shards
@dataclasses.dataclass(frozen=True)
class SourceShard:
    source: str  # curated_raw | rewritten | instructions | color_selected
    key: str
    rows: int


def source_shards(store: DatasetStore, sources: Sequence[str]) -> list[SourceShard]:
    """Every input shard of the named ``sources``, in the order plan_mix concatenates them
    (source, partition, shard)."""
    shards = []
    if "curated_raw" in sources:
        shards += [
            SourceShard("curated_raw", f"{names.EVAL_SPLITS}/{names.UNPARTITIONED}/{s.key}", s.rows)
            for s in store.shards(names.EVAL_SPLITS, names.UNPARTITIONED, "train")
        ]
    assets = {"rewritten": names.REWRITTEN, "instructions": names.INSTRUCTION_PAIRS, names.COLOR_SELECTED: names.COLOR_SCORES}
    for source, asset in assets.items():
        if source in sources:
            shards += [
                SourceShard(source, f"{asset}/{p}/{s.key}", s.rows)
                for p in store.partitions(asset)
                for s in store.shards(asset, p)
            ]
    return shards


def held_out_hashes(store: DatasetStore) -> np.ndarray:
    """Sorted unique hashes of the validation and test doc_ids (read one shard at a time)."""
    parts = [np.zeros(0, dtype=np.uint64)]
    for split in names.SPLITS:
        if split == "train":
            continue
        for key in store.shard_keys(names.EVAL_SPLITS, names.UNPARTITIONED, split):
            for batch in iter_shard_batches(store.location, key, 100_000, columns=["doc_id"]):
                parts.append(stable_id_hash(pl.from_arrow(batch.column(0)), HELD_OUT_SALT))
    return np.unique(np.concatenate(parts))


@functools.lru_cache(maxsize=2)
def _held_out(location: StoreLocation, key: str) -> np.ndarray:
    return np.load(io.BytesIO(location.open().get_bytes(key)))


@functools.lru_cache(maxsize=2)
def _tokenizer(path: str):
    return load_tokenizer(path)


def _held_out_or_unknown(ids: pl.Series, sorted_hashes: np.ndarray) -> np.ndarray:
    """True where ``ids`` is a held-out document, or null (a row that cannot say where it came from
    is not trained on; plan_mix's ``is_in`` filter drops it too)."""
    missing = ids.is_null().to_numpy()
    if not len(ids) or not sorted_hashes.size:
        return missing
    h = stable_id_hash(ids.fill_null(""), HELD_OUT_SALT)
    at = np.minimum(np.searchsorted(sorted_hashes, h), sorted_hashes.size - 1)
    return (sorted_hashes[at] == h) | missing


# ------------------------------------------------------------------------ phase 1: candidates
def group_shards(shards: Sequence[SourceShard], max_rows: int) -> list[tuple[SourceShard, ...]]:
    """Consecutive shards of one source, up to ``max_rows`` rows a group (one shard at least): a
    candidate task's memory, and fewer range files than one task per shard would write."""
    groups: list[list[SourceShard]] = []
    for shard in shards:
        last = groups[-1] if groups else None
        if last and last[0].source == shard.source and sum(s.rows for s in last) + shard.rows <= max_rows:
            last.append(shard)
        else:
            groups.append([shard])
    return [tuple(g) for g in groups]


@dataclasses.dataclass(frozen=True)
class CandidateTask(ShardTask):
    shards: tuple[SourceShard, ...]  # consecutive shards of one source
    store: StoreLocation
    held_out_key: str
    exclude_curated: bool  # color_selected only: curated raw text is in the mix too
    tokenizer_path: str
    seed: int
    bits: int  # of the order hash naming a range (per source: ~range_rows candidates a range)
    work_prefix: str


def _candidate_rows(source: str, frame: pl.DataFrame) -> pl.DataFrame:
    if source == "instructions":
        return frame.select(
            pl.col("pair_id").alias("doc_id"),
            "source_doc_id",
            "snapshot",
            (pl.col("instruction") + "\n\n" + pl.col("answer")).alias("text"),
        )
    if source == "rewritten":
        return frame.select("doc_id", "source_doc_id", "snapshot", "text")
    return frame.select("doc_id", pl.col("doc_id").alias("source_doc_id"), "snapshot", "text")


COLUMNS = {
    "curated_raw": ["doc_id", "snapshot", "text"],
    "rewritten": ["doc_id", "source_doc_id", "snapshot", "text"],
    "instructions": ["pair_id", "source_doc_id", "snapshot", "instruction", "answer"],
    names.COLOR_SELECTED: ["doc_id", "snapshot", "text", "source_table"],
}


def run_candidate_task(task: CandidateTask) -> TaskResult:
    """Write these shards' mix candidates into ranges of the mix order; report docs/tokens per range."""
    source = task.shards[0].source
    held_out = _held_out(task.store, task.held_out_key)
    parts, excluded, rows_in = [], 0, 0
    batches = (b for shard in task.shards for b in iter_shard_batches(task.store, shard.key, 10_000, columns=COLUMNS[source]))
    for batch in batches:
        frame = pl.from_arrow(pa.Table.from_batches([batch]))
        rows = _candidate_rows(source, frame).with_columns(pl.int_range(rows_in, rows_in + frame.height).alias("__row"))
        rows_in += frame.height
        if source != "curated_raw":
            out = _held_out_or_unknown(rows["source_doc_id"], held_out)
            if source == names.COLOR_SELECTED and task.exclude_curated:
                out |= (frame["source_table"] == names.DATA).to_numpy()
            excluded += int(out.sum())
            rows = rows.filter(~pl.Series(out))
        parts.append(rows)
    rows = pl.concat(parts) if parts else pl.DataFrame(schema={k: CANDIDATE_SCHEMA[k] for k in ROW_COLUMNS})
    order_hash = mix_order_hash(rows["doc_id"], task.seed)
    rows = rows.with_columns(
        pl.Series("n_tokens", count_tokens(rows["text"], _tokenizer(task.tokenizer_path)), dtype=pl.Int64),
        pl.Series("__h", order_hash, dtype=pl.UInt64),
        pl.lit(task.index, dtype=pl.Int64).alias("__task"),
        pl.col("__row").cast(pl.Int64),
    ).select(list(CANDIDATE_SCHEMA))
    range_of = order_hash >> np.uint64(64 - task.bits) if task.bits else np.zeros(len(order_hash), dtype=np.uint64)
    ranges = []
    store = task.store.open()
    for r in np.unique(range_of).tolist():
        part = rows.filter(pl.Series(range_of == r))
        buffer = io.BytesIO()
        part.write_parquet(buffer, compression="zstd")
        store.put_bytes(range_file(task.work_prefix, source, r, task.index), buffer.getvalue())
        ranges.append([int(r), part.height, int(part["n_tokens"].sum())])
    return TaskResult(
        rows_in=rows_in, rows_out=rows.height, counters={"held_out_or_curated": excluded}, payload={"ranges": ranges}
    )


def range_file(work_prefix: str, source: str, r: int, task: int) -> str:
    return f"{work_prefix}/candidates/{source}/r{r:05d}/part-{task:05d}.parquet"


def range_bits(rows: int, range_rows: int) -> int:
    """Bits of the order hash that name a range: about ``range_rows`` candidates per range."""
    return max(0, math.ceil(math.log2(rows / range_rows))) if rows > range_rows else 0


# ------------------------------------------------------------------------------- phase 2: cuts
@dataclasses.dataclass
class SourceRanges:
    """One source's candidates: per range, the files holding it and its docs and tokens."""

    files: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    docs: dict[int, int] = dataclasses.field(default_factory=dict)
    tokens: dict[int, int] = dataclasses.field(default_factory=dict)

    def add(self, r: int, file: str, docs: int, tokens: int) -> None:
        self.files.setdefault(r, []).append(file)
        self.docs[r] = self.docs.get(r, 0) + docs
        self.tokens[r] = self.tokens.get(r, 0) + tokens

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens.values())

    @property
    def total_docs(self) -> int:
        return sum(self.docs.values())


def read_range(location: StoreLocation, files: Sequence[str], columns: list[str] | None = None) -> pl.DataFrame:
    store = location.open()
    frames = [pl.read_parquet(io.BytesIO(store.get_bytes(f)), columns=columns) for f in files]
    return pl.concat(frames).sort(ORDER)


def cut_source(location: StoreLocation, ranges: SourceRanges, budget: float) -> list[tuple[int, int | None]]:
    """The prefix of one source closest to ``budget`` tokens, as (range, rows kept or None = all).

    Equal to :func:`closest_prefix` over the whole order: the cut lies in the first range whose
    cumulative tokens reach the budget; only that range's keys are read."""
    order = sorted(r for r, n in ranges.docs.items() if n)
    if not order:
        return []
    units: list[tuple[int, int | None]] = []
    before = 0
    for r in order:
        if before + ranges.tokens[r] < budget:
            units.append((r, None))
            before += ranges.tokens[r]
            continue
        tokens = read_range(location, ranges.files[r], columns=[*ORDER, "n_tokens"])["n_tokens"].to_numpy()
        kept = closest_prefix(tokens.astype(np.int64), budget - before)
        units += [(r, kept)] if kept else []
        break
    if not units:  # a source with a share is never rounded out of the mix (plan_mix does the same)
        units = [(order[0], 1)]
    return units


# ------------------------------------------------------------------------------ phase 3: write
@dataclasses.dataclass(frozen=True)
class WriteTask(ShardTask):
    source: str
    store: StoreLocation
    files: tuple[str, ...]
    keep: int | None
    benchmark_index: tuple[StoreLocation, str]
    out_key: str
    partition_prefix: str


def run_write_task(task: WriteTask) -> TaskResult:
    rows = read_range(task.store, task.files)
    rows = rows.head(task.keep) if task.keep is not None else rows
    mix = rows.select("doc_id", "source_doc_id", pl.lit(task.source).alias("source"), "snapshot", "text", "n_tokens")
    overlaps = count_overlaps(mix, cached_benchmark_index(*task.benchmark_index))
    with ShardSink(task.store, task.out_key, MIX, names.DATA, task.partition_prefix) as sink:
        sink.write(conform(mix.to_arrow(), MIX))
    return TaskResult(
        shards=[sink.info],
        rows_in=rows.height,
        rows_out=rows.height,
        payload={"source": task.source, "tokens": int(mix["n_tokens"].sum() or 0), "overlaps": overlaps},
    )


def doc_ids_sha256(store: DatasetStore, keys: Sequence[str]) -> str:
    """sha256 of the doc_ids of ``keys``' rows, in order, newline-joined (what plan_mix records)."""
    digest, first = hashlib.sha256(), True
    for key in keys:
        for batch in iter_shard_batches(store.location, key, 100_000, columns=["doc_id"]):
            ids = batch.column(0).to_pylist()
            if ids:
                digest.update((("" if first else "\n") + "\n".join(ids)).encode("utf-8"))
                first = False
    return digest.hexdigest()


def select_and_write(
    run: StageRun,
    shards: list[SourceShard],
    budget_of: Callable[[dict[str, int]], MixBudget],
    *,
    seed: int,
    tokenizer_path: str,
    exclude_curated: bool,
    benchmark_index: tuple[StoreLocation, str],
    range_rows: int,
) -> tuple[dict[str, SourceSelection], MixBudget, list[TaskResult]]:
    """Phases 1-3 (module docstring). ``budget_of(available tokens per present source)`` is the
    stage's call to :func:`plan_budgets`; returns each source's selection, the budget and the
    written shards' results in mix order."""
    store = run.store
    held_out_key = run.work_key("held_out.npy")
    if not store.object_store.get_bytes(held_out_key):
        buffer = io.BytesIO()
        np.save(buffer, held_out_hashes(store))
        store.object_store.put_bytes(held_out_key, buffer.getvalue())
    rows_of: dict[str, int] = {}
    for shard in shards:
        rows_of[shard.source] = rows_of.get(shard.source, 0) + shard.rows
    bits = {source: range_bits(rows, range_rows) for source, rows in rows_of.items()}
    work = run.work_key("mix")
    tasks = [
        CandidateTask(i, group, store.location, held_out_key, exclude_curated, tokenizer_path, seed, bits[group[0].source], work)
        for i, group in enumerate(group_shards(shards, range_rows))
    ]
    per_source: dict[str, SourceRanges] = {}
    present = {"curated_raw"}  # as in mix_sources: the train split is a source even when empty
    for task, result in zip(tasks, run.map("candidates", run_candidate_task, tasks, collect=False)):
        source = task.shards[0].source
        present |= {source} if result.rows_in else set()
        ranges = per_source.setdefault(source, SourceRanges())
        for r, docs, tokens in result.payload["ranges"]:
            ranges.add(r, range_file(work, source, r, task.index), docs, tokens)
    budget = budget_of({s: per_source.get(s, SourceRanges()).total_tokens for s in present})

    units = []  # (source, range, rows kept or None)
    for name in sorted(budget.target):
        if budget.target[name] > 0 and name in per_source:
            units += [
                (name, r, keep) for r, keep in cut_source(store.location, per_source[name], budget.target[name] * budget.total)
            ]
    written = run.map(
        "write",
        run_write_task,
        [
            WriteTask(
                i, name, store.location, tuple(per_source[name].files[r]), keep, benchmark_index, run.shard_key(i), run.prefix
            )
            for i, (name, r, keep) in enumerate(units)
        ],
    )
    return {name: _selection(run, name, budget, per_source, written) for name in sorted(budget.target)}, budget, written


def _selection(
    run: StageRun, name: str, budget: MixBudget, per_source: dict[str, SourceRanges], written: list[TaskResult]
) -> SourceSelection:
    mine = [res for res in written if res.payload["source"] == name]
    ranges = per_source.get(name, SourceRanges())
    return SourceSelection(
        name=name,
        target_proportion=budget.target[name],
        docs=sum(res.rows_out for res in mine),
        tokens=sum(res.payload["tokens"] for res in mine),
        available_docs=ranges.total_docs,
        available_tokens=ranges.total_tokens,
        doc_ids_sha256=doc_ids_sha256(run.store, [f"{run.prefix}/{res.shards[0].key}" for res in mine]),
    )
