"""Filtering stage, shard by shard: ``documents`` -> ``filtered`` (kept) + ``dropped`` (with reasons).

Order per shard: language routing, the heuristic rule families (Gopher repetition, Gopher
quality, C4, FineWeb), then PII redaction of what is kept. Rows rejected here go to the
partition's ``dropped`` table with their ``drop_reason`` and original text: REWIRE rewrites
exactly those, and "why is this page gone?" has an answer.
"""

from __future__ import annotations

import dataclasses

import polars as pl
import pyarrow as pa

from dataplatform import names
from dataplatform.core.filters import HeuristicFilterSuite
from dataplatform.core.language_routing import LanguageRouting
from dataplatform.core.pii import PIIConfig, redact_pii
from dataplatform.core.schemas import FILTER_FLAGS, FILTERED, conform
from dataplatform.execution.shard_executor import ShardExecutor
from dataplatform.io.datasets import DatasetStore, ShardSink, iter_shard_batches
from dataplatform.io.object_store import StoreLocation
from dataplatform.stages.runner import (
    EXAMPLES_PER_REASON,
    ProgressSink,
    ShardTask,
    StageReport,
    StageRun,
    TaskList,
    TaskResult,
    add_counts,
    upstream_versions,
)


@dataclasses.dataclass(frozen=True)
class FilterOptions:
    routing: LanguageRouting = LanguageRouting()
    suite: HeuristicFilterSuite = dataclasses.field(default_factory=HeuristicFilterSuite)
    pii: PIIConfig | None = PIIConfig()
    batch_rows: int = 2000


def filter_frame(documents: pl.DataFrame, options: FilterOptions) -> pl.DataFrame:
    """Apply routing, rules and PII to one frame of kept documents; every row comes back."""
    routed = options.routing.apply(documents)
    filtered = options.suite.apply(routed)
    kept = filtered["drop_reason"].is_null()
    if options.pii is not None:
        redacted = redact_pii(filtered.filter(kept), config=options.pii)
        dropped = filtered.filter(~kept).with_columns(pl.lit(0, pl.Int32).alias("pii_count"))
        filtered = pl.concat([redacted, dropped], how="diagonal_relaxed").sort("doc_id")
    else:
        filtered = filtered.with_columns(pl.lit(0, pl.Int32).alias("pii_count"))
    return filtered.with_columns(pl.col("text").str.len_chars().fill_null(0).cast(pl.Int64).alias("n_chars"))


@dataclasses.dataclass(frozen=True)
class FilterTask(ShardTask):
    source: StoreLocation
    documents_key: str
    out: StoreLocation
    partition_prefix: str
    kept_key: str
    dropped_key: str
    options: FilterOptions


EXAMPLE_CHARS = 160


def _add_examples(examples: dict[str, list[dict]], dropped: pl.DataFrame) -> None:
    """Keep the first few (url, text head) per drop reason, so the UI shows *why*, not just how many."""
    heads = dropped.group_by("drop_reason", maintain_order=True).head(EXAMPLES_PER_REASON)
    for reason, url, text in heads.select("drop_reason", "url", "text").iter_rows():
        bucket = examples.setdefault(reason, [])
        if len(bucket) < EXAMPLES_PER_REASON:
            bucket.append({"url": url, "text": " ".join((text or "").split())[:EXAMPLE_CHARS]})


def _count_batch(result: TaskResult, filtered: pl.DataFrame, kept: pl.DataFrame, dropped: pl.DataFrame) -> None:
    result.rows_in += filtered.height
    result.rows_out += kept.height
    add_counts(
        result.counters,
        {
            "pii_replacements": int(kept["pii_count"].sum() or 0),
            "chars_kept": int(kept["n_chars"].sum() or 0),
            "words_kept": int(kept["text"].str.count_matches(r"\S+").sum() or 0),
        },
    )
    add_counts(result.drop_counts, dict(dropped["drop_reason"].value_counts().iter_rows()))
    add_counts(result.tallies.setdefault("rule_family_failures", {}), {f: int((~filtered[f]).sum()) for f in FILTER_FLAGS})
    _add_examples(result.examples, dropped)


def run_filter_task(task: FilterTask) -> TaskResult:
    result = TaskResult(counters={"pii_replacements": 0, "chars_kept": 0, "words_kept": 0}, tallies={"rule_family_failures": {}})
    with (
        ShardSink(task.out, task.kept_key, FILTERED, names.DATA, task.partition_prefix) as kept_sink,
        ShardSink(task.out, task.dropped_key, FILTERED, names.DROPPED, task.partition_prefix) as dropped_sink,
    ):
        for batch in iter_shard_batches(task.source, task.documents_key, task.options.batch_rows):
            frame = pl.from_arrow(pa.Table.from_batches([batch]))
            frame = frame.filter(pl.col("drop_reason").is_null())  # earlier stages' drops stay there
            if frame.is_empty():
                continue
            filtered = filter_frame(frame, task.options)
            is_kept = filtered["drop_reason"].is_null()
            kept, dropped = filtered.filter(is_kept), filtered.filter(~is_kept)
            kept_sink.write(conform(kept.to_arrow(), FILTERED))
            dropped_sink.write(conform(dropped.to_arrow(), FILTERED))
            _count_batch(result, filtered, kept, dropped)
    result.shards = [kept_sink.info, dropped_sink.info]
    return result


def materialize_filtered(
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor,
    options: FilterOptions = FilterOptions(),
    progress: ProgressSink | None = None,
) -> StageReport:
    upstream = upstream_versions(store, [(names.DOCUMENTS, snapshot)])
    with StageRun(store, names.FILTERED, snapshot, executor, config=options, upstream=upstream, progress=progress) as run:
        if run.up_to_date:
            return run.report
        run.declare(names.DATA, FILTERED)
        run.declare(names.DROPPED, FILTERED)
        tasks = TaskList(
            store.shard_keys(names.DOCUMENTS, snapshot),
            lambda i, key: FilterTask(
                i, store.location, key, store.location, run.prefix, run.shard_key(i), run.shard_key(i, names.DROPPED), options
            ),
        )
        run.map_into_report("filter", run_filter_task, tasks)
        run.report.bytes_in = store.table_bytes(names.DOCUMENTS, snapshot)
        return run.commit()
