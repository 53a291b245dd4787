"""Eval assets: the benchmark n-gram index, decontamination per snapshot, and the eval splits."""

from typing import Literal

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.metadata import counts_table, report_metadata, stage_failures
from dataplatform.assets.partitions import CORPUS_POOL, OWNERS, crawl_snapshots, snapshot_of
from dataplatform.core.schemas import DECONTAMINATED
from dataplatform.resources.storage import DatasetStorageResource, ShardExecutionResource
from dataplatform.stages.decontamination import decontaminate_partition, materialize_eval_benchmarks
from dataplatform.stages.mix import SplitOptions, materialize_eval_splits

benchmark_files = dg.AssetSpec(
    names.BENCHMARK_FILES,
    description="Evaluation benchmark items (JSONL/Parquet) whose text must never appear in training data.",
    group_name="eval",
    kinds={"json"},
    owners=OWNERS,
)


def _default_benchmarks_path() -> str:
    from dataplatform.sample_data import SAMPLE_BENCHMARKS_DIR

    return str(SAMPLE_BENCHMARKS_DIR)


class EvalBenchmarksConfig(dg.Config):
    benchmarks_path: str = Field(default="", description="folder or file of benchmark items; '' = bundled sample_qa")
    ngram: int = Field(default=13, gt=0, description="overlap length in words (GPT-3 practice: 13)")
    text_fields: list[str] = Field(default=["question", "choices", "answer", "context"])


@dg.asset(
    deps=[benchmark_files],
    group_name="eval",
    kinds={"parquet"},
    owners=OWNERS,
    tags={"stage": "eval"},
    pool=CORPUS_POOL,
    description="Benchmark items and their n-gram index, the reference for decontamination.",
)
def eval_benchmarks(config: EvalBenchmarksConfig, dataset_storage: DatasetStorageResource) -> dg.MaterializeResult:
    store = dataset_storage.dataset_store()
    with stage_failures("EvalBenchmarksConfig", FileNotFoundError, ValueError):
        report = materialize_eval_benchmarks(
            store, config.benchmarks_path or _default_benchmarks_path(), config.ngram, tuple(config.text_fields)
        )
    info = report.extra
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": info["items"],
            "items_per_benchmark": dg.MetadataValue.md(counts_table(info["items_per_benchmark"], info["items"], "benchmark")),
            "ngrams": info["ngrams"],
            "ngram_n": info["ngram_n"],
            "short_items": dg.MetadataValue.json(info["short_items"]),
            "files": dg.MetadataValue.json(info["files"]),
        }
    )


class DecontaminatedConfig(dg.Config):
    mode: Literal["drop", "cut"] = Field(
        default="drop", description="'drop' contaminated documents or 'cut' the overlapping spans"
    )


@dg.asset(
    partitions_def=crawl_snapshots,
    deps=[dg.AssetKey(names.DEDUPLICATED), eval_benchmarks],
    group_name="eval",
    kinds={"parquet"},
    owners=OWNERS,
    tags={"stage": "eval"},
    description="Deduplicated documents with benchmark n-gram overlaps removed; hits kept in `dropped` as contamination:<benchmark>.",
)
def decontaminated(
    context: dg.AssetExecutionContext,
    config: DecontaminatedConfig,
    dataset_storage: DatasetStorageResource,
    shard_execution: ShardExecutionResource,
) -> dg.MaterializeResult:
    snapshot = snapshot_of(context)
    store = dataset_storage.dataset_store()
    with stage_failures("DecontaminatedConfig"):
        report = decontaminate_partition(store, snapshot, shard_execution.executor(), mode=config.mode, progress=context.log.info)
    metadata = report_metadata(report, store.object_store.uri(f"{names.DECONTAMINATED}/{snapshot}"), DECONTAMINATED)
    return dg.MaterializeResult(metadata=metadata)


class EvalSplitsConfig(dg.Config):
    mode: Literal["hash", "temporal"] = Field(
        default="hash", description="'hash' (stable per doc_id) or 'temporal' (newest snapshots are test)"
    )
    validation_fraction: float = Field(default=0.01, ge=0, lt=1)
    test_fraction: float = Field(default=0.01, ge=0, lt=1)
    salt: str = Field(default="dataplatform-v1", description="changing it reshuffles every split")
    holdout_snapshots: int = Field(default=1, gt=0, description="temporal mode: newest snapshots held out")


@dg.asset(
    deps=[decontaminated],
    group_name="eval",
    kinds={"parquet"},
    owners=OWNERS,
    tags={"stage": "eval"},
    pool=CORPUS_POOL,
    description="train / validation / test assignment of every curated document, stable as snapshots arrive.",
)
def eval_splits(
    context: dg.AssetExecutionContext,
    config: EvalSplitsConfig,
    dataset_storage: DatasetStorageResource,
    shard_execution: ShardExecutionResource,
) -> dg.MaterializeResult:
    store = dataset_storage.dataset_store()
    fractions = (
        ("train", 1.0 - config.validation_fraction - config.test_fraction),
        ("validation", config.validation_fraction),
        ("test", config.test_fraction),
    )
    with stage_failures("EvalSplitsConfig", ValueError):
        report = materialize_eval_splits(
            store,
            shard_execution.executor(),
            SplitOptions(config.mode, fractions, config.salt, config.holdout_snapshots),
            progress=context.log.info,
        )
    info = report.extra
    total = sum(info["counts"].values())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": total,
            "splits": dg.MetadataValue.md(counts_table(info["counts"], total, "split")),
            "mode": info["mode"],
            "snapshots": dg.MetadataValue.json(info["snapshots"]),
        }
    )
