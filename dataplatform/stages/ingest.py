"""Ingest stages, shard by shard: WARC files -> ``raw_pages`` -> ``documents``.

Each ``run_*_task`` function is what one worker does for one shard (picklable arguments in, a
small summary out; the data itself goes straight to storage). The ``materialize_*`` functions
fan tasks out over a :class:`ShardExecutor` and commit the partition. Dagster assets and the
``dataplatform`` command line both call these; nothing here imports dagster.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from dataplatform.core.documents import pages_to_documents
from dataplatform.core.html_extraction import ExtractionOptions
from dataplatform.core.language_id import FastTextLanguageIdentifier
from dataplatform.core.schemas import DOCUMENTS, QUARANTINE, RAW_PAGES
from dataplatform.core.warc_records import WarcReadOptions, WarcReadStats, iter_raw_page_batches
from dataplatform.execution.shard_executor import ShardExecutor
from dataplatform.io.crawl_sources import CrawlSource, WarcFile
from dataplatform.io.datasets import DatasetStore, ShardInfo, ShardSink, iter_shard_batches
from dataplatform.io.object_store import StoreLocation

RAW_PAGES_ASSET = "raw_pages"
DOCUMENTS_ASSET = "documents"
QUARANTINE_TABLE = "quarantine"


@dataclasses.dataclass
class StageReport:
    """What one stage did to one partition; becomes Dagster metadata and the CLI summary."""

    stage: str
    partition: str
    rows_in: int = 0
    rows_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    shards: int = 0
    wall_seconds: float = 0.0
    drop_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return sum(self.drop_counts.values())

    def as_metadata(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_dropped": self.dropped,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "shards": self.shards,
            "wall_seconds": round(self.wall_seconds, 3),
            "drop_counts": dict(sorted(self.drop_counts.items())),
            **self.extra,
        }


def _merge(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        if value:
            into[key] = into.get(key, 0) + value


# ------------------------------------------------------------------------------------ raw_pages
@dataclasses.dataclass(frozen=True)
class RawPagesTask:
    crawl: StoreLocation
    warc_key: str
    snapshot: str
    out: StoreLocation
    partition_prefix: str
    pages_key: str
    quarantine_key: str
    options: WarcReadOptions


def _write_quarantine(out: StoreLocation, key: str, prefix: str, batches: list[pa.RecordBatch]) -> list[ShardInfo]:
    """The quarantine shard of one WARC (records are few, so they were kept in memory); none if empty."""
    if not batches:
        return []
    with ShardSink(out, key, QUARANTINE, QUARANTINE_TABLE, prefix) as sink:
        for batch in batches:
            sink.write(batch)
    return [sink.info]


def run_raw_pages_task(task: RawPagesTask) -> dict[str, Any]:
    crawl_store = task.crawl.open()
    stats = WarcReadStats()
    quarantined: list[pa.RecordBatch] = []
    input_bytes = crawl_store.size(task.warc_key)
    with crawl_store.readable_path(task.warc_key) as local_warc, ShardSink(
        task.out, task.pages_key, RAW_PAGES, "data", task.partition_prefix
    ) as sink:
        for kind, batch in iter_raw_page_batches(
            str(local_warc), snapshot=task.snapshot, warc_file=task.warc_key, options=task.options, stats=stats
        ):
            if kind == "pages":
                sink.write(batch)
            else:
                quarantined.append(batch)
    shards = [sink.info, *_write_quarantine(task.out, task.quarantine_key, task.partition_prefix, quarantined)]
    return {"shards": shards, "stats": stats, "input_bytes": input_bytes}


def materialize_raw_pages(
    crawl: CrawlSource,
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor,
    options: WarcReadOptions = WarcReadOptions(),
    warc_files: Sequence[WarcFile] | None = None,
) -> StageReport:
    started = time.perf_counter()
    files = list(warc_files) if warc_files is not None else crawl.list_warc_files(snapshot)
    if not files:
        raise FileNotFoundError(f"no WARC files for snapshot {snapshot!r} under {crawl.describe()}")
    report = StageReport("raw_pages", snapshot)
    skipped: dict[str, int] = {}
    with store.write_partition(RAW_PAGES_ASSET, snapshot) as writer:
        writer.declare_table("data", RAW_PAGES)
        writer.declare_table(QUARANTINE_TABLE, QUARANTINE)
        tasks = [
            RawPagesTask(crawl.location, f.key, snapshot, store.location, writer.prefix,
                         writer.shard_key(i), writer.shard_key(i, QUARANTINE_TABLE), options)
            for i, f in enumerate(files)
        ]
        for result in executor.map(run_raw_pages_task, tasks):
            stats: WarcReadStats = result["stats"]
            for shard in result["shards"]:
                writer.add(shard)
                if shard.table == "data":
                    report.bytes_out += shard.bytes
            report.rows_in += stats.pages + sum(stats.quarantined.values())
            report.rows_out += stats.pages
            report.bytes_in += result["input_bytes"]
            _merge(report.drop_counts, stats.quarantined)
            _merge(skipped, stats.skipped)
        report.shards = len(tasks)
        report.wall_seconds = time.perf_counter() - started
        report.extra = {
            "warc_files": len(files),
            "skipped_records": dict(sorted(skipped.items())),
            "input_mb_per_s": round(report.bytes_in / 1e6 / max(report.wall_seconds, 1e-9), 2),
        }
        writer.commit(report.as_metadata())
    return report


# ------------------------------------------------------------------------------------ documents
@dataclasses.dataclass(frozen=True)
class DocumentsTask:
    source: StoreLocation
    pages_key: str
    out: StoreLocation
    partition_prefix: str
    documents_key: str
    language_model_path: str | None
    extraction: ExtractionOptions
    batch_rows: int = 500


def _document_stats(table: pa.Table) -> dict[str, Any]:
    reasons = table.column("drop_reason").to_pylist()
    kept = [i for i, r in enumerate(reasons) if r is None]
    languages = collections.Counter(table.column("language").take(kept).to_pylist()) if kept else collections.Counter()
    n_chars = table.column("n_chars").to_pylist()
    return {
        "rows": table.num_rows,
        "kept": len(kept),
        "drop_counts": dict(collections.Counter(r for r in reasons if r is not None)),
        "languages": dict(languages),
        "chars_kept": sum(n_chars[i] for i in kept),
    }


def _accumulate(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key in ("rows", "kept", "chars_kept"):
        total[key] = total.get(key, 0) + part.get(key, 0)
    for key in ("drop_counts", "languages"):
        _merge(total.setdefault(key, {}), part.get(key, {}))


def run_documents_task(task: DocumentsTask) -> dict[str, Any]:
    identifier = FastTextLanguageIdentifier(task.language_model_path)
    totals: dict[str, Any] = {}
    with ShardSink(task.out, task.documents_key, DOCUMENTS, "data", task.partition_prefix) as sink:
        for batch in iter_shard_batches(task.source, task.pages_key, task.batch_rows):
            documents = pages_to_documents(batch, identifier, task.extraction)
            sink.write(documents)
            _accumulate(totals, _document_stats(documents))
    return {"shards": [sink.info], "stats": totals}


def _report_documents(report: StageReport, totals: dict[str, Any]) -> None:
    report.rows_in = totals.get("rows", 0)
    report.rows_out = totals.get("kept", 0)
    report.drop_counts = dict(sorted(totals.get("drop_counts", {}).items()))
    report.extra["languages"] = dict(sorted(totals.get("languages", {}).items(), key=lambda kv: (-kv[1], kv[0])))
    report.extra["chars_kept"] = totals.get("chars_kept", 0)


def materialize_documents(
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor,
    language_model_path: str | None = None,
    extraction: ExtractionOptions = ExtractionOptions(),
) -> StageReport:
    started = time.perf_counter()
    report = StageReport("documents", snapshot)
    page_keys = store.shard_keys(RAW_PAGES_ASSET, snapshot)
    with store.write_partition(DOCUMENTS_ASSET, snapshot) as writer:
        writer.declare_table("data", DOCUMENTS)
        tasks = [
            DocumentsTask(store.location, key, store.location, writer.prefix, writer.shard_key(i),
                          language_model_path, extraction)
            for i, key in enumerate(page_keys)
        ]
        totals: dict[str, Any] = {}
        for result in executor.map(run_documents_task, tasks):
            for shard in result["shards"]:
                writer.add(shard)
                report.bytes_out += shard.bytes
            _accumulate(totals, result["stats"])
        report.bytes_in = store.table_bytes(RAW_PAGES_ASSET, snapshot)
        _report_documents(report, totals)
        report.shards = len(tasks)
        report.wall_seconds = time.perf_counter() - started
        report.extra["docs_per_s"] = round(report.rows_in / max(report.wall_seconds, 1e-9), 1)
        writer.commit(report.as_metadata())
    return report


# ------------------------------------------------------------- WARC -> documents in one pass (CLI)
@dataclasses.dataclass(frozen=True)
class WarcToDocumentsTask:
    crawl: StoreLocation
    warc_key: str
    snapshot: str
    out: StoreLocation
    partition_prefix: str
    documents_key: str
    quarantine_key: str
    options: WarcReadOptions
    language_model_path: str | None
    extraction: ExtractionOptions


def run_warc_to_documents_task(task: WarcToDocumentsTask) -> dict[str, Any]:
    """Fused raw_pages + documents for one WARC: no intermediate payload shard is written."""
    crawl_store = task.crawl.open()
    identifier = FastTextLanguageIdentifier(task.language_model_path)
    stats = WarcReadStats()
    totals: dict[str, Any] = {}
    quarantined: list[pa.RecordBatch] = []
    read_options = dataclasses.replace(task.options, batch_rows=min(task.options.batch_rows, 500))
    with crawl_store.readable_path(task.warc_key) as local_warc, ShardSink(
        task.out, task.documents_key, DOCUMENTS, "data", task.partition_prefix
    ) as sink:
        for kind, batch in iter_raw_page_batches(
            str(local_warc), snapshot=task.snapshot, warc_file=task.warc_key, options=read_options, stats=stats
        ):
            if kind == "pages":
                documents = pages_to_documents(batch, identifier, task.extraction)
                sink.write(documents)
                _accumulate(totals, _document_stats(documents))
            else:
                quarantined.append(batch)
    shards = [sink.info, *_write_quarantine(task.out, task.quarantine_key, task.partition_prefix, quarantined)]
    return {"shards": shards, "stats": totals, "warc_stats": stats, "input_bytes": crawl_store.size(task.warc_key)}


def materialize_documents_from_warcs(
    crawl: CrawlSource,
    warc_keys: Sequence[str],
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor,
    options: WarcReadOptions = WarcReadOptions(),
    language_model_path: str | None = None,
    extraction: ExtractionOptions = ExtractionOptions(),
) -> StageReport:
    started = time.perf_counter()
    report = StageReport("documents", snapshot)
    with store.write_partition(DOCUMENTS_ASSET, snapshot) as writer:
        writer.declare_table("data", DOCUMENTS)
        writer.declare_table(QUARANTINE_TABLE, QUARANTINE)
        tasks = [
            WarcToDocumentsTask(crawl.location, key, snapshot, store.location, writer.prefix, writer.shard_key(i),
                                writer.shard_key(i, QUARANTINE_TABLE), options, language_model_path, extraction)
            for i, key in enumerate(warc_keys)
        ]
        totals: dict[str, Any] = {}
        quarantine_counts: dict[str, int] = {}
        for result in executor.map(run_warc_to_documents_task, tasks):
            for shard in result["shards"]:
                writer.add(shard)
                if shard.table == "data":
                    report.bytes_out += shard.bytes
            _accumulate(totals, result["stats"])
            _merge(quarantine_counts, result["warc_stats"].quarantined)
            report.bytes_in += result["input_bytes"]
        _report_documents(report, totals)
        report.rows_in += sum(quarantine_counts.values())
        _merge(report.drop_counts, quarantine_counts)
        report.drop_counts = dict(sorted(report.drop_counts.items()))
        report.shards = len(tasks)
        report.wall_seconds = time.perf_counter() - started
        report.extra["docs_per_s"] = round(report.rows_in / max(report.wall_seconds, 1e-9), 1)
        report.extra["input_mb_per_s"] = round(report.bytes_in / 1e6 / max(report.wall_seconds, 1e-9), 2)
        writer.commit(report.as_metadata())
    return report
