"""Checks of ``training_mix``: the blocking no-benchmark-overlap gate, its GX suite, and no held-out text."""

import dagster as dg

from dataplatform import names
from dataplatform.assets.quality_gates import GX_CHECK, run_rule
from dataplatform.checks import eval_rules, mix_rules, suites
from dataplatform.resources.storage import DatasetStorageResource


@dg.asset_check(
    asset=names.TRAINING_MIX,
    name="no_benchmark_overlap",
    blocking=True,
    additional_deps=[names.EVAL_BENCHMARKS],
    description="No row of the committed mix shares an n-gram with any item of the committed benchmark index.",
)
def mix_no_benchmark_overlap(
    context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context,
        store,
        names.TRAINING_MIX,
        lambda p: eval_rules.no_benchmark_overlap(store, names.TRAINING_MIX, p, (names.DATA,)),
        partitioned=False,
    )


@dg.asset_check(
    asset=names.TRAINING_MIX,
    name=GX_CHECK,
    blocking=True,
    description="great-expectations on a seeded sample: mix schema, text present, n_tokens >= 1, source in "
    "curated_raw / rewritten / instructions; doc_id unique over the whole mix.",
)
def mix_suite(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.TRAINING_MIX, lambda _: suites.training_mix_suite(store), partitioned=False)


@dg.asset_check(
    asset=names.TRAINING_MIX,
    name="no_heldout_documents",
    blocking=True,
    additional_deps=[names.EVAL_SPLITS],
    description="No mix row comes from a validation or test document: neither its doc_id nor its "
    "source_doc_id (the document a rewrite or instruction pair was made from) is held out.",
)
def mix_no_heldout(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.TRAINING_MIX, lambda _: mix_rules.no_heldout_documents(store), partitioned=False)


CHECKS = [mix_no_benchmark_overlap, mix_suite, mix_no_heldout]
