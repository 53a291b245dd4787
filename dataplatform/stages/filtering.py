"""Filtering stage, shard by shard: ``documents`` -> ``filtered`` (kept) + ``dropped`` (with reasons).

Order per shard: language routing, the heuristic rule families (Gopher repetition, Gopher
quality, C4, FineWeb), then PII redaction of what is kept. Rows rejected here go to the
partition's ``dropped`` table with their ``drop_reason`` and original text: REWIRE rewrites
exactly those, and "why is this page gone?" has an answer.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import polars as pl
import pyarrow as pa

from dataplatform.core.filters import HeuristicFilterSuite
from dataplatform.core.language_routing import LanguageRouting
from dataplatform.core.pii import PIIConfig, redact_pii
from dataplatform.core.schemas import FILTER_FLAGS, FILTERED, conform
from dataplatform.execution.shard_executor import ShardExecutor
from dataplatform.io.datasets import DatasetStore, ShardSink, iter_shard_batches
from dataplatform.io.object_store import StoreLocation
from dataplatform.stages.ingest import DOCUMENTS_ASSET, StageReport, _merge

FILTERED_ASSET = "filtered"
DROPPED_TABLE = "dropped"


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
class FilterTask:
    source: StoreLocation
    documents_key: str
    out: StoreLocation
    partition_prefix: str
    kept_key: str
    dropped_key: str
    options: FilterOptions


EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 160


def _add_examples(examples: dict[str, list[dict]], dropped: pl.DataFrame) -> None:
    """Keep the first few (url, text head) per drop reason, so the UI shows *why*, not just how many."""
    heads = dropped.group_by("drop_reason", maintain_order=True).head(EXAMPLES_PER_REASON)
    for reason, url, text in heads.select("drop_reason", "url", "text").iter_rows():
        bucket = examples.setdefault(reason, [])
        if len(bucket) < EXAMPLES_PER_REASON:
            bucket.append({"url": url, "text": " ".join((text or "").split())[:EXAMPLE_CHARS]})


def examples_markdown(examples: dict[str, list[dict]]) -> str:
    lines = ["| reason | url | text (start) |", "|---|---|---|"]
    for reason in sorted(examples):
        for ex in examples[reason]:
            text = ex["text"].replace("|", "\\|")
            lines.append(f"| `{reason}` | {ex['url']} | {text} |")
    return "\n".join(lines)


def run_filter_task(task: FilterTask) -> dict[str, Any]:
    stats: dict[str, Any] = {"rows": 0, "kept": 0, "drop_counts": {}, "pii": 0, "flags_failed": {}, "chars_kept": 0, "words_kept": 0,
                             "examples": {}}
    with ShardSink(task.out, task.kept_key, FILTERED, "data", task.partition_prefix) as kept_sink, ShardSink(
        task.out, task.dropped_key, FILTERED, DROPPED_TABLE, task.partition_prefix
    ) as dropped_sink:
        for batch in iter_shard_batches(task.source, task.documents_key, task.options.batch_rows):
            frame = pl.from_arrow(pa.Table.from_batches([batch]))
            frame = frame.filter(pl.col("drop_reason").is_null())  # earlier stages' drops stay there
            if frame.is_empty():
                continue
            result = filter_frame(frame, task.options)
            is_kept = result["drop_reason"].is_null()
            kept, dropped = result.filter(is_kept), result.filter(~is_kept)
            kept_sink.write(conform(kept.to_arrow(), FILTERED))
            dropped_sink.write(conform(dropped.to_arrow(), FILTERED))
            stats["rows"] += result.height
            stats["kept"] += kept.height
            stats["pii"] += int(kept["pii_count"].sum() or 0)
            stats["chars_kept"] += int(kept["n_chars"].sum() or 0)
            stats["words_kept"] += int(kept["text"].str.count_matches(r"\S+").sum() or 0)
            _merge(stats["drop_counts"], dict(dropped["drop_reason"].value_counts().iter_rows()))
            _merge(stats["flags_failed"], {f: int((~result[f]).sum()) for f in FILTER_FLAGS})
            _add_examples(stats["examples"], dropped)
    return {"shards": [kept_sink.info, dropped_sink.info], "stats": stats}


def materialize_filtered(store: DatasetStore, snapshot: str, executor: ShardExecutor, options: FilterOptions = FilterOptions()) -> StageReport:
    started = time.perf_counter()
    report = StageReport("filtered", snapshot)
    keys = store.shard_keys(DOCUMENTS_ASSET, snapshot)
    totals: dict[str, Any] = {"drop_counts": {}, "flags_failed": {}, "pii": 0, "chars_kept": 0, "words_kept": 0, "examples": {}}
    with store.write_partition(FILTERED_ASSET, snapshot) as writer:
        writer.declare_table("data", FILTERED)
        writer.declare_table(DROPPED_TABLE, FILTERED)
        tasks = [FilterTask(store.location, key, store.location, writer.prefix, writer.shard_key(i),
                            writer.shard_key(i, DROPPED_TABLE), options) for i, key in enumerate(keys)]
        for result in executor.map(run_filter_task, tasks):
            for shard in result["shards"]:
                writer.add(shard)
                report.bytes_out += shard.bytes if shard.table == "data" else 0
            stats = result["stats"]
            report.rows_in += stats["rows"]
            report.rows_out += stats["kept"]
            _merge(totals["drop_counts"], stats["drop_counts"])
            _merge(totals["flags_failed"], stats["flags_failed"])
            totals["pii"] += stats["pii"]
            totals["chars_kept"] += stats["chars_kept"]
            totals["words_kept"] += stats["words_kept"]
            for reason, items in stats["examples"].items():
                bucket = totals["examples"].setdefault(reason, [])
                bucket.extend(items[: EXAMPLES_PER_REASON - len(bucket)])
        report.drop_counts = dict(sorted(totals["drop_counts"].items()))
        report.bytes_in = store.table_bytes(DOCUMENTS_ASSET, snapshot)
        report.shards = len(tasks)
        report.wall_seconds = time.perf_counter() - started
        report.extra = {
            "rule_family_failures": dict(sorted(totals["flags_failed"].items())),
            "pii_replacements": totals["pii"],
            "chars_kept": totals["chars_kept"],
            "words_kept": totals["words_kept"],
            "drop_examples": totals["examples"],
            "docs_per_s": round(report.rows_in / max(report.wall_seconds, 1e-9), 1),
        }
        writer.commit(report.as_metadata())
    return report
