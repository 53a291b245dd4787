"""Distributed rank selection gives exactly select_by_quality's labels and cuts, whatever the
sharding, ties and NaNs."""

import numpy as np
import pytest

from dataplatform import names
from dataplatform.core import rank_selection as rs
from dataplatform.core.quality_classifier import select_by_quality


def _cuts(shards: list[np.ndarray], ranks: list[int]) -> dict[int, rs.Cut | None]:
    """Run the three passes the scoring stage runs, over in-memory shards."""
    keys = [rs.score_keys(s) for s in shards]
    offsets = np.cumsum([0] + [len(s) for s in shards])[:-1]
    first_hist = rs.merge_histograms(rs.sparse_histogram(k >> np.uint32(rs.HIGH_BITS)) for k in keys)
    cuts: dict[int, rs.Cut | None] = {}
    for k in ranks:
        if k <= 0:
            cuts[k] = None
            continue
        loc = rs.locate(first_hist, k - 1)
        inner = rs.merge_histograms(rs.sparse_histogram(s[(s >> np.uint32(rs.HIGH_BITS)) == loc.bucket]) for s in keys)
        exact = rs.locate(inner, loc.offset)
        tied = [int(r) for s, off in zip(keys, offsets) for r in np.flatnonzero(s == exact.bucket) + off]
        cuts[k] = rs.cut_from_ties(exact.bucket, exact.offset, tied, k - 1)
    return cuts


@pytest.mark.parametrize("seed", range(8))
def test_sharded_labels_equal_whole_snapshot_labels(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    # Few distinct values: many ties across shard boundaries; some NaN (unscorable rows).
    scores = rng.choice(np.linspace(0, 1, int(rng.integers(2, 50))), size=n).astype(np.float32)
    scores[rng.random(n) < 0.05] = np.nan
    top, lo, hi = 0.1, float(rng.choice([0.0, 0.1, 0.2])), float(rng.choice([0.3, 0.5, 1.0]))
    expected = select_by_quality(scores, top_fraction=top, rewrite_band=(lo, hi))
    cuts_at = [int(np.floor(f * n + 0.5 + 1e-9)) for f in (top, lo, hi)]
    splits = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, int(rng.integers(0, 12))), replace=False)) if n > 1 else []
    shards = np.split(scores, splits)
    cuts = _cuts(shards, cuts_at)
    labels = rs.band_labels(rs.score_keys(scores), np.arange(n), tuple(cuts[k] for k in cuts_at), names.QUALITY_LABELS)
    assert labels.tolist() == expected.labels.to_list()
    if cuts_at[0]:
        assert cuts[cuts_at[0]].score == expected.threshold or (np.isnan(expected.threshold) and np.isnan(cuts[cuts_at[0]].score))


def test_keys_preserve_order_and_put_nan_last():
    values = np.array([-1.5, -0.0, 0.0, 1e-30, 0.25, 0.5, 1.0, np.inf, np.nan], dtype=np.float32)
    keys = rs.score_keys(values)
    assert keys[-1] == 0 and list(keys[:-1]) == sorted(keys[:-1])
    assert all(rs.key_to_score(int(k)) == v for k, v in zip(keys[:-1], values[:-1]))
