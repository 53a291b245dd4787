"""Checks of the benchmark files (external), ``eval_benchmarks``, ``decontaminated``, ``eval_splits``
and ``contamination_audit``."""

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.quality_gates import ERROR, GX_CHECK, WARN, check_result, evaluate, run_rule
from dataplatform.checks import eval_rules, suites
from dataplatform.core.decontamination import DEFAULT_N, DEFAULT_TEXT_FIELDS
from dataplatform.resources.storage import DatasetStorageResource

KEPT_TABLES = (names.DATA, names.REWRITE_POOL)


class BenchmarkFilesConfig(dg.Config):
    benchmarks_path: str = Field(default="", description="folder or file of benchmark items; '' = bundled sample_qa")
    ngram: int = Field(default=DEFAULT_N, gt=0)
    text_fields: list[str] = Field(default=list(DEFAULT_TEXT_FIELDS))


@dg.asset_check(
    asset=names.BENCHMARK_FILES,
    name="benchmark_files_valid",
    description="Every benchmark file parses (JSONL/Parquet), has at least one item, and every item has text.",
)
def benchmark_files_valid(context: dg.AssetCheckExecutionContext, config: BenchmarkFilesConfig) -> dg.AssetCheckResult:
    from dataplatform.sample_data import SAMPLE_BENCHMARKS_DIR

    path = config.benchmarks_path or str(SAMPLE_BENCHMARKS_DIR)
    result = evaluate(lambda _: eval_rules.benchmark_files_valid(path, tuple(config.text_fields), config.ngram), path)
    return check_result({path: result}, ERROR, partitioned=False)


@dg.asset_check(
    asset=names.EVAL_BENCHMARKS,
    name="items_complete",
    blocking=True,
    description="Every benchmark item has non-empty text and an id unique within its benchmark; no "
    "benchmark (or benchmark file) is empty; counts agree with the recorded ones.",
)
def eval_benchmarks_items_complete(
    context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context, store, names.EVAL_BENCHMARKS, lambda _: eval_rules.benchmark_items_complete(store), partitioned=False
    )


@dg.asset_check(
    asset=names.EVAL_BENCHMARKS,
    name="ngram_index_consistent",
    blocking=True,
    description="The committed n-gram index is the index of the committed items: same n, the recorded "
    "number of n-grams, identical hashes when rebuilt from the items.",
)
def eval_benchmarks_index_consistent(
    context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.EVAL_BENCHMARKS, lambda _: eval_rules.ngram_index_consistent(store), partitioned=False)


@dg.asset_check(
    asset=names.DECONTAMINATED,
    name=GX_CHECK,
    blocking=True,
    description="great-expectations on a seeded sample: decontaminated schema, non-null text and doc_id; "
    "doc_id unique over kept, REWIRE pool and dropped of the whole snapshot.",
)
def decontaminated_suite(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.DECONTAMINATED, lambda s: suites.decontaminated_suite(store, s), partitioned=True)


@dg.asset_check(
    asset=names.DECONTAMINATED,
    name="no_benchmark_overlap",
    blocking=True,
    additional_deps=[names.EVAL_BENCHMARKS],
    description="No kept document and no REWIRE-pool document shares an n-gram with any item of the committed benchmark index.",
)
def decontaminated_no_overlap(
    context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context,
        store,
        names.DECONTAMINATED,
        lambda s: eval_rules.no_benchmark_overlap(store, names.DECONTAMINATED, s, KEPT_TABLES),
        partitioned=True,
    )


@dg.asset_check(
    asset=names.EVAL_SPLITS,
    name="splits_disjoint",
    blocking=True,
    description="No document is in two splits (or twice in one) and every split document is a committed decontaminated document.",
)
def eval_splits_disjoint(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.EVAL_SPLITS, lambda _: eval_rules.splits_disjoint(store), partitioned=False)


@dg.asset_check(
    asset=names.EVAL_SPLITS,
    name="every_split_non_empty",
    description="WARN when a split the configuration asks for (fraction > 0; temporal mode: train and "
    "test) has no document: nothing can be evaluated on it (the mix, train only, is not wrong).",
)
def eval_splits_non_empty(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context, store, names.EVAL_SPLITS, lambda _: eval_rules.every_split_non_empty(store), partitioned=False, severity=WARN
    )


class SplitFractionsConfig(dg.Config):
    tolerance_sigmas: float = Field(
        default=4.0, gt=0, description="allowed distance from fraction x total, in binomial standard deviations"
    )


@dg.asset_check(
    asset=names.EVAL_SPLITS,
    name="fractions_match_config",
    description="WARN when a split's size is further than tolerance_sigmas binomial standard deviations "
    "(and one document) from its configured fraction x total (hash mode).",
)
def eval_splits_fractions(
    context: dg.AssetCheckExecutionContext, config: SplitFractionsConfig, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context,
        store,
        names.EVAL_SPLITS,
        lambda _: eval_rules.fractions_match_config(store, config.tolerance_sigmas),
        partitioned=False,
        severity=WARN,
    )


@dg.asset_check(
    asset=names.EVAL_SPLITS,
    name="no_document_moved_split",
    blocking=True,
    description="No document changed split since the previous committed version (held for the retention "
    "period): an error under unchanged salt and fractions, a WARN when they were changed on "
    "purpose; temporal mode allows test -> train only.",
)
def eval_splits_stable(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.EVAL_SPLITS, lambda _: eval_rules.no_document_moved_split(store), partitioned=False)


@dg.asset_check(
    asset=names.CONTAMINATION_AUDIT,
    name="audit_complete",
    description="The Min-K% audit is complete: a valid status; when calibrated, the members-vs-non-members AUC "
    "and its bootstrap 95% interval in [0, 1] with a status that agrees; every committed benchmark "
    "audited with a finite score for every item scored.",
)
def contamination_audit_complete(
    context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.CONTAMINATION_AUDIT, lambda _: eval_rules.audit_complete(store), partitioned=False)


class LikelySeenConfig(dg.Config):
    significance: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="one-sided binomial test level for 'more items flagged than the false-positive rate explains'",
    )


@dg.asset_check(
    asset=names.CONTAMINATION_AUDIT,
    name="benchmarks_not_likely_seen",
    description="WARN when a benchmark is likely seen by the reference model: the audit is calibrated (its "
    "member/non-member AUC interval excludes 0.5) and significantly more of the benchmark's items "
    "are flagged than its false-positive rate explains (one-sided binomial test).",
)
def contamination_audit_not_seen(
    context: dg.AssetCheckExecutionContext, config: LikelySeenConfig, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context,
        store,
        names.CONTAMINATION_AUDIT,
        lambda _: eval_rules.benchmarks_not_likely_seen(store, config.significance),
        partitioned=False,
        severity=WARN,
    )


CHECKS = [
    benchmark_files_valid,
    eval_benchmarks_items_complete,
    eval_benchmarks_index_consistent,
    decontaminated_suite,
    decontaminated_no_overlap,
    eval_splits_disjoint,
    eval_splits_non_empty,
    eval_splits_fractions,
    eval_splits_stable,
    contamination_audit_complete,
    contamination_audit_not_seen,
]
