"""great-expectations suites of the committed datasets, one function per dataset (no Dagster here).

Each suite validates a bounded, seeded sample of the partition's kept table with GX 1.x (GX has no
Polars engine; see :mod:`.gx_validation`) and adds figures measured on the *whole* partition, which
a sample cannot prove: duplicate ids over every table of the partition, and the drop fraction.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from dataplatform import names
from dataplatform.checks.dataset_checks import documents_expectations, filtered_expectations, scored_expectations
from dataplatform.checks.frames import duplicate_values, scan_tables, table_rows
from dataplatform.checks.gx_validation import (
    ExpectationSpec,
    between,
    columns_match,
    fraction_between,
    not_null,
    validate,
    value_in_set,
)
from dataplatform.checks.outcome import CheckOutcome
from dataplatform.core.schemas import DECONTAMINATED, FILTERED, MIX, QUARANTINE, RAW_PAGES, SCORED
from dataplatform.io.datasets import DatasetStore

SAMPLE_ROWS = 50_000
SAMPLE_SEED = 0
HTTP_OK = 200
MIX_SOURCES = ("curated_raw", "rewritten", "instructions")


def gx_outcome(frame: pl.LazyFrame | pl.DataFrame, rules: list[ExpectationSpec], suite: str) -> CheckOutcome:
    """Run ``rules`` as one GX suite on a seeded sample of ``frame`` (whole frame when small)."""
    result = validate(frame, rules, suite_name=suite, max_rows=SAMPLE_ROWS, seed=SAMPLE_SEED)
    return CheckOutcome(
        result.success,
        result.summary().splitlines()[0],
        {
            "summary_md": "```\n" + result.summary() + "\n```",
            "rows_validated": result.rows_validated,
            "rows_total": result.rows_total,
            "sampled": result.sampled,
            "sample_seed": result.seed,
            "failed_rules": {r.name: repr(r.observed) for r in result.failed},
            "rules": [{"rule": r.name, "passed": r.success} for r in result.results],
        },
    )


def unique_over_partition(
    store: DatasetStore, asset: str, partition: str, tables: Sequence[str], column: str = "doc_id"
) -> list[ExpectationSpec]:
    """Whole-partition rules: no ``column`` value twice and none null across ``tables``."""
    scan = scan_tables(store, asset, partition, tuple(tables))
    duplicates, nulls = (0, 0) if scan is None else duplicate_values(scan, column)[:2]
    where = "+".join(tables)
    return [
        fraction_between(f"unique({column}) over {where}", duplicates, 0, 0),
        fraction_between(f"not_null({column}) over {where}", nulls, 0, 0),
    ]


def _drop_fraction(manifest: dict, kept: Sequence[str], dropped: str) -> float | None:
    total = sum(table_rows(manifest, t) for t in (*kept, dropped))
    return table_rows(manifest, dropped) / total if total else None


def _data(store: DatasetStore, asset: str, partition: str, table: str = names.DATA) -> pl.LazyFrame | pl.DataFrame:
    scan = scan_tables(store, asset, partition, (table,))
    return scan if scan is not None else pl.DataFrame()


def raw_pages_suite(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """raw_pages: schema, HTTP 200 responses with a URL and a non-negative payload size, unique WARC
    record ids over the partition, quarantine rows in the quarantine schema with ``quarantine:*`` reasons."""
    quarantine = scan_tables(store, names.RAW_PAGES, snapshot, (names.QUARANTINE,))
    present = set(quarantine.collect_schema().names()) if quarantine is not None else set(QUARANTINE.names)
    missing = [name for name in QUARANTINE.names if name not in present]
    bad_reasons = (
        0
        if quarantine is None or missing
        else int(quarantine.select((~pl.col("reason").fill_null("").str.starts_with("quarantine:")).sum()).collect().item())
    )
    rules = [
        columns_match(RAW_PAGES.names),
        not_null("warc_record_id"),
        not_null("url"),
        value_in_set("http_status", [HTTP_OK]),
        between("payload_bytes", 0, None),
        *unique_over_partition(store, names.RAW_PAGES, snapshot, (names.DATA,), "warc_record_id"),
        fraction_between("quarantine columns missing", len(missing), 0, 0),
        fraction_between("quarantine reasons not quarantine:*", bad_reasons, 0, 0),
    ]
    return gx_outcome(_data(store, names.RAW_PAGES, snapshot), rules, f"raw_pages/{snapshot}")


def documents_suite(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """documents: schema, unique doc_id over the partition, text on kept rows, language_score in [0, 1]."""
    rules = documents_expectations() + unique_over_partition(store, names.DOCUMENTS, snapshot, (names.DATA,))
    return gx_outcome(_data(store, names.DOCUMENTS, snapshot), rules, f"documents/{snapshot}")


def filtered_suite(store: DatasetStore, snapshot: str, min_drop_fraction: float, max_drop_fraction: float) -> CheckOutcome:
    """filtered: schema, unique doc_id over kept + dropped, drop fraction within the band."""
    manifest = store.require_manifest(names.FILTERED, snapshot)
    rules = filtered_expectations(
        _drop_fraction(manifest, (names.DATA,), names.DROPPED),
        required_columns=set(FILTERED.names),
        min_drop_fraction=min_drop_fraction,
        max_drop_fraction=max_drop_fraction,
    )
    rules += unique_over_partition(store, names.FILTERED, snapshot, (names.DATA, names.DROPPED))
    return gx_outcome(_data(store, names.FILTERED, snapshot), rules, f"filtered/{snapshot}")


def scored_suite(store: DatasetStore, snapshot: str, min_drop_fraction: float, max_drop_fraction: float) -> CheckOutcome:
    """scored: schema, quality_score in [0, 1], unique doc_id over every table, drop fraction within the band."""
    manifest = store.require_manifest(names.SCORED, snapshot)
    tables = (names.DATA, names.REWRITE_CANDIDATES)
    rules = scored_expectations(
        _drop_fraction(manifest, tables, names.DROPPED),
        required_columns=set(SCORED.names),
        min_drop_fraction=min_drop_fraction,
        max_drop_fraction=max_drop_fraction,
    )
    rules += unique_over_partition(store, names.SCORED, snapshot, (*tables, names.DROPPED))
    return gx_outcome(_data(store, names.SCORED, snapshot), rules, f"scored/{snapshot}")


def decontaminated_suite(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """decontaminated: schema, non-null text and doc_id, unique doc_id over kept, REWIRE pool and dropped."""
    rules = [columns_match(DECONTAMINATED.names), not_null("text"), not_null("doc_id")]
    rules += unique_over_partition(store, names.DECONTAMINATED, snapshot, (names.DATA, names.REWRITE_POOL, names.DROPPED))
    return gx_outcome(_data(store, names.DECONTAMINATED, snapshot), rules, f"decontaminated/{snapshot}")


def training_mix_suite(store: DatasetStore) -> CheckOutcome:
    """training_mix: schema, unique doc_id, text present, at least one token per row, a known source."""
    partition = names.UNPARTITIONED
    rules = [
        columns_match(MIX.names),
        not_null("text"),
        between("n_tokens", 1, None),
        value_in_set("source", MIX_SOURCES),
        *unique_over_partition(store, names.TRAINING_MIX, partition, (names.DATA,)),
    ]
    return gx_outcome(_data(store, names.TRAINING_MIX, partition), rules, "training_mix")
