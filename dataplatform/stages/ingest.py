"""Ingest stages, shard by shard: WARC files -> ``raw_pages`` -> ``documents``.

One task per WARC file (shard ``i`` of both datasets comes from the ``i``-th WARC). ``documents``
reads its pages either from a committed ``raw_pages`` shard (the asset graph) or straight from the
WARC (``dataplatform process``: no payload shard is written); the same task body does both.
Nothing here imports dagster.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator, Sequence

import pyarrow as pa

from dataplatform import names
from dataplatform.core.documents import pages_to_documents
from dataplatform.core.html_extraction import ExtractionOptions
from dataplatform.core.language_id import FastTextLanguageIdentifier
from dataplatform.core.schemas import DOCUMENTS, QUARANTINE, RAW_PAGES
from dataplatform.core.warc_records import WarcReadOptions, WarcReadStats, iter_raw_page_batches
from dataplatform.execution.shard_executor import ShardExecutor
from dataplatform.io.crawl_sources import CrawlSource, WarcFile
from dataplatform.io.datasets import DatasetStore, ShardInfo, ShardSink, iter_shard_batches
from dataplatform.io.object_store import StoreLocation
from dataplatform.stages.runner import ProgressSink, ShardTask, StageReport, StageRun, TaskList, TaskResult, upstream_versions


@dataclasses.dataclass(frozen=True)
class WarcSource:
    """Pages read from one WARC file of the crawl; unusable records go to a quarantine shard."""

    crawl: StoreLocation
    warc_key: str
    snapshot: str
    options: WarcReadOptions
    quarantine_key: str


@dataclasses.dataclass(frozen=True)
class RawPagesShard:
    """Pages read back from a committed ``raw_pages`` shard."""

    location: StoreLocation
    key: str
    batch_rows: int = 500


class _PageReader:
    """Iterates page batches of one source; for WARCs it collects quarantine rows and read stats."""

    def __init__(self, source: WarcSource | RawPagesShard, batch_rows: int | None = None) -> None:
        self.source = source
        self.stats = WarcReadStats()
        self.quarantined: list[pa.RecordBatch] = []
        self.input_bytes = 0
        self.batch_rows = batch_rows

    def pages(self) -> Iterator[pa.RecordBatch]:
        source = self.source
        if isinstance(source, RawPagesShard):
            yield from iter_shard_batches(source.location, source.key, source.batch_rows)
            return
        crawl_store = source.crawl.open()
        try:
            self.input_bytes = crawl_store.size(source.warc_key)
        except FileNotFoundError:
            raise  # listed but gone: the listing or the storage is wrong, not the file
        except OSError:
            self.input_bytes = 0  # a symlink loop, no permission: the reader quarantines the file
        options = source.options
        if self.batch_rows:
            options = dataclasses.replace(options, batch_rows=min(options.batch_rows, self.batch_rows))
        with crawl_store.readable_path(source.warc_key) as local_warc:
            for kind, batch in iter_raw_page_batches(
                str(local_warc), snapshot=source.snapshot, warc_file=source.warc_key, options=options, stats=self.stats
            ):
                if kind == "pages":
                    yield batch
                else:
                    self.quarantined.append(batch)

    def write_quarantine(self, out: StoreLocation, prefix: str) -> list[ShardInfo]:
        """The quarantine shard of one WARC (records are few, so they were kept in memory); none if empty."""
        if not self.quarantined or not isinstance(self.source, WarcSource):
            return []
        with ShardSink(out, self.source.quarantine_key, QUARANTINE, names.QUARANTINE, prefix) as sink:
            for batch in self.quarantined:
                sink.write(batch)
        return [sink.info]

    def warc_result(self, result: TaskResult) -> TaskResult:
        """Fold the WARC reader's counts into a task result: quarantined records are rows in, dropped."""
        result.rows_in += sum(self.stats.quarantined.values())
        result.bytes_in += self.input_bytes
        for reason, count in self.stats.quarantined.items():
            result.drop_counts[reason] = result.drop_counts.get(reason, 0) + count
        result.tallies["skipped_records"] = dict(self.stats.skipped)
        return result


# ------------------------------------------------------------------------------------ raw_pages
@dataclasses.dataclass(frozen=True)
class RawPagesTask(ShardTask):
    source: WarcSource
    out: StoreLocation
    partition_prefix: str
    pages_key: str


def run_raw_pages_task(task: RawPagesTask) -> TaskResult:
    reader = _PageReader(task.source)
    with ShardSink(task.out, task.pages_key, RAW_PAGES, names.DATA, task.partition_prefix) as sink:
        for batch in reader.pages():
            sink.write(batch)
    shards = [sink.info, *reader.write_quarantine(task.out, task.partition_prefix)]
    return reader.warc_result(TaskResult(shards=shards, rows_in=reader.stats.pages, rows_out=reader.stats.pages))


def _warc_files(crawl: CrawlSource, snapshot: str, warc_files: Sequence[WarcFile] | None) -> list[WarcFile]:
    files = list(warc_files) if warc_files is not None else crawl.list_warc_files(snapshot)
    if not files:
        raise FileNotFoundError(f"no WARC files for snapshot {snapshot!r} under {crawl.describe()}")
    return files


