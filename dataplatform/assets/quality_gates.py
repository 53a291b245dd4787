"""How the asset checks run: a rule from :mod:`dataplatform.checks` over the committed partitions,
reported as one ``dg.AssetCheckResult``.

Every check reads the committed dataset through ``DatasetStorageResource``, so the same check runs
(a) in the run that materializes the asset, right after the commit, where a failing blocking check
stops the downstream assets, and (b) on its own, from the asset's Checks tab ("Execute") or the
``data_quality_checks`` job, after a person fixed the cause. In a partitioned run it checks that run's
snapshot; without a partition (on its own) it checks every committed snapshot of the asset and
reports one line per snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg
import polars as pl

from dataplatform import names
from dataplatform.checks.outcome import CheckOutcome
from dataplatform.io.datasets import DatasetStore, PartitionNotFound

GX_CHECK = "great_expectations_suite"
ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN
# Failures of reading that mean the committed data is not what the check expects (a finding, not a crash):
# a missing partition, table, file or column, or content a reader refuses (ValueError, e.g. an n-gram
# index without its header). The check then fails with the reason instead of crashing its step.
DATA_ERRORS = (
    PartitionNotFound,
    KeyError,
    FileNotFoundError,
    ValueError,
    pl.exceptions.ColumnNotFoundError,
    pl.exceptions.SchemaError,
)
MAX_FAILED_SHOWN = 10

Rule = Callable[[str], CheckOutcome]


def partitions_to_check(context: dg.AssetCheckExecutionContext, store: DatasetStore, asset: str, partitioned: bool) -> list[str]:
    """The run's snapshot when the run has one, else every committed partition of ``asset``."""
    if not partitioned:
        return [names.UNPARTITIONED]
    run = context.op_execution_context
    return [run.partition_key] if run.has_partition_key else store.partitions(asset)


def evaluate(rule: Rule, partition: str) -> CheckOutcome:
    try:
        return rule(partition)
    except DATA_ERRORS as exc:
        return CheckOutcome(False, f"could not read the committed data: {type(exc).__name__}: {exc}", {}, None)


def _metadata_value(key: str, value: Any) -> Any:
    if key.endswith("_md"):
        return dg.MetadataValue.md(str(value))
    if isinstance(value, (dict, list, tuple)) or value is None:
        return dg.MetadataValue.json(value if value is not None else {})
    return value


def _metadata(values: Mapping[str, Any]) -> dict[str, Any]:
    return {(k[: -len("_md")] if k.endswith("_md") else k): _metadata_value(k, v) for k, v in values.items()}


def _severity(outcome: CheckOutcome, declared: dg.AssetCheckSeverity) -> dg.AssetCheckSeverity:
    return {"error": ERROR, "warn": WARN}.get(outcome.severity or "", declared)


def check_result(outcomes: Mapping[str, CheckOutcome], declared: dg.AssetCheckSeverity, partitioned: bool) -> dg.AssetCheckResult:
    """One result for the checked partitions: passed when all pass; ERROR if any failure is an error."""
    failed = {p: o for p, o in outcomes.items() if not o.passed}
    severity = ERROR if any(_severity(o, declared) == ERROR for o in failed.values()) else (WARN if failed else declared)
    if len(outcomes) == 1:
        [(partition, only)] = outcomes.items()
        metadata = _metadata(only.metadata)
        if partitioned:
            metadata["snapshot"] = partition
        return dg.AssetCheckResult(passed=only.passed, severity=severity, description=only.summary[:2000], metadata=metadata)
    lines = ["| snapshot | result | summary |", "|---|---|---|"] + [
        f"| {p} | {'PASS' if o.passed else 'FAIL'} | {o.summary.replace('|', '/')[:300]} |" for p, o in outcomes.items()
    ]
    description = (
        (
            f"{len(failed)} of {len(outcomes)} snapshots fail: "
            + "; ".join(f"{p}: {o.summary}" for p, o in list(failed.items())[:3])
        )
        if failed
        else f"all {len(outcomes)} snapshots pass"
    )
    return dg.AssetCheckResult(
        passed=not failed,
        severity=severity,
        description=description[:2000],
        metadata={
            "snapshots": dg.MetadataValue.md("\n".join(lines)),
            "failed": dg.MetadataValue.json(
                {
                    p: {"summary": o.summary, **{k: v for k, v in o.metadata.items() if not k.endswith("_md")}}
                    for p, o in list(failed.items())[:MAX_FAILED_SHOWN]
                }
            ),
        },
    )


def run_rule(
    context: dg.AssetCheckExecutionContext,
    store: DatasetStore,
    asset: str,
    rule: Rule,
    *,
    partitioned: bool,
    severity: dg.AssetCheckSeverity = ERROR,
) -> dg.AssetCheckResult:
    """Evaluate ``rule`` on each partition to check (see :func:`partitions_to_check`)."""
    partitions = partitions_to_check(context, store, asset, partitioned)
    if not partitions:
        return dg.AssetCheckResult(
            passed=False, severity=severity, description=f"{asset} has no committed snapshot in {store.describe()} to check"
        )
    outcomes = {p: evaluate(rule, p) for p in partitions}
    for partition, outcome in outcomes.items():
        context.log.info(f"{asset}/{partition}: {'PASS' if outcome.passed else 'FAIL'} {outcome.summary}")
    return check_result(outcomes, severity, partitioned)
