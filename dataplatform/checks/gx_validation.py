"""Run declarative data-quality rules as a great-expectations 1.x suite over a Polars frame.

No Dagster here: the asset checks (``@dg.asset_check(blocking=True)``) call :func:`validate` and map
the returned :class:`ValidationOutcome` into ``dg.AssetCheckResult``.

GX has no Polars engine, so a frame is validated as ``to_pandas()`` of either the whole frame (when
it has at most ``max_rows`` rows) or a seeded uniform sample of ``max_rows`` rows. The sample is
deterministic: the same frame, ``max_rows`` and ``seed`` always select the same rows.

What a sample can and cannot prove
----------------------------------
* A failure found on a sample is a real failure of the whole frame: a null, an out-of-range value or
  two rows sharing a ``doc_id`` in the sample are also in the frame.
* A pass on a sample proves nothing about the rows that were not drawn. Row-wise rules
  (not-null, between, in-set) then only bound the violation *rate*: with ``n`` sampled rows, a rate
  of ``p`` is missed with probability ``(1 - p) ** n``. Uniqueness is weaker still: a duplicated
  pair is caught only if *both* rows are drawn (probability about ``(n / N) ** 2``), so a sampled
  uniqueness pass says little; prove global uniqueness upstream (e.g. a group-by on the full
  dataset) when it matters.
* Whole-dataset figures (row count, drop fraction) cannot be measured on a sample at all. Those
  rules (``row_count_between``, ``fraction_between``) are evaluated in plain Python against the full
  figures (``rows_total`` or the value the caller measured) and reported in the same result list,
  with ``details["engine"] == "python"``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

# GX 1.x reads this when a context is created; make sure nothing phones home.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

__all__ = [
    "ExpectationSpec",
    "ExpectationOutcome",
    "ValidationOutcome",
    "sample_frame",
    "validate",
    "columns_match",
    "not_null",
    "unique",
    "between",
    "value_in_set",
    "row_count_between",
    "fraction_between",
    "gx_expectation",
]

# Declarative kind -> GX 1.x expectation class name (in ``great_expectations.expectations``).
_GX_KINDS: dict[str, str] = {
    "columns_match": "ExpectTableColumnsToMatchSet",
    "not_null": "ExpectColumnValuesToNotBeNull",
    "unique": "ExpectColumnValuesToBeUnique",
    "between": "ExpectColumnValuesToBeBetween",
    "value_in_set": "ExpectColumnValuesToBeInSet",
}
# Whole-dataset rules, evaluated without GX on the full figures (see module docstring).
_PYTHON_KINDS = frozenset({"row_count_between", "fraction_between"})

_ROW_INDEX = "__dp_sample_row__"
_MAX_PARTIAL = 20  # example values reported per failing expectation

Where = tuple  # ("col", "is_null") | ("col", "is_not_null") | ("col", op, value); op in ==,!=,<,<=,>,>=,in,not_in


@dataclass(frozen=True)
class ExpectationSpec:
    """One rule. ``kind`` is a key of the helpers below or any GX 1.x expectation class name
    (e.g. ``"ExpectColumnValueLengthsToBeBetween"``), ``kwargs`` go to that class.

    ``where`` restricts a column rule to matching rows (a GX row condition), e.g.
    ``("drop_reason", "is_null")`` for "kept rows only". ``name`` is the rule's id in results;
    it defaults to a readable rendering of the rule and must be unique within one validation.
    """

    kind: str
    column: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    where: Where | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.kind == "columns_match":
            return "columns_match"
        if self.kind in _PYTHON_KINDS:
            return self.kwargs.get("label") or self.kind
        args = [self.column] if self.column else []
        if self.kind == "between":
            args += [_fmt(self.kwargs.get("min_value")), _fmt(self.kwargs.get("max_value"))]
        label = f"{self.kind}({', '.join(args)})"
        if self.where is not None:
            label += " where " + " ".join(str(p) for p in self.where)
        return label


@dataclass
class ExpectationOutcome:
    """Result of one rule. ``observed`` is the headline figure: the number of offending rows for
    row-wise rules, the observed value for aggregate ones (column list, row count, fraction), or
    ``None`` when the rule could not run (then ``details["exception"]`` says why)."""

    name: str
    success: bool
    observed: Any
    details: dict[str, Any]


@dataclass
class ValidationOutcome:
    suite_name: str
    success: bool
    results: list[ExpectationOutcome]
    rows_validated: int
    rows_total: int
    sampled: bool
    seed: int

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success]

    def result(self, name: str) -> ExpectationOutcome:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def summary(self) -> str:
        head = (
            f"{self.suite_name}: {'PASS' if self.success else 'FAIL'} "
            f"({len(self.results) - len(self.failed)}/{len(self.results)} rules; "
            f"{self.rows_validated}/{self.rows_total} rows{', sampled' if self.sampled else ''})"
        )
        lines = [head] + [f"  FAILED {r.name}: observed={r.observed!r}" for r in self.failed]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (for ``dg.AssetCheckResult(metadata=...)`` or logs)."""
        return _jsonable(asdict(self))


