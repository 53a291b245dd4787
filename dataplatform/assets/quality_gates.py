"""great-expectations suites run as blocking Dagster asset checks on each hand-off.

The checks are declared on the assets (``check_specs``) and evaluated in the same step, right
after the partition is committed, so they know the partition and the stage's whole-dataset
counts (drop fraction) without re-reading everything. Large partitions are validated on a
bounded, seeded sample; the check metadata says so. A failing blocking check stops downstream
assets of the same run.
"""

import dagster as dg
import polars as pl

from dataplatform.checks import ValidationOutcome, validate

GX_CHECK = "great_expectations_suite"
SAMPLE_ROWS = 50_000
SAMPLE_SEED = 0


def gx_check_spec(asset: str, what: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(GX_CHECK, asset=asset, blocking=True, description=f"great-expectations: {what}")


def run_gx_check(asset: str, frame: pl.DataFrame | pl.LazyFrame, expectations, suite: str) -> dg.AssetCheckResult:
    outcome: ValidationOutcome = validate(frame, expectations, suite_name=suite, max_rows=SAMPLE_ROWS, seed=SAMPLE_SEED)
    failed = {r.name: r.observed for r in outcome.failed}
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=GX_CHECK,
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.summary().splitlines()[0],
        metadata={
            "summary": dg.MetadataValue.md("```\n" + outcome.summary() + "\n```"),
            "rows_validated": outcome.rows_validated,
            "rows_total": outcome.rows_total,
            "sampled": outcome.sampled,
            "sample_seed": outcome.seed,
            "failed_rules": dg.MetadataValue.json({k: repr(v) for k, v in failed.items()}),
            "rules": dg.MetadataValue.json([{"rule": r.name, "passed": r.success} for r in outcome.results]),
        },
    )
