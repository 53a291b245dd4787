"""Filter assets: language routing + heuristic rules + PII (``filtered``), the DCLM quality
classifier (``quality_classifier``), and quality scoring with the REWIRE pool (``scored``)."""

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.ingest import documents
from dataplatform.assets.metadata import report_metadata, stage_failures
from dataplatform.assets.partitions import CORPUS_POOL, OWNERS, crawl_snapshots, snapshot_of
from dataplatform.core.language_routing import LanguageRouting
from dataplatform.core.pii import PIIConfig
from dataplatform.core.schemas import FILTERED, SCORED
from dataplatform.resources.storage import DatasetStorageResource, ShardExecutionResource
from dataplatform.stages.filtering import FilterOptions, materialize_filtered
from dataplatform.stages.scoring import (
    ClassifierTrainingOptions,
    ScoringOptions,
    materialize_quality_classifier,
    materialize_scored,
)


class FilteredConfig(dg.Config):
    target_languages: list[str] = Field(default=["en"], description="languages kept; others go to `dropped` as language:<code>")
    min_language_score: float = Field(default=0.65, ge=0, le=1, description="FineWeb's fastText LID threshold")
    redact_pii: bool = Field(default=True, description="replace e-mails, IPs and phone numbers with placeholders")


@dg.asset(
    partitions_def=crawl_snapshots,
    deps=[documents],
    group_name="filter",
    kinds={"parquet", "polars"},
    owners=OWNERS,
    tags={"stage": "filter"},
    description="English documents passing Gopher, C4 and FineWeb rules, PII redacted; rejects kept in table `dropped`.",
)
def filtered(
    context: dg.AssetExecutionContext,
    config: FilteredConfig,
    dataset_storage: DatasetStorageResource,
    shard_execution: ShardExecutionResource,
) -> dg.MaterializeResult:
    snapshot = snapshot_of(context)
    store = dataset_storage.dataset_store()
    options = FilterOptions(
        routing=LanguageRouting(tuple(config.target_languages), config.min_language_score),
        pii=PIIConfig() if config.redact_pii else None,
    )
    with stage_failures("FilteredConfig"):
        report = materialize_filtered(store, snapshot, shard_execution.executor(), options, progress=context.log.info)
    metadata = report_metadata(report, store.object_store.uri(f"{names.FILTERED}/{snapshot}"), FILTERED)
    return dg.MaterializeResult(metadata=metadata)


class QualityClassifierConfig(dg.Config):
    positives_path: str | None = Field(
        default=None, description="high-quality reference text, one document per line; None = bundled set"
    )
    max_negatives: int = Field(default=20_000, gt=0, description="random crawl documents used as negatives")
    seed: int = 0
    epoch: int = Field(default=10, gt=0)
    lr: float = Field(default=0.5, gt=0)


@dg.asset(
    deps=[filtered],
    group_name="filter",
    kinds={"fasttext"},
    pool=CORPUS_POOL,
    owners=OWNERS,
    tags={"stage": "filter"},
    description="DCLM-style fastText bigram quality classifier, versioned by its training-data hash.",
)
def quality_classifier(
    context: dg.AssetExecutionContext,
    config: QualityClassifierConfig,
    dataset_storage: DatasetStorageResource,
    shard_execution: ShardExecutionResource,
) -> dg.MaterializeResult:
    store = dataset_storage.dataset_store()
    options = ClassifierTrainingOptions(
        positives_path=config.positives_path,
        max_negatives=config.max_negatives,
        seed=config.seed,
        epoch=config.epoch,
        lr=config.lr,
    )
    with stage_failures("QualityClassifierConfig", FileNotFoundError, ValueError):
        report = materialize_quality_classifier(store, shard_execution.executor(), options, progress=context.log.info)
    info = report.extra
    metrics = info["metrics"]
    summary = (
        f"**{info['model_file']}** trained on {info['positives']} positives / {info['negatives']} negatives from "
        f"{', '.join(info['snapshots'])}; held-out AUC {metrics.get('roc_auc')}, precision {metrics.get('precision')}, "
        f"recall {metrics.get('recall')}."
    )
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(summary),
            "model_file": info["model_file"],
            "training_hash": info["training_hash"],
            "roc_auc": dg.MetadataValue.float(float(metrics.get("roc_auc") or 0.0)),
            "precision": dg.MetadataValue.float(float(metrics.get("precision") or 0.0)),
            "recall": dg.MetadataValue.float(float(metrics.get("recall") or 0.0)),
            "metrics": dg.MetadataValue.json(metrics),
            "hyperparameters": dg.MetadataValue.json(info["hyperparameters"]),
            "training_snapshots": dg.MetadataValue.json(info["snapshots"]),
            "wall_seconds": dg.MetadataValue.float(round(report.wall_seconds, 3)),
        }
    )


class ScoredConfig(dg.Config):
    top_fraction: float = Field(default=0.10, gt=0, le=1, description="share kept as high quality (DCLM: top 10%)")
    rewrite_band_low: float = Field(default=0.10, ge=0, le=1, description="REWIRE pool: rank band start (share of docs)")
    rewrite_band_high: float = Field(default=0.50, ge=0, le=1, description="REWIRE pool: rank band end (share of docs)")


@dg.asset(
    partitions_def=crawl_snapshots,
    deps=[dg.AssetKey(names.TOXICITY), quality_classifier],
    group_name="filter",
    kinds={"parquet", "fasttext"},
    owners=OWNERS,
    tags={"stage": "filter"},
    description="Quality-scored documents (of `toxicity`): top fraction in `data`, REWIRE pool in `rewrite_candidates`, rest in `dropped`.",
)
def scored(
    context: dg.AssetExecutionContext,
    config: ScoredConfig,
    dataset_storage: DatasetStorageResource,
    shard_execution: ShardExecutionResource,
) -> dg.MaterializeResult:
    snapshot = snapshot_of(context)
    store = dataset_storage.dataset_store()
    try:
        options = ScoringOptions(config.top_fraction, (config.rewrite_band_low, config.rewrite_band_high))
    except ValueError as exc:
        raise dg.Failure(description=f"ScoredConfig: {exc}") from exc
    with stage_failures("ScoredConfig"):
        report = materialize_scored(
            store, snapshot, shard_execution.executor(), options, progress=context.log.info, source=names.TOXICITY
        )
    metadata = report_metadata(report, store.object_store.uri(f"{names.SCORED}/{snapshot}"), SCORED)
    histogram = report.extra["quality_score_histogram"]
    metadata["quality_score_histogram"] = dg.MetadataValue.md(
        "| score | docs |\n|---|---:|\n" + "\n".join(f"| {k} | {'#' * min(v, 40)} {v} |" for k, v in histogram.items())
    )
    return dg.MaterializeResult(metadata=metadata)
