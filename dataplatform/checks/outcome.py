"""What one data-quality rule found on one partition (no Dagster here).

A rule collects *problems* (one readable sentence each) and *figures* (what it measured); it passes
when there is no problem. The Dagster asset checks turn a :class:`CheckOutcome` per partition into
one ``dg.AssetCheckResult``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

Severity = Literal["error", "warn"]
MAX_PROBLEMS_IN_SUMMARY = 3


@dataclasses.dataclass
class CheckOutcome:
    """``passed``; ``summary``: one line a person reads first; ``metadata``: JSON-safe figures;
    ``severity``: overrides the check's declared severity for this outcome (``None`` keeps it)."""

    passed: bool
    summary: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    severity: Severity | None = None


def outcome(
    ok_summary: str, problems: list[str], metadata: dict[str, Any] | None = None, severity: Severity | None = None
) -> CheckOutcome:
    """Pass with ``ok_summary`` when ``problems`` is empty, else fail naming the first few problems."""
    metadata = dict(metadata or {})
    if not problems:
        return CheckOutcome(True, ok_summary, metadata)
    more = len(problems) - MAX_PROBLEMS_IN_SUMMARY
    summary = "; ".join(problems[:MAX_PROBLEMS_IN_SUMMARY]) + (f" (+{more} more)" if more > 0 else "")
    metadata["problems"] = problems[:50]
    return CheckOutcome(False, summary, metadata, severity)


def band_problem(what: str, value: float | None, low: float | None, high: float | None) -> list[str]:
    """``[]`` when ``low <= value <= high`` (a bound of ``None`` is open), else one problem naming the band."""
    if value is None:
        return [f"{what} could not be measured"]
    if (low is not None and value < low) or (high is not None and value > high):
        return [f"{what} {value:.4g} outside [{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"]
    return []


def sample_values(values: list[Any], limit: int = 5) -> str:
    """``a, b, c (+N more)`` for problem sentences."""
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f" (+{len(values) - limit} more)" if len(values) > limit else "")
