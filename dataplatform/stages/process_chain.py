"""The whole CPU chain for ``dataplatform process``: WARC files -> one table, no Dagster.

Runs the same stage functions the assets run (documents, filtered, quality classifier, scored,
deduplicated, optional decontamination) against a local output folder, then assembles
``processed/<snapshot>``: one row per page, kept or not, with every stage's columns and the
``drop_reason`` of the stage that set it aside.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from dataplatform.core.schemas import PROCESSED, conform
from dataplatform.execution.shard_executor import ShardExecutor
from dataplatform.io.crawl_sources import CrawlSource
from dataplatform.io.datasets import DatasetStore
from dataplatform.stages.dedup import DEDUPLICATED_ASSET, REWRITE_POOL_TABLE, materialize_deduplicated
from dataplatform.stages.filtering import DROPPED_TABLE, FILTERED_ASSET, materialize_filtered
from dataplatform.stages.ingest import DOCUMENTS_ASSET, StageReport, materialize_documents_from_warcs
from dataplatform.stages.scoring import (
    QUALITY_CLASSIFIER_ASSET,
    SCORED_ASSET,
    UNPARTITIONED,
    ClassifierTrainingOptions,
    materialize_quality_classifier,
    materialize_scored,
)

PROCESSED_ASSET = "processed"


@dataclasses.dataclass(frozen=True)
class ProcessOptions:
    language_model_path: str | None = None
    quality_model_path: str | None = None  # None: train one on this run's documents (DCLM recipe)
    benchmarks_path: str | None = None
    min_negatives: int = 10


def install_quality_model(store: DatasetStore, model_path: str) -> None:
    """Commit a model trained elsewhere (``quality-*.bin`` + its ``.json`` sidecar) as the classifier."""
    from dataplatform.core.quality_classifier import load_quality_classifier

    model = load_quality_classifier(model_path)  # validates file and sidecar, names the path on error
    with store.write_partition(QUALITY_CLASSIFIER_ASSET, UNPARTITIONED) as writer:
        bin_path = Path(model_path)
        writer.add_file(bin_path)
        writer.add_file(bin_path.with_suffix(".json"))
        writer.commit({"model_file": bin_path.name, "training_hash": model.training_hash, "source": str(bin_path),
                       "metrics": model.metrics.to_dict() if model.metrics else {}})


def run_process_chain(
    crawl: CrawlSource, warc_keys: Sequence[str], store: DatasetStore, snapshot: str, executor: ShardExecutor,
    options: ProcessOptions = ProcessOptions(),
) -> list[StageReport]:
    reports = [materialize_documents_from_warcs(crawl, warc_keys, store, snapshot, executor,
                                                language_model_path=options.language_model_path)]
    reports.append(materialize_filtered(store, snapshot, executor))
    if options.quality_model_path:
        install_quality_model(store, options.quality_model_path)
    else:
        materialize_quality_classifier(store, ClassifierTrainingOptions())
    reports.append(materialize_scored(store, snapshot, executor))
    reports.append(materialize_deduplicated(store, snapshot, executor)[0])
    if options.benchmarks_path:
        from dataplatform.stages.decontamination import decontaminate_partition

        reports.append(decontaminate_partition(store, snapshot, DEDUPLICATED_ASSET, options.benchmarks_path))
    assemble_processed(store, snapshot)
    return reports


def assemble_processed(store: DatasetStore, snapshot: str) -> int:
    """Union the tables where each page ended up into ``processed/<snapshot>``; return its rows."""
    documents = store.scan(DOCUMENTS_ASSET, snapshot).filter(pl.col("drop_reason").is_not_null()).collect()
    parts = [documents]
    for asset, tables in (
        (FILTERED_ASSET, [DROPPED_TABLE]),
        (SCORED_ASSET, [DROPPED_TABLE]),
        (DEDUPLICATED_ASSET, ["data", REWRITE_POOL_TABLE, DROPPED_TABLE]),
    ):
        for table in tables:
            frame = store.read_frame(asset, snapshot, table)
            if frame.height:
                parts.append(frame)
    contamination = store.manifest("decontaminated", snapshot)
    merged = pl.concat([p for p in parts if p.height], how="diagonal_relaxed")
    if contamination is not None:
        decon = pl.concat([store.read_frame("decontaminated", snapshot, t) for t in ("data", REWRITE_POOL_TABLE, DROPPED_TABLE)],
                          how="diagonal_relaxed").select("doc_id", "text", "drop_reason", "contamination_benchmark",
                                                         "contamination_cut_chars")
        merged = merged.join(decon, on="doc_id", how="left", suffix="_decon").with_columns(
            pl.coalesce("text_decon", "text").alias("text"),
            pl.coalesce("drop_reason", "drop_reason_decon").alias("drop_reason"),
        ).drop("text_decon", "drop_reason_decon")
    merged = merged.sort("warc_file", "doc_id")
    table = conform(merged.to_arrow(), PROCESSED)
    with store.write_partition(PROCESSED_ASSET, snapshot) as writer:
        writer.write_table("data", table)
        writer.commit({"rows": table.num_rows, "kept": int(merged["drop_reason"].is_null().sum()),
                       "drop_counts": dict(merged["drop_reason"].drop_nulls().value_counts().iter_rows())})
    return table.num_rows


def export_parquet(store: DatasetStore, snapshot: str, path: Path) -> Path:
    """Write ``processed/<snapshot>`` as one Parquet file (what most users want to open)."""
    keys = store.shard_keys(PROCESSED_ASSET, snapshot)
    with tempfile.TemporaryDirectory() as tmp:
        frames = [pl.read_parquet(store.object_store.uri(k)) for k in keys] if keys else []
        frame = pl.concat(frames) if frames else pl.from_arrow(PROCESSED.empty_table())
        tmp_path = Path(tmp) / path.name
        frame.write_parquet(tmp_path, compression="zstd")
        shutil.move(tmp_path, path)
    return path
