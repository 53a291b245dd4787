"""Ready-made expectation lists for the pipeline's datasets (no Dagster here).

Each function returns a list of :class:`~dataplatform.checks.gx_validation.ExpectationSpec` to pass
to :func:`~dataplatform.checks.gx_validation.validate`. Thresholds are parameters; the defaults are
deliberately loose so that a check failing means something broke, not that the crawl changed.

Rules about a column are only emitted when that column is part of the expected column set, so the
lists follow ``required_columns`` while the filtered/scored schemas are still moving.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from dataplatform.checks.gx_validation import (
    ExpectationSpec,
    between,
    columns_match,
    fraction_between,
    not_null,
    row_count_between,
    unique,
)
from dataplatform.core.schemas import DOCUMENTS

__all__ = [
    "DOCUMENTS_COLUMNS",
    "KEPT",
    "document_rules",
    "documents_expectations",
    "filtered_expectations",
    "scored_expectations",
    "drop_fraction_between",
    "drop_fraction_of",
]

DOCUMENTS_COLUMNS: frozenset[str] = frozenset(DOCUMENTS.names)
KEPT = ("drop_reason", "is_null")  # row condition: rows that survived (drop_reason is null when kept)


def document_rules(
    columns: Iterable[str],
    *,
    min_language_score: float = 0.0,
    max_language_score: float = 1.0,
) -> list[ExpectationSpec]:
    """Row-level basics shared by every documents-shaped dataset, for the columns present:
    doc_id not null and unique, url not null, language_score in range, n_chars >= 0, and text not
    null on kept rows (all rows when there is no drop_reason column)."""
    cols = set(columns)
    rules: list[ExpectationSpec] = []
    if "doc_id" in cols:
        rules += [not_null("doc_id"), unique("doc_id")]
    if "url" in cols:
        rules.append(not_null("url"))
    if "text" in cols:
        rules.append(not_null("text", where=KEPT) if "drop_reason" in cols else not_null("text"))
    if "language_score" in cols:
        rules.append(between("language_score", min_language_score, max_language_score))
    if "n_chars" in cols:
        rules.append(between("n_chars", 0, None))
    return rules


def documents_expectations(
    *,
    exact_columns: bool = True,
    min_rows: int | None = None,
    max_rows: int | None = None,
    min_language_score: float = 0.0,
    max_language_score: float = 1.0,
) -> list[ExpectationSpec]:
    """The ``documents`` dataset: columns of ``schemas.DOCUMENTS`` (exactly, or at least with
    ``exact_columns=False``) plus :func:`document_rules`; optional whole-frame row-count bounds."""
    rules = [columns_match(DOCUMENTS_COLUMNS, exact=exact_columns)]
    rules += document_rules(DOCUMENTS_COLUMNS, min_language_score=min_language_score, max_language_score=max_language_score)
    if min_rows is not None or max_rows is not None:
        rules.append(row_count_between(min_rows, max_rows))
    return rules


def drop_fraction_between(observed: float | None, min_fraction: float = 0.01, max_fraction: float = 0.99) -> ExpectationSpec:
    """The stage's whole-dataset drop fraction lies in ``[min_fraction, max_fraction]``: a filter
    that suddenly drops everything (1.0) or nothing (0.0) fails. ``observed=None`` fails too."""
    return fraction_between("drop_fraction_between", observed, min_fraction, max_fraction)


def drop_fraction_of(df: pl.DataFrame | pl.LazyFrame, column: str = "drop_reason") -> float | None:
    """Fraction of rows with a non-null ``column`` over the *whole* frame (lazy frames are scanned,
    not sampled); ``None`` for an empty frame. Or compute it from stage counts: dropped / input."""
    lf = df.lazy() if isinstance(df, pl.DataFrame) else df
    n, dropped = lf.select(pl.len(), pl.col(column).is_not_null().sum()).collect().row(0)
    return None if n == 0 else dropped / n


def filtered_expectations(
    drop_fraction: float | None,
    *,
    required_columns: set[str] | None = None,
    exact_columns: bool = False,
    min_drop_fraction: float = 0.01,
    max_drop_fraction: float = 0.99,
    min_language_score: float = 0.0,
    max_language_score: float = 1.0,
) -> list[ExpectationSpec]:
    """The ``filtered`` dataset. ``drop_fraction`` is the whole-dataset figure (see
    :func:`drop_fraction_of`); it is required so the rule cannot be skipped by accident.
    ``required_columns`` defaults to the documents columns; extra columns are allowed unless
    ``exact_columns``."""
    columns = set(DOCUMENTS_COLUMNS if required_columns is None else required_columns)
    rules = [columns_match(columns, exact=exact_columns)]
    rules += document_rules(columns, min_language_score=min_language_score, max_language_score=max_language_score)
    rules.append(drop_fraction_between(drop_fraction, min_drop_fraction, max_drop_fraction))
    return rules


def scored_expectations(
    drop_fraction: float | None,
    *,
    required_columns: set[str] | None = None,
    exact_columns: bool = False,
    min_drop_fraction: float = 0.01,
    max_drop_fraction: float = 0.99,
    min_quality_score: float = 0.0,
    max_quality_score: float = 1.0,
    min_language_score: float = 0.0,
    max_language_score: float = 1.0,
) -> list[ExpectationSpec]:
    """The ``scored`` dataset: :func:`filtered_expectations` plus ``quality_score`` in
    ``[min_quality_score, max_quality_score]`` (and not null on kept rows). ``quality_score`` is
    always required, whatever ``required_columns`` says."""
    columns = set(DOCUMENTS_COLUMNS if required_columns is None else required_columns) | {"quality_score"}
    rules = filtered_expectations(
        drop_fraction,
        required_columns=columns,
        exact_columns=exact_columns,
        min_drop_fraction=min_drop_fraction,
        max_drop_fraction=max_drop_fraction,
        min_language_score=min_language_score,
        max_language_score=max_language_score,
    )
    quality = [
        not_null("quality_score", where=KEPT) if "drop_reason" in columns else not_null("quality_score"),
        between("quality_score", min_quality_score, max_quality_score),
    ]
    return rules[:-1] + quality + rules[-1:]