def materialize_raw_pages(
    crawl: CrawlSource,
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor,
    options: WarcReadOptions = WarcReadOptions(),
    warc_files: Sequence[WarcFile] | None = None,
    progress: ProgressSink | None = None,
) -> StageReport:
    files = _warc_files(crawl, snapshot, warc_files)
    inputs = {"crawl": crawl.describe(), "files": [(f.key, f.size) for f in files]}
    with StageRun(store, names.RAW_PAGES, snapshot, executor, config=options, upstream=inputs, progress=progress) as run:
        if run.up_to_date:
            return run.report
        run.declare(names.DATA, RAW_PAGES)
        run.declare(names.QUARANTINE, QUARANTINE)
        tasks = [
            RawPagesTask(
                i,
                WarcSource(crawl.location, f.key, snapshot, options, run.shard_key(i, names.QUARANTINE)),
                store.location,
                run.prefix,
                run.shard_key(i),
            )
            for i, f in enumerate(files)
        ]
        run.map_into_report("read", run_raw_pages_task, tasks)
        return run.commit({"warc_files": len(files)})


# ------------------------------------------------------------------------------------ documents
@dataclasses.dataclass(frozen=True)
class DocumentsTask(ShardTask):
    source: WarcSource | RawPagesShard
    out: StoreLocation
    partition_prefix: str
    documents_key: str
    language_model_path: str | None
    extraction: ExtractionOptions


def _document_counts(result: TaskResult, table: pa.Table) -> None:
    reasons = table.column("drop_reason").to_pylist()
    kept = [i for i, r in enumerate(reasons) if r is None]
    n_chars = table.column("n_chars").to_pylist()
    languages = collections.Counter(table.column("language").take(kept).to_pylist()) if kept else collections.Counter()
    result.rows_in += table.num_rows
    result.rows_out += len(kept)
    for reason, count in collections.Counter(r for r in reasons if r is not None).items():
        result.drop_counts[reason] = result.drop_counts.get(reason, 0) + count
    tally = result.tallies.setdefault("languages", {})
    for language, count in languages.items():
        tally[language] = tally.get(language, 0) + count
    result.counters["chars_kept"] = result.counters.get("chars_kept", 0) + sum(n_chars[i] for i in kept)


def run_documents_task(task: DocumentsTask) -> TaskResult:
    identifier = FastTextLanguageIdentifier(task.language_model_path)
    reader = _PageReader(task.source, batch_rows=500)
    result = TaskResult()
    with ShardSink(task.out, task.documents_key, DOCUMENTS, names.DATA, task.partition_prefix) as sink:
        for batch in reader.pages():
            documents = pages_to_documents(batch, identifier, task.extraction)
            sink.write(documents)
            _document_counts(result, documents)
    result.shards = [sink.info, *reader.write_quarantine(task.out, task.partition_prefix)]
    return reader.warc_result(result) if isinstance(task.source, WarcSource) else result


def _languages_by_count(report: StageReport) -> None:
    languages = report.tallies.get("languages", {})
    report.tallies["languages"] = dict(sorted(languages.items(), key=lambda kv: (-kv[1], kv[0])))


def materialize_documents(
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor,
    language_model_path: str | None = None,
    extraction: ExtractionOptions = ExtractionOptions(),
    progress: ProgressSink | None = None,
) -> StageReport:
    config = {"language_model_path": language_model_path, "extraction": extraction}
    upstream = upstream_versions(store, [(names.RAW_PAGES, snapshot)])
    with StageRun(store, names.DOCUMENTS, snapshot, executor, config=config, upstream=upstream, progress=progress) as run:
        if run.up_to_date:
            return run.report
        run.declare(names.DATA, DOCUMENTS)
        tasks = TaskList(
            store.shard_keys(names.RAW_PAGES, snapshot),
            lambda i, key: DocumentsTask(
                i,
                RawPagesShard(store.location, key),
                store.location,
                run.prefix,
                run.shard_key(i),
                language_model_path,
                extraction,
            ),
        )
        run.map_into_report("extract", run_documents_task, tasks)
        run.report.bytes_in = store.table_bytes(names.RAW_PAGES, snapshot)
        _languages_by_count(run.report)
        return run.commit()


def materialize_documents_from_warcs(
    crawl: CrawlSource,
    warc_keys: Sequence[str],
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor,
    options: WarcReadOptions = WarcReadOptions(),
    language_model_path: str | None = None,
    extraction: ExtractionOptions = ExtractionOptions(),
    progress: ProgressSink | None = None,
) -> StageReport:
    """``raw_pages`` and ``documents`` fused for one pass over the WARCs (``dataplatform process``):
    the documents partition also holds the ``quarantine`` table."""
    config = {"read": options, "language_model_path": language_model_path, "extraction": extraction}
    inputs = {"crawl": crawl.describe(), "files": list(warc_keys)}
    with StageRun(store, names.DOCUMENTS, snapshot, executor, config=config, upstream=inputs, progress=progress) as run:
        if run.up_to_date:
            return run.report
        run.declare(names.DATA, DOCUMENTS)
        run.declare(names.QUARANTINE, QUARANTINE)
        tasks = TaskList(
            warc_keys,
            lambda i, key: DocumentsTask(
                i,
                WarcSource(crawl.location, key, snapshot, options, run.shard_key(i, names.QUARANTINE)),
                store.location,
                run.prefix,
                run.shard_key(i),
                language_model_path,
                extraction,
            ),
        )
        run.map_into_report("extract", run_documents_task, tasks)
        _languages_by_count(run.report)
        return run.commit({"warc_files": len(warc_keys)})
