"""Checks of ``filtered``, ``quality_classifier`` and ``scored``."""

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.quality_gates import GX_CHECK, run_rule
from dataplatform.checks import filter_rules, suites
from dataplatform.resources.storage import DatasetStorageResource


class DropBandConfig(dg.Config):
    min_drop_fraction: float = Field(default=0.01, ge=0, le=1, description="fail if fewer documents are set aside")
    max_drop_fraction: float = Field(default=0.99, ge=0, le=1, description="fail if more documents are set aside")


@dg.asset_check(
    asset=names.FILTERED,
    name=GX_CHECK,
    blocking=True,
    description="great-expectations on a seeded sample: filtered schema, text on kept rows, scores in "
    "range; over the whole snapshot: doc_id unique across kept + dropped, drop fraction in "
    "[min_drop_fraction, max_drop_fraction] (a filter dropping all or nothing is broken).",
)
def filtered_suite(
    context: dg.AssetCheckExecutionContext, config: DropBandConfig, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context,
        store,
        names.FILTERED,
        lambda s: suites.filtered_suite(store, s, config.min_drop_fraction, config.max_drop_fraction),
        partitioned=True,
    )


@dg.asset_check(
    asset=names.FILTERED,
    name="kept_rows_pass_every_rule",
    blocking=True,
    description="Every kept row passes every rule family (all passes_* flags true, no drop_reason) and "
    "every rejected row names its reason as <stage>:<rule>.",
)
def filtered_kept_rows_pass(
    context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.FILTERED, lambda s: filter_rules.kept_rows_pass_every_rule(store, s), partitioned=True)


class HeldoutAucConfig(dg.Config):
    min_auc: float = Field(default=0.8, ge=0, le=1, description="held-out ROC AUC below this blocks scoring")


@dg.asset_check(
    asset=names.QUALITY_CLASSIFIER,
    name="min_heldout_auc",
    blocking=True,
    description="The committed classifier's held-out ROC AUC is at least min_auc, and its model file and "
    "sidecar are in storage with the committed size.",
)
def classifier_min_heldout_auc(
    context: dg.AssetCheckExecutionContext, config: HeldoutAucConfig, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context,
        store,
        names.QUALITY_CLASSIFIER,
        lambda _: filter_rules.classifier_heldout_auc(store, config.min_auc),
        partitioned=False,
    )


@dg.asset_check(
    asset=names.SCORED,
    name=GX_CHECK,
    blocking=True,
    description="great-expectations on a seeded sample: scored schema, quality_score in [0, 1] and set on "
    "kept rows; over the whole snapshot: doc_id unique across every table, drop fraction in "
    "[min_drop_fraction, max_drop_fraction].",
)
def scored_suite(
    context: dg.AssetCheckExecutionContext, config: DropBandConfig, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context,
        store,
        names.SCORED,
        lambda s: suites.scored_suite(store, s, config.min_drop_fraction, config.max_drop_fraction),
        partitioned=True,
    )


@dg.asset_check(
    asset=names.SCORED,
    name="ranked_by_score",
    blocking=True,
    description="Tables split by rank: every kept score >= every REWIRE-pool score >= every dropped score, "
    "each table holds only its quality label, and the recorded cut is <= the lowest kept score.",
)
def scored_ranked(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.SCORED, lambda s: filter_rules.ranked_by_score(store, s), partitioned=True)


CHECKS = [filtered_suite, filtered_kept_rows_pass, classifier_min_heldout_auc, scored_suite, scored_ranked]
