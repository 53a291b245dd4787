"""Toxicity asset: a score per document and dimension after the heuristic filters; the policy
(score only, or drop above per-dimension thresholds) is configuration. ``scored`` reads it."""

from typing import Literal

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.filtering import filtered
from dataplatform.assets.metadata import report_metadata, stage_failures
from dataplatform.assets.partitions import OWNERS, crawl_snapshots, snapshot_of
from dataplatform.core.toxicity import (
    ScorerSpec,
    ToxicityPolicy,
)
from dataplatform.resources.storage import (
    DatasetStorageResource,
    ShardExecutionResource,
)
from dataplatform.stages.toxicity import (
    ToxicityOptions,
    materialize_toxicity,
    toxicity_schema,
)


class ToxicityConfig(dg.Config):
    scorer: Literal["profanity_check", "fasttext", "hf_classifier"] = Field(
        default="profanity_check",
        description="profanity_check (shipped, offline), fasttext (e.g. Dolma's Jigsaw "
        "taggers) or hf_classifier (e.g. Celadon, a local Hugging Face folder)",
    )
    model_path: str = Field(default="", description="fastText .bin or Hugging Face folder; '' for profanity_check")
    policy: Literal["score_only", "drop_above_threshold"] = Field(
        default="score_only", description="score only (keep everything), or drop documents above a dimension's threshold"
    )
    thresholds: dict[str, float] = Field(
        default={},
        description="dimension -> threshold in [0, 1] ('*' = every other dimension); with score_only they only feed the metadata",
    )
    max_chunk_chars: int = Field(
        default=1000,
        gt=0,
        description="documents are scored in chunks of about this many characters; a document's score is its worst chunk's",
    )
    device: str = Field(default="cpu", description="hf_classifier: torch device ('cpu', 'cuda:0')")
    batch_size: int = Field(default=32, gt=0, description="hf_classifier: texts per forward pass")
    dimensions: list[str] = Field(
        default=[],
        description="hf_classifier: names of the model's heads (default: its labels, "
        "or Celadon's five dimensions for a five-head model)",
    )
    trust_remote_code: bool = Field(default=False, description="hf_classifier: run Python shipped in the model folder")


def toxicity_options(config: ToxicityConfig) -> ToxicityOptions:
    scorer = ScorerSpec(
        kind=config.scorer,
        model_path=config.model_path or None,
        device=config.device,
        batch_size=config.batch_size,
        dimensions=tuple(config.dimensions),
        trust_remote_code=config.trust_remote_code,
    )
    return ToxicityOptions(
        scorer=scorer,
        policy=ToxicityPolicy(config.policy, tuple(sorted(config.thresholds.items()))),
        max_chunk_chars=config.max_chunk_chars,
    )


@dg.asset(
    partitions_def=crawl_snapshots,
    deps=[filtered],
    group_name="filter",
    kinds={"parquet", "scikitlearn"},
    owners=OWNERS,
    tags={"stage": "filter"},
    description="Toxicity score per document and dimension (toxicity_<dimension>, toxicity_score); policy in config.",
)
def toxicity(
    context: dg.AssetExecutionContext,
    config: ToxicityConfig,
    dataset_storage: DatasetStorageResource,
    shard_execution: ShardExecutionResource,
) -> dg.MaterializeResult:
    snapshot = snapshot_of(context)
    store = dataset_storage.dataset_store()
    with stage_failures("ToxicityConfig", ValueError, FileNotFoundError, ImportError):
        report = materialize_toxicity(
            store, snapshot, shard_execution.executor(), toxicity_options(config), progress=context.log.info
        )
    dimensions = tuple(report.extra["dimensions"])
    schema = toxicity_schema(dimensions)
    metadata = report_metadata(report, store.object_store.uri(f"{names.TOXICITY}/{snapshot}"), schema)
    metadata["tradeoff_table"] = dg.MetadataValue.md(report.extra["tradeoff_table"])
    return dg.MaterializeResult(metadata=metadata)
