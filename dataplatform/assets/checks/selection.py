"""Checks of the selection datasets: ``toxicity``, ``color_conditional_model`` and ``color_scores``."""

import dagster as dg

from dataplatform import names
from dataplatform.assets.quality_gates import GX_CHECK, run_rule
from dataplatform.checks import selection_rules
from dataplatform.resources.storage import DatasetStorageResource


@dg.asset_check(asset=names.TOXICITY, name=GX_CHECK, blocking=True,
                description="great-expectations on a seeded sample of kept + dropped: toxicity schema for the "
                            "scorer's dimensions, every toxicity score present and in [0, 1]; over the whole "
                            "snapshot: doc_id unique.")
def toxicity_suite(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.TOXICITY, lambda s: selection_rules.toxicity_suite(store, s), partitioned=True)


@dg.asset_check(asset=names.COLOR_CONDITIONAL_MODEL, name="target_loss_reduced", blocking=True,
                description="Fine-tuning on the target set lowered the target loss (the conditional model carries "
                            "the target's signal).")
def color_target_loss_reduced(context: dg.AssetCheckExecutionContext,
                              dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.COLOR_CONDITIONAL_MODEL, lambda _: selection_rules.target_loss_reduced(store),
                    partitioned=False)


@dg.asset_check(asset=names.COLOR_SCORES, name=GX_CHECK, blocking=True,
                description="great-expectations on a seeded sample of kept + dropped: color_scores schema, both "
                            "losses >= 0, a score wherever tokens were scored; over the whole snapshot: doc_id unique.")
def color_scores_suite(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.COLOR_SCORES, lambda s: selection_rules.color_scores_suite(store, s), partitioned=True)


CHECKS = [toxicity_suite, color_target_loss_reduced, color_scores_suite]