# --------------------------------------------------------------------------------- rule helpers


def columns_match(columns: Iterable[str], *, exact: bool = True, name: str | None = None) -> ExpectationSpec:
    """The frame has exactly these columns (``exact=False``: at least these)."""
    return ExpectationSpec("columns_match", None, {"column_set": sorted(columns), "exact_match": exact}, name=name)


def not_null(column: str, *, where: Where | None = None, mostly: float | None = None, name: str | None = None) -> ExpectationSpec:
    return ExpectationSpec("not_null", column, _opt(mostly=mostly), where=where, name=name)


def unique(column: str, *, where: Where | None = None, name: str | None = None) -> ExpectationSpec:
    """No two (non-null) values equal. On a sample this can only find duplicates, see module doc."""
    return ExpectationSpec("unique", column, {}, where=where, name=name)


def between(
    column: str,
    min_value: float | None = None,
    max_value: float | None = None,
    *,
    where: Where | None = None,
    mostly: float | None = None,
    name: str | None = None,
) -> ExpectationSpec:
    """Inclusive bounds; ``None`` = unbounded on that side. Nulls are not checked (use not_null)."""
    if min_value is None and max_value is None:
        raise ValueError("between() needs min_value or max_value")
    kwargs = _opt(min_value=min_value, max_value=max_value, mostly=mostly)
    return ExpectationSpec("between", column, kwargs, where=where, name=name)


def value_in_set(
    column: str, values: Iterable[Any], *, where: Where | None = None, mostly: float | None = None, name: str | None = None
) -> ExpectationSpec:
    """Every non-null value is one of ``values``."""
    kwargs = {"value_set": list(values), **_opt(mostly=mostly)}
    return ExpectationSpec("value_in_set", column, kwargs, where=where, name=name)


def row_count_between(min_value: int | None = None, max_value: int | None = None, *, name: str | None = None) -> ExpectationSpec:
    """Whole-frame row count (``rows_total``, never the sample size) within inclusive bounds."""
    return ExpectationSpec(
        "row_count_between", None, {"min_value": min_value, "max_value": max_value}, name=name or "row_count_between"
    )


def fraction_between(name: str, value: float | None, min_value: float | None, max_value: float | None) -> ExpectationSpec:
    """A figure the caller measured on the whole dataset (e.g. a drop fraction) lies in
    ``[min_value, max_value]``. ``value=None`` (not measured) fails, so it cannot be forgotten."""
    return ExpectationSpec("fraction_between", None, {"value": value, "min_value": min_value, "max_value": max_value}, name=name)


def gx_expectation(
    expectation_class: str, column: str | None = None, *, where: Where | None = None, name: str | None = None, **kwargs: Any
) -> ExpectationSpec:
    """Escape hatch: any GX 1.x expectation by class name, e.g.
    ``gx_expectation("ExpectColumnValueLengthsToBeBetween", "url", min_value=1)``."""
    return ExpectationSpec(expectation_class, column, kwargs, where=where, name=name)


