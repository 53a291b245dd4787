"""Checks of ``deduplicated`` and ``dedup_signature_index``: the tables' meaning and the index's
recorded signature, not how dedup computes them."""

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.quality_gates import run_rule
from dataplatform.checks import dedup_rules
from dataplatform.core.dedup import DedupConfig
from dataplatform.resources.storage import DatasetStorageResource
from dataplatform.stages.dedup import signature_params

DEFAULT_DEDUP = DedupConfig()


class NoDuplicateKeptConfig(dg.Config):
    max_earlier_snapshots: int | None = Field(
        default=None,
        ge=0,
        description="compare with this many latest earlier snapshots (None = all; each one's kept text is read)",
    )


@dg.asset_check(
    asset=names.DEDUPLICATED,
    name="no_duplicate_kept",
    blocking=True,
    description="No two kept documents (data + rewrite_pool) share a normalised-text hash, within the "
    "snapshot or with a kept document of an earlier snapshot.",
)
def deduplicated_no_duplicate_kept(
    context: dg.AssetCheckExecutionContext, config: NoDuplicateKeptConfig, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context,
        store,
        names.DEDUPLICATED,
        lambda s: dedup_rules.no_duplicate_kept(store, s, config.max_earlier_snapshots),
        partitioned=True,
    )


@dg.asset_check(
    asset=names.DEDUPLICATED,
    name="duplicate_of_resolves",
    blocking=True,
    description="Every dropped row is duplicate:exact or duplicate:minhash and its duplicate_of names a "
    "kept document of this snapshot or an earlier one (never itself).",
)
def deduplicated_duplicate_of_resolves(
    context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.DEDUPLICATED, lambda s: dedup_rules.duplicate_of_resolves(store, s), partitioned=True)


class DuplicateRateConfig(dg.Config):
    min_rate: float = Field(default=0.01, ge=0, le=1, description="fail below this duplicate rate (a broken index finds none)")
    max_rate: float = Field(default=0.8, ge=0, le=1, description="fail above this duplicate rate (a broken index drops most)")
    min_documents: int = Field(default=50, ge=0, description="below this many input documents only max_rate applies")


@dg.asset_check(
    asset=names.DEDUPLICATED,
    name="duplicate_rate_in_band",
    blocking=True,
    description="The share of input documents dropped as duplicates lies in [min_rate, max_rate], so an "
    "index that suddenly removes nothing or nearly everything stops the chain.",
)
def deduplicated_duplicate_rate(
    context: dg.AssetCheckExecutionContext, config: DuplicateRateConfig, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context,
        store,
        names.DEDUPLICATED,
        lambda s: dedup_rules.duplicate_rate(store, s, config.min_rate, config.max_rate, config.min_documents),
        partitioned=True,
    )


class SignatureConfig(dg.Config):
    """The MinHash settings in force (defaults: the deduplicated asset's defaults)."""

    ngram: int = Field(default=DEFAULT_DEDUP.ngram, gt=0)
    num_perm: int = Field(default=DEFAULT_DEDUP.num_perm, gt=0)
    bands: int = Field(default=DEFAULT_DEDUP.bands, gt=0)
    rows: int = Field(default=DEFAULT_DEDUP.rows, gt=0)
    seed: int = DEFAULT_DEDUP.seed


@dg.asset_check(
    asset=names.SIGNATURE_INDEX,
    name="signature_matches_config",
    blocking=True,
    description="The segment's recorded signature (format version + MinHash ngram, num_perm, bands, rows, "
    "seed) equals the configured settings, every other segment's, and what deduplicated used: "
    "band hashes of other settings never match and would miss duplicates silently.",
)
def index_signature_matches(
    context: dg.AssetCheckExecutionContext, config: SignatureConfig, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    expected = signature_params(
        DedupConfig(ngram=config.ngram, num_perm=config.num_perm, bands=config.bands, rows=config.rows, seed=config.seed)
    )
    return run_rule(
        context, store, names.SIGNATURE_INDEX, lambda s: dedup_rules.signature_matches(store, s, expected), partitioned=True
    )


@dg.asset_check(
    asset=names.SIGNATURE_INDEX,
    name="covers_kept_documents",
    blocking=True,
    description="The segment records as many documents as deduplicated kept for the snapshot, and every "
    "doc_id it holds is one of them.",
)
def index_covers_kept(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.SIGNATURE_INDEX, lambda s: dedup_rules.index_covers_kept(store, s), partitioned=True)


CHECKS = [
    deduplicated_no_duplicate_kept,
    deduplicated_duplicate_of_resolves,
    deduplicated_duplicate_rate,
    index_signature_matches,
    index_covers_kept,
]
