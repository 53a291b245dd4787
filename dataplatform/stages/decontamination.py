"""Benchmark decontamination: ``eval_benchmarks`` (n-gram index) and ``decontaminated`` per snapshot.

Training documents that share a long n-gram (default 13 words) with any benchmark item are
dropped as ``contamination:<benchmark>`` or have the overlapping span cut, so no evaluation
split is trusted on leaked text. The snapshot is decontaminated shard by shard against the
committed benchmark index (each worker loads it once).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dataplatform import names
from dataplatform.core.decontamination import BenchmarkNgramIndex, decontaminate, find_benchmark_files, load_benchmark_items
from dataplatform.core.schemas import DECONTAMINATED, conform
from dataplatform.execution.shard_executor import ShardExecutor
from dataplatform.io.datasets import DatasetStore, ShardsByIndex, ShardSink, iter_shard_batches
from dataplatform.io.object_store import StoreLocation
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

DecontaminationMode = Literal["drop", "cut"]


def build_benchmark_index(
    files: list[Path], n: int = 13, text_fields: tuple[str, ...] | None = None
) -> tuple[pl.DataFrame, BenchmarkNgramIndex]:
    kwargs = {"text_fields": text_fields} if text_fields else {}
    items = load_benchmark_items(files, **kwargs)
    return items, BenchmarkNgramIndex.build(items, n=n)


def materialize_eval_benchmarks(
    store: DatasetStore, path: str | Path, n: int = 13, text_fields: tuple[str, ...] | None = None
) -> StageReport:
    files = find_benchmark_files(path)
    config = {"n": n, "text_fields": text_fields, "files": [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]}
    with StageRun(store, names.EVAL_BENCHMARKS, names.UNPARTITIONED, config=config) as run:
        if run.up_to_date:
            return run.report
        items, index = build_benchmark_index(files, n, text_fields)
        run.write_table(names.ITEMS, items.to_arrow())
        run.write_table(names.NGRAM_INDEX, index.to_arrow())
        run.report.rows_in = run.report.rows_out = items.height
        return run.commit(
            {
                "items": items.height,
                "items_per_benchmark": dict(sorted(items["benchmark"].value_counts().iter_rows())),
                "ngram_n": n,
                "ngrams": int(len(index.hashes)),
                "short_items": index.short_items,
                "files": [p.name for p in files],
            }
        )


def ngram_index_location(store: DatasetStore) -> tuple[StoreLocation, str]:
    """Where workers load the committed benchmark n-gram index from (one shard)."""
    keys = store.shard_keys(names.EVAL_BENCHMARKS, names.UNPARTITIONED, names.NGRAM_INDEX)
    if len(keys) != 1:
        raise ValueError(f"eval_benchmarks: expected one {names.NGRAM_INDEX} shard, found {len(keys)}")
    return store.location, keys[0]


def load_benchmark_index(store: DatasetStore) -> BenchmarkNgramIndex:
    return cached_benchmark_index(*ngram_index_location(store))


@functools.lru_cache(maxsize=2)
def cached_benchmark_index(location: StoreLocation, key: str) -> BenchmarkNgramIndex:
    with location.open().readable_path(key) as path:
        return BenchmarkNgramIndex.from_arrow(pq.read_table(path))


@dataclasses.dataclass(frozen=True)
class DecontaminateTask(ShardTask):
    source: StoreLocation
    inputs: tuple[tuple[str, str], ...]  # (table, shard key) of this shard index: data, rewrite_pool
    ngram_index: tuple[StoreLocation, str]
    mode: DecontaminationMode
    out: StoreLocation
    partition_prefix: str
    outputs: tuple[tuple[str, str], ...]  # (table, shard key): data, rewrite_pool, dropped


def _decontaminate_table(
    frame: pl.DataFrame, index: BenchmarkNgramIndex, mode: str, result: TaskResult, table: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    decontaminated = decontaminate(frame, index, mode=mode)
    newly = decontaminated["drop_reason"].is_not_null() & decontaminated["contamination_benchmark"].is_not_null()
    hits = decontaminated.filter(pl.col("contamination_benchmark").is_not_null())["contamination_benchmark"]
    add_counts(result.tallies.setdefault("contamination_hits", {}), dict(hits.value_counts().iter_rows()))
    if "contamination_cut_chars" in decontaminated.columns:
        add_counts(result.counters, {"cut_documents": int((decontaminated["contamination_cut_chars"].fill_null(0) > 0).sum())})
    kept, dropped = decontaminated.filter(~newly), decontaminated.filter(newly)
    result.rows_in += frame.height
    if table == names.DATA:
        result.rows_out += kept.height
    else:
        add_counts(result.routed, {table: kept.height})
    add_counts(result.drop_counts, dict(dropped["drop_reason"].value_counts().iter_rows()))
    return kept, dropped


def run_decontaminate_task(task: DecontaminateTask) -> TaskResult:
    index = cached_benchmark_index(*task.ngram_index)
    outputs = dict(task.outputs)
    result = TaskResult(tallies={"contamination_hits": {}})
    sinks = {t: ShardSink(task.out, key, DECONTAMINATED, t, task.partition_prefix) for t, key in outputs.items()}
    with sinks[names.DATA], sinks[names.REWRITE_POOL], sinks[names.DROPPED]:
        for table, key in task.inputs:
            batches = list(iter_shard_batches(task.source, key, 10_000))
            if not batches or not sum(b.num_rows for b in batches):
                continue
            frame = pl.from_arrow(pa.Table.from_batches(batches))
            kept, dropped = _decontaminate_table(frame, index, task.mode, result, table)
            sinks[table].write(conform(kept.to_arrow(), DECONTAMINATED))
            sinks[names.DROPPED].write(conform(dropped.to_arrow(), DECONTAMINATED))
    result.shards = [s.info for s in sinks.values()]
    return result


def shards_by_index(store: DatasetStore, asset: str, partition: str, tables: Sequence[str]) -> dict[int, list[tuple[str, str]]]:
    """Shard keys of ``tables`` grouped by their ``part-NNNNN`` number (shards line up across tables),
    as a dict: for stages that read a few shards; a crawl-wide map keeps :class:`ShardsByIndex`."""
    shards = ShardsByIndex(store, partition, [(table, asset, table) for table in tables])
    return {int(index): shards.group(int(index)) for index in shards.indices}


def decontaminate_partition(
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor,
    source_asset: str = names.DEDUPLICATED,
    mode: DecontaminationMode = "drop",
    progress: ProgressSink | None = None,
) -> StageReport:
    """Decontaminate the kept documents and the REWIRE pool of ``source_asset``/``snapshot`` against
    the committed ``eval_benchmarks`` index."""
    if mode not in ("drop", "cut"):
        raise ValueError(f"mode must be 'drop' or 'cut', got {mode!r}")
    index = ngram_index_location(store)
    upstream = upstream_versions(store, [(source_asset, snapshot), (names.EVAL_BENCHMARKS, names.UNPARTITIONED)])
    with StageRun(
        store, names.DECONTAMINATED, snapshot, executor, config={"mode": mode}, upstream=upstream, progress=progress
    ) as run:
        if run.up_to_date:
            return run.report
        outputs = (names.DATA, names.REWRITE_POOL, names.DROPPED)
        for table in outputs:
            run.declare(table, DECONTAMINATED)
        shards = ShardsByIndex(store, snapshot, [(t, source_asset, t) for t in (names.DATA, names.REWRITE_POOL)])
        tasks = TaskList(
            shards.indices,
            lambda _, i: DecontaminateTask(
                int(i),
                store.location,
                tuple(shards.group(int(i))),
                index,
                mode,
                store.location,
                run.prefix,
                tuple((t, run.shard_key(int(i), t)) for t in outputs),
            ),
        )
        run.map_into_report("decontaminate", run_decontaminate_task, tasks)
        run.report.bytes_in = store.table_bytes(source_asset, snapshot)
        benchmarks = load_benchmark_index(store)
        return run.commit({"mode": mode, "ngram_n": benchmarks.n, "benchmarks": list(benchmarks.benchmarks)})