# --------------------------------------------------------------------------------- sampling


def sample_frame(df: pl.DataFrame | pl.LazyFrame, max_rows: int, seed: int) -> tuple[pl.DataFrame, bool]:
    """Return ``(frame, sampled)``: the whole frame when it has at most ``max_rows`` rows, else a
    uniform sample without replacement of exactly ``max_rows`` rows, in original row order.

    Row positions are drawn with ``numpy.random.default_rng(seed)``, so the sample depends only on
    the frame's row order, ``max_rows`` and ``seed`` (not on Polars' threading or version). A
    LazyFrame is counted first and only the drawn rows are collected.
    """
    import numpy as np

    if max_rows < 0:
        raise ValueError("max_rows must be >= 0")
    if isinstance(df, pl.LazyFrame):
        total = int(df.select(pl.len()).collect().item())
    else:
        total = df.height
    if total <= max_rows:
        return (df.collect() if isinstance(df, pl.LazyFrame) else df), False

    rows = np.sort(np.random.default_rng(seed).choice(total, size=max_rows, replace=False))
    if isinstance(df, pl.LazyFrame):
        picked = (
            df.with_row_index(_ROW_INDEX)
            .filter(pl.col(_ROW_INDEX).is_in(pl.Series(rows, dtype=pl.UInt32 if total < 2**32 else pl.UInt64)))
            .drop(_ROW_INDEX)
            .collect()
        )
    else:
        picked = df[rows]
    return picked, True


# --------------------------------------------------------------------------------- validation


def validate(
    df: pl.DataFrame | pl.LazyFrame,
    expectations: list[ExpectationSpec],
    *,
    suite_name: str,
    max_rows: int = 50_000,
    seed: int = 0,
) -> ValidationOutcome:
    """Validate ``df`` (or a seeded sample of it, see :func:`sample_frame`) against ``expectations``.

    Column/table rules run as one GX 1.x suite on ``to_pandas()`` of the (sampled) frame in a fresh
    ephemeral context (creating one takes ~20 ms; the first ``import great_expectations`` in a
    process takes several seconds). Whole-dataset rules are evaluated in Python. Results come back
    in the order of ``expectations``; a rule that cannot run (e.g. its column is missing) fails with
    ``details["exception"]`` rather than raising.
    """
    names = [spec.label for spec in expectations]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate expectation names {dupes}; pass name= to tell them apart")

    if isinstance(df, pl.LazyFrame):
        rows_total = int(df.select(pl.len()).collect().item())
    else:
        rows_total = df.height
    frame, sampled = sample_frame(df, max_rows, seed)

    gx_specs = [s for s in expectations if s.kind not in _PYTHON_KINDS]
    by_name: dict[str, ExpectationOutcome] = {}
    if gx_specs:
        by_name.update(_run_gx(frame, gx_specs, suite_name))
    for spec in expectations:
        if spec.kind in _PYTHON_KINDS:
            by_name[spec.label] = _run_python(spec, rows_total)

    results = [by_name[n] for n in names]
    return ValidationOutcome(
        suite_name=suite_name,
        success=all(r.success for r in results),
        results=results,
        rows_validated=frame.height,
        rows_total=rows_total,
        sampled=sampled,
        seed=seed,
    )


def _run_python(spec: ExpectationSpec, rows_total: int) -> ExpectationOutcome:
    lo, hi = spec.kwargs.get("min_value"), spec.kwargs.get("max_value")
    if spec.kind == "row_count_between":
        value: Any = rows_total
    else:
        value = spec.kwargs.get("value")
    details: dict[str, Any] = {"engine": "python", "min_value": lo, "max_value": hi}
    if value is None or (isinstance(value, float) and math.isnan(value)):
        details["exception"] = "value not provided (None/NaN)"
        return ExpectationOutcome(spec.label, False, None, _jsonable(details))
    ok = (lo is None or value >= lo) and (hi is None or value <= hi)
    return ExpectationOutcome(spec.label, bool(ok), _jsonable(value), _jsonable(details))


