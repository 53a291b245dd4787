"""Checks of the selection datasets: ``toxicity``, ``color_conditional_model`` and ``color_scores``."""

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.quality_gates import ERROR, GX_CHECK, check_result, evaluate, run_rule
from dataplatform.checks import selection_rules
from dataplatform.resources.storage import DatasetStorageResource


@dg.asset_check(
    asset=names.TOXICITY,
    name=GX_CHECK,
    blocking=True,
    description="great-expectations on a seeded sample of kept + dropped: toxicity schema for the "
    "scorer's dimensions, every toxicity score present and in [0, 1]; over the whole "
    "snapshot: doc_id unique.",
)
def toxicity_suite(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.TOXICITY, lambda s: selection_rules.toxicity_suite(store, s), partitioned=True)


class ColorTargetConfig(dg.Config):
    target_path: str = Field(default="", description="the target set color_conditional_model uses; '' = the bundled set")


@dg.asset_check(
    asset=names.COLOR_TARGET_FILES,
    name="color_target_readable",
    description="The CoLoR-Filter target set parses (.txt documents separated by blank lines, or .jsonl "
    "with a text field) and holds at least 5 documents.",
)
def color_target_readable(context: dg.AssetCheckExecutionContext, config: ColorTargetConfig) -> dg.AssetCheckResult:
    path = config.target_path or None
    return check_result(
        {path or "bundled": evaluate(lambda _: selection_rules.color_target_readable(path), "target")}, ERROR, partitioned=False
    )


@dg.asset_check(
    asset=names.COLOR_CONDITIONAL_MODEL,
    name="target_loss_reduced",
    blocking=True,
    description="Fine-tuning on the target set lowered the target loss (the conditional model carries the target's signal).",
)
def color_target_loss_reduced(
    context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context, store, names.COLOR_CONDITIONAL_MODEL, lambda _: selection_rules.target_loss_reduced(store), partitioned=False
    )


@dg.asset_check(
    asset=names.COLOR_SCORES,
    name=GX_CHECK,
    blocking=True,
    description="great-expectations on a seeded sample of kept + dropped: color_scores schema, both "
    "losses >= 0, a score wherever tokens were scored; over the whole snapshot: doc_id unique.",
)
def color_scores_suite(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.COLOR_SCORES, lambda s: selection_rules.color_scores_suite(store, s), partitioned=True)


CHECKS = [toxicity_suite, color_target_readable, color_target_loss_reduced, color_scores_suite]
