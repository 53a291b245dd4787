"""Mix asset: the training mix by token proportions and its reproducibility manifest (its checks,
the blocking "no benchmark overlap" gate among them, are in ``dataplatform.assets.checks.mix``)."""

from typing import Literal

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.eval import decontaminated, eval_benchmarks, eval_splits
from dataplatform.assets.metadata import counts_table, stage_failures
from dataplatform.assets.partitions import CORPUS_POOL, OWNERS
from dataplatform.assets.synthesis import instruction_pairs, rewritten
from dataplatform.resources.storage import DatasetStorageResource, ShardExecutionResource
from dataplatform.stages.mix import MixOptions, materialize_training_mix


class TrainingMixConfig(dg.Config):
    # REWIRE mixes the raw top 10% and the rewritten top 10% 1:1 (0.6/0.4 was best at 3B).
    curated_raw: float = Field(default=0.45, ge=0, description="token share of curated raw web text (REWIRE: 1:1 with rewritten)")
    rewritten: float = Field(
        default=0.45, ge=0, description="token share of REWIRE-rewritten text (the rewrite classifier's top 10%)"
    )
    instructions: float = Field(default=0.1, ge=0, description="token share of FineInstructions pairs")
    color_selected: float = Field(
        default=0.0, ge=0, description="token share of CoLoR-Filter's selection (color_scores); 0 leaves the source out"
    )
    total_tokens: int | None = Field(default=None, description="None: the scarcest source bounds the total (no upsampling)")
    seed: int = 0
    tokenizer_path: str | None = Field(default=None, description="Hugging Face tokenizer.json; None = bundled sample tokenizer")
    on_missing: Literal["redistribute", "error"] = Field(
        default="redistribute", description="'redistribute' the share of sources not built yet, or 'error'"
    )


@dg.asset(
    deps=[decontaminated, eval_splits, eval_benchmarks, rewritten, instruction_pairs, dg.AssetKey(names.COLOR_SCORES)],
    group_name="mix",
    kinds={"parquet"},
    owners=OWNERS,
    tags={"stage": "mix"},
    pool=CORPUS_POOL,
    description="The training mix by token proportions, with a manifest that reproduces it byte for byte.",
)
def training_mix(
    context: dg.AssetExecutionContext,
    config: TrainingMixConfig,
    dataset_storage: DatasetStorageResource,
    shard_execution: ShardExecutionResource,
) -> dg.MaterializeResult:
    store = dataset_storage.dataset_store()
    options = MixOptions(
        proportions=(("curated_raw", config.curated_raw), ("rewritten", config.rewritten), ("instructions", config.instructions))
        + (((names.COLOR_SELECTED, config.color_selected),) if config.color_selected > 0 else ()),
        total_tokens=config.total_tokens,
        seed=config.seed,
        tokenizer_path=config.tokenizer_path,
        on_missing=config.on_missing,
    )
    with stage_failures("TrainingMixConfig", FileNotFoundError, ValueError):
        report = materialize_training_mix(store, options, shard_execution.executor(), progress=context.log.info)
    info = report.extra
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": info["rows"],
            "tokens": info["tokens"],
            "tokens_per_source": dg.MetadataValue.md(counts_table(info["tokens_per_source"], info["tokens"], "source")),
            "achieved_proportions": dg.MetadataValue.json(info["achieved_proportions"]),
            "redistributed_sources": dg.MetadataValue.json(info["redistributed"]),
            "manifest_sha256": info["manifest_sha256"],
            "manifest": store.object_store.uri(store.file_key(names.TRAINING_MIX, names.UNPARTITIONED, names.MIX_MANIFEST)),
        }
    )