_gx_mod = None


def _gx():
    """Import GX lazily (the import alone takes seconds) and quietly."""
    global _gx_mod
    if _gx_mod is None:
        import great_expectations as gx

        _gx_mod = gx
    return _gx_mod


def _new_context():
    gx = _gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _row_condition(where: Where):
    from great_expectations.expectations.row_conditions import Column

    col, op, *rest = where
    c = Column(col)
    if op == "is_null":
        return c.is_null()
    if op == "is_not_null":
        return c.is_not_null()
    if not rest:
        raise ValueError(f"row condition {where!r} needs a value")
    value = rest[0]
    ops = {
        "==": c.__eq__,
        "!=": c.__ne__,
        "<": c.__lt__,
        "<=": c.__le__,
        ">": c.__gt__,
        ">=": c.__ge__,
        "in": c.is_in,
        "not_in": c.is_not_in,
    }
    if op not in ops:
        raise ValueError(f"unknown row-condition operator {op!r}")
    return ops[op](value)


def _build_expectation(spec: ExpectationSpec):
    gx = _gx()
    class_name = _GX_KINDS.get(spec.kind, spec.kind)
    cls = getattr(gx.expectations, class_name, None)
    if cls is None:
        raise ValueError(f"unknown expectation kind {spec.kind!r}")
    kwargs = dict(spec.kwargs)
    if spec.column is not None:
        kwargs["column"] = spec.column
    if spec.where is not None:
        kwargs["row_condition"] = _row_condition(spec.where)
    return cls(**kwargs, meta={"dp_name": spec.label})


def _run_gx(frame: pl.DataFrame, specs: list[ExpectationSpec], suite_name: str) -> dict[str, ExpectationOutcome]:
    gx = _gx()
    context = _new_context()
    batch = (
        context.data_sources.add_pandas("frame")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame.to_pandas()})
    )
    suite = gx.ExpectationSuite(name=suite_name)
    for spec in specs:
        suite.add_expectation(_build_expectation(spec))
    result = batch.validate(suite, result_format="SUMMARY")

    out: dict[str, ExpectationOutcome] = {}
    for r in result.results:
        name = (r.expectation_config.meta or {}).get("dp_name")
        out[name] = _outcome(name, r)
    missing = [s.label for s in specs if s.label not in out]
    for name in missing:  # should not happen; never report a rule as silently passed
        out[name] = ExpectationOutcome(name, False, None, {"exception": "no result returned by GX"})
    return out


def _outcome(name: str, r: Any) -> ExpectationOutcome:
    res = dict(r.result or {})
    details: dict[str, Any] = {"engine": "great_expectations", "expectation": r.expectation_config.type}
    exc = _exception_message(r.exception_info)
    if exc is not None:
        details["exception"] = exc
        return ExpectationOutcome(name, False, None, _jsonable(details))
    if "observed_value" in res:
        observed = res.pop("observed_value")
        details.update(res)
    else:
        observed = res.pop("unexpected_count", None)
        for key in (
            "element_count",
            "missing_count",
            "unexpected_percent",
            "partial_unexpected_list",
            "partial_unexpected_counts",
        ):
            if key in res:
                details[key] = res[key]
        if "partial_unexpected_list" in details:
            details["partial_unexpected_list"] = details["partial_unexpected_list"][:_MAX_PARTIAL]
    return ExpectationOutcome(name, bool(r.success), _jsonable(observed), _jsonable(details))


def _exception_message(info: Any) -> str | None:
    if not info:
        return None
    if isinstance(info, dict) and "raised_exception" in info:
        infos = [info]
    elif isinstance(info, dict):
        infos = [v for v in info.values() if isinstance(v, dict)]
    else:
        return None
    messages = [str(i.get("exception_message")) for i in infos if i.get("raised_exception")]
    return "; ".join(messages) if messages else None


def _opt(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _jsonable(value: Any) -> Any:
    """Plain Python values only (numpy scalars, NaN, sets, tuples, timestamps normalised)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return str(value)
