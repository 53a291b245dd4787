"""Exact "top k by score" over a snapshot whose scores never meet in one process.

:func:`dataplatform.core.quality_classifier.select_by_quality` ranks all scores at once: score
descending, ties by row order, NaN last. This module finds the same ranks from per-shard
summaries, the way a distributed quantile is found: each shard reports a sparse histogram of its
scores' bit patterns (float32 -> an order-preserving uint32 *key*), the driver finds the bucket that
holds each cut rank, asks the shards for a finer histogram inside that bucket (exact key), then for
the row numbers of the rows with exactly that key (ties). Three small passes over one float per row;
the driver holds only histograms of touched buckets and the tied rows of a cut.

A *cut* at rank ``r`` (0-based, in ranking order) is the pair ``(key, row)`` of the row ranked
``r``; a row ranks at or above the cut iff ``key > cut.key`` or ``key == cut.key and row <= cut.row``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

HIGH_BITS = 16  # first pass: buckets of the top 16 bits of the key


def score_keys(scores: np.ndarray) -> np.ndarray:
    """Order-preserving uint32 keys of float32 scores; NaN maps to 0, below every number."""
    values = np.asarray(scores, dtype=np.float32)
    bits = values.view(np.uint32)
    negative = (bits & np.uint32(0x80000000)) != 0
    keys = np.where(negative, ~bits, bits | np.uint32(0x80000000)).astype(np.uint32)
    return np.where(np.isnan(values), np.uint32(0), keys)


def key_to_score(key: int) -> float:
    """Inverse of :func:`score_keys` for one key (NaN for 0)."""
    if key == 0:
        return float("nan")
    bits = key & 0x7FFFFFFF if key & 0x80000000 else ~key & 0xFFFFFFFF
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


def sparse_histogram(values: np.ndarray) -> dict[str, int]:
    """``{str(value): count}`` of the distinct values (JSON-friendly, for task results)."""
    distinct, counts = np.unique(values, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(distinct, counts)}


def add_histogram(into: dict[int, int], part: Mapping[str, int]) -> None:
    """Add one :func:`sparse_histogram` (keys as str or int) into ``into``."""
    for value, count in part.items():
        into[int(value)] = into.get(int(value), 0) + count


def merge_histograms(parts: Iterable[Mapping[str, int]]) -> dict[int, int]:
    total: dict[int, int] = {}
    for part in parts:
        add_histogram(total, part)
    return total


@dataclasses.dataclass(frozen=True)
class Locate:
    """Where rank ``rank`` lies: inside ``bucket`` (of some key-space level), at ``offset`` ranks
    below the first row of that bucket."""

    rank: int
    bucket: int
    offset: int


def locate(histogram: Mapping[int, int], rank: int) -> Locate:
    """Find the bucket holding ``rank`` (0-based) when buckets are taken highest first."""
    seen = 0
    for bucket in sorted(histogram, reverse=True):
        count = histogram[bucket]
        if rank < seen + count:
            return Locate(rank, bucket, rank - seen)
        seen += count
    raise ValueError(f"rank {rank} is beyond the {seen} scored rows")


@dataclasses.dataclass(frozen=True)
class Cut:
    rank: int
    key: int
    row: int

    @property
    def score(self) -> float:
        return key_to_score(self.key)

    def at_or_above(self, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return (keys > self.key) | ((keys == self.key) & (rows <= self.row))


def cut_from_ties(key: int, offset_within_key: int, tied_rows: Sequence[int], rank: int) -> Cut:
    """The cut at ``rank`` among the rows with exactly ``key`` (ties are ranked by row)."""
    ordered = sorted(tied_rows)
    return Cut(rank, key, int(ordered[offset_within_key]))


def band_labels(
    keys: np.ndarray, rows: np.ndarray, cuts: tuple[Cut | None, Cut | None, Cut | None], labels: tuple[str, str, str]
) -> np.ndarray:
    """Label rows as :func:`~dataplatform.core.quality_classifier.select_by_quality` does, from the
    cuts at ranks ``k_high - 1``, ``k_lo - 1`` and ``k_hi - 1`` (``None`` where that count is 0):
    ``labels[0]`` above the first cut, ``labels[1]`` for ranks in ``[k_lo, k_hi)`` not already
    labelled, ``labels[2]`` for the rest."""
    high, below_lo, below_hi = (np.zeros(len(keys), bool) if c is None else c.at_or_above(keys, rows) for c in cuts)
    band = ~high & ~below_lo & below_hi
    return np.array(labels, dtype=object)[np.where(high, 0, np.where(band, 1, 2))]
