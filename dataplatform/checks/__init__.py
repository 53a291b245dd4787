"""Data-quality checks of the committed datasets (no Dagster here; the asset checks that run them
are in ``dataplatform.assets.checks``).

* :mod:`.gx_validation`, :mod:`.dataset_checks`: declarative rules validated with great-expectations 1.x
  on a bounded, seeded sample; :mod:`.suites`: the GX suite of each dataset plus whole-partition figures.
* :mod:`.ingest_rules`, :mod:`.filter_rules`, :mod:`.dedup_rules`, :mod:`.eval_rules`,
  :mod:`.synthesis_rules`, :mod:`.mix_rules`: what users of each dataset depend on, one function per
  rule, each returning a :class:`.outcome.CheckOutcome`; :mod:`.frames`: reading helpers.

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
