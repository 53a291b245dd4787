"""Eval and mix assets: benchmark n-gram index, decontamination per snapshot, eval splits, the
training mix with its reproducibility manifest, and the blocking "no benchmark overlap" gate."""

import dagster as dg
from pydantic import Field

from dataplatform.assets.metadata import counts_table, report_metadata
from dataplatform.assets.partitions import OWNERS, crawl_snapshots, snapshot_of
from dataplatform.assets.quality_gates import gx_check_spec, run_gx_check
from dataplatform.checks import between, columns_match, not_null, unique
from dataplatform.core.schemas import DECONTAMINATED, MIX
from dataplatform.resources.storage import DatasetStorageResource
from dataplatform.stages.decontamination import (
    DECONTAMINATED_ASSET,
    decontaminate_partition,
    materialize_eval_benchmarks,
)
from dataplatform.stages.mix import (
    TRAINING_MIX_ASSET,
    MixOptions,
    SplitOptions,
    materialize_eval_splits,
    materialize_training_mix,
)
from dataplatform.stages.scoring import UNPARTITIONED

benchmark_files = dg.AssetSpec(
    "benchmark_files",
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


@dg.asset(deps=[benchmark_files], group_name="eval", kinds={"parquet"}, owners=OWNERS, tags={"stage": "eval"},
          description="Benchmark items and their n-gram index, the reference for decontamination.")
def eval_benchmarks(config: EvalBenchmarksConfig, dataset_storage: DatasetStorageResource) -> dg.MaterializeResult:
    store = dataset_storage.dataset_store()
    try:
        info = materialize_eval_benchmarks(store, config.benchmarks_path or _default_benchmarks_path(), config.ngram,
                                           tuple(config.text_fields))
    except (FileNotFoundError, ValueError) as exc:
        raise dg.Failure(description=f"EvalBenchmarksConfig: {exc}") from exc
    return dg.MaterializeResult(metadata={
        "dagster/row_count": info["items"],
        "items_per_benchmark": dg.MetadataValue.md(counts_table(info["items_per_benchmark"], info["items"], "benchmark")),
        "ngrams": info["ngrams"], "ngram_n": info["ngram_n"],
        "short_items": dg.MetadataValue.json(info["short_items"]),
        "files": dg.MetadataValue.json(info["files"]),
    })


class DecontaminatedConfig(dg.Config):
    mode: str = Field(default="drop", description="'drop' contaminated documents or 'cut' the overlapping spans")


@dg.asset(partitions_def=crawl_snapshots, deps=["deduplicated", eval_benchmarks],
          group_name="eval", kinds={"parquet"}, owners=OWNERS, tags={"stage": "eval"},
          description="Deduplicated documents with benchmark n-gram overlaps removed; hits kept in `dropped` as contamination:<benchmark>.",
          check_specs=[gx_check_spec("decontaminated", "schema, unique doc_id, non-null text")])
def decontaminated(context: dg.AssetExecutionContext, config: DecontaminatedConfig, dataset_storage: DatasetStorageResource) -> dg.MaterializeResult:
    snapshot = snapshot_of(context)
    if config.mode not in ("drop", "cut"):
        raise dg.Failure(description=f"DecontaminatedConfig.mode must be 'drop' or 'cut', got {config.mode!r}")
    store = dataset_storage.dataset_store()
    report = decontaminate_partition(store, snapshot, mode=config.mode)
    metadata = report_metadata(report, DECONTAMINATED, store.object_store.uri(f"{DECONTAMINATED_ASSET}/{snapshot}"))
    metadata["contamination_hits"] = dg.MetadataValue.md(counts_table(report.extra["contamination_hits"], report.rows_in, "benchmark"))
    rules = [columns_match(DECONTAMINATED.names), unique("doc_id"), not_null("text"), not_null("doc_id")]
    check = run_gx_check("decontaminated", store.scan(DECONTAMINATED_ASSET, snapshot), rules, f"decontaminated/{snapshot}")
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


class EvalSplitsConfig(dg.Config):
    mode: str = Field(default="hash", description="'hash' (stable per doc_id) or 'temporal' (newest snapshots are test)")
    validation_fraction: float = Field(default=0.01, ge=0, lt=1)
    test_fraction: float = Field(default=0.01, ge=0, lt=1)
    salt: str = Field(default="dataplatform-v1", description="changing it reshuffles every split")
    holdout_snapshots: int = Field(default=1, gt=0, description="temporal mode: newest snapshots held out")


@dg.asset(deps=[decontaminated], group_name="eval", kinds={"parquet"}, owners=OWNERS, tags={"stage": "eval"},
          description="train / validation / test assignment of every curated document, stable as snapshots arrive.")
def eval_splits(config: EvalSplitsConfig, dataset_storage: DatasetStorageResource) -> dg.MaterializeResult:
    store = dataset_storage.dataset_store()
    fractions = (("train", 1.0 - config.validation_fraction - config.test_fraction),
                 ("validation", config.validation_fraction), ("test", config.test_fraction))
    try:
        info = materialize_eval_splits(store, SplitOptions(config.mode, fractions, config.salt, config.holdout_snapshots))
    except ValueError as exc:
        raise dg.Failure(description=f"EvalSplitsConfig: {exc}") from exc
    total = sum(info["counts"].values())
    return dg.MaterializeResult(metadata={
        "dagster/row_count": total,
        "splits": dg.MetadataValue.md(counts_table(info["counts"], total, "split")),
        "mode": info["mode"],
        "snapshots": dg.MetadataValue.json(info["snapshots"]),
    })


class TrainingMixConfig(dg.Config):
    # REWIRE mixes the raw top 10% and the rewritten top 10% 1:1 (0.6/0.4 was best at 3B).
    curated_raw: float = Field(default=0.45, ge=0, description="token share of curated raw web text (REWIRE: 1:1 with rewritten)")
    rewritten: float = Field(default=0.45, ge=0, description="token share of REWIRE-rewritten text (the rewrite classifier's top 10%)")
    instructions: float = Field(default=0.1, ge=0, description="token share of FineInstructions pairs")
    total_tokens: int | None = Field(default=None, description="None: the scarcest source bounds the total (no upsampling)")
    seed: int = 0
    tokenizer_path: str | None = Field(default=None, description="Hugging Face tokenizer.json; None = bundled sample tokenizer")
    on_missing: str = Field(default="redistribute", description="'redistribute' the share of sources not built yet, or 'error'")


@dg.asset(deps=[decontaminated, eval_splits, eval_benchmarks, "rewritten", "instruction_pairs"],
          group_name="mix", kinds={"parquet"}, owners=OWNERS, tags={"stage": "mix"},
          description="The training mix by token proportions, with a manifest that reproduces it byte for byte.",
          check_specs=[dg.AssetCheckSpec("no_benchmark_overlap", asset=TRAINING_MIX_ASSET, blocking=True,
                                         description="no document of the mix shares an n-gram with any benchmark item"),
                       gx_check_spec(TRAINING_MIX_ASSET, "schema, unique ids, positive token counts")])
def training_mix(config: TrainingMixConfig, dataset_storage: DatasetStorageResource) -> dg.MaterializeResult:
    store = dataset_storage.dataset_store()
    options = MixOptions(
        proportions=(("curated_raw", config.curated_raw), ("rewritten", config.rewritten), ("instructions", config.instructions)),
        total_tokens=config.total_tokens, seed=config.seed, tokenizer_path=config.tokenizer_path, on_missing=config.on_missing)
    try:
        info = materialize_training_mix(store, options)
    except (FileNotFoundError, ValueError) as exc:
        raise dg.Failure(description=f"TrainingMixConfig: {exc}") from exc
    overlaps = info["benchmark_overlaps"]
    overlap_check = dg.AssetCheckResult(check_name="no_benchmark_overlap", passed=not any(overlaps.values()),
                                        severity=dg.AssetCheckSeverity.ERROR, metadata={"overlaps": dg.MetadataValue.json(overlaps)})
    gx = run_gx_check(TRAINING_MIX_ASSET, store.scan(TRAINING_MIX_ASSET, UNPARTITIONED),
                      [columns_match(MIX.names), unique("doc_id"), not_null("text"), between("n_tokens", 1, None)], "training_mix")
    return dg.MaterializeResult(check_results=[overlap_check, gx], metadata={
        "dagster/row_count": info["rows"],
        "tokens": info["tokens"],
        "tokens_per_source": dg.MetadataValue.md(counts_table(info["tokens_per_source"], info["tokens"], "source")),
        "achieved_proportions": dg.MetadataValue.json(info["achieved_proportions"]),
        "redistributed_sources": dg.MetadataValue.json(info["redistributed"]),
        "manifest_sha256": info["manifest_sha256"],
        "manifest": store.object_store.uri(store.file_key(TRAINING_MIX_ASSET, UNPARTITIONED, "mix_manifest.json")),
    })
