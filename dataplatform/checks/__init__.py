"""Data-quality checks: declarative rules validated with great-expectations 1.x (no Dagster here).

Import stays cheap: great_expectations itself is imported on the first :func:`validate` call.
"""

from dataplatform.checks.dataset_checks import (
    DOCUMENTS_COLUMNS,
    KEPT,
    document_rules,
    documents_expectations,
    drop_fraction_between,
    drop_fraction_of,
    filtered_expectations,
    scored_expectations,
)
from dataplatform.checks.gx_validation import (
    ExpectationOutcome,
    ExpectationSpec,
    ValidationOutcome,
    between,
    columns_match,
    fraction_between,
    gx_expectation,
    not_null,
    row_count_between,
    sample_frame,
    unique,
    validate,
    value_in_set,
)

__all__ = [
    "DOCUMENTS_COLUMNS",
    "KEPT",
    "ExpectationOutcome",
    "ExpectationSpec",
    "ValidationOutcome",
    "between",
    "columns_match",
    "document_rules",
    "documents_expectations",
    "drop_fraction_between",
    "drop_fraction_of",
    "filtered_expectations",
    "fraction_between",
    "gx_expectation",
    "not_null",
    "row_count_between",
    "sample_frame",
    "scored_expectations",
    "unique",
    "validate",
    "value_in_set",
]
