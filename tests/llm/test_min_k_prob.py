import math

import numpy as np
import pytest

from dataplatform.core.synthesis.min_k_prob import min_k_audit, min_k_score, min_k_scores, roc_auc


def test_min_k_score_is_mean_of_lowest_k_percent():
    lp = np.array([-0.1, -5.0, -0.2, -3.0, -0.3, -0.1, -0.2, -0.4, -0.1, -0.2])
    assert min_k_score(lp, 0.2) == pytest.approx((-5.0 - 3.0) / 2)  # 20% of 10 = 2 tokens
    assert min_k_score(lp, 1.0) == pytest.approx(lp.mean())
    assert min_k_score(lp, 0.01) == pytest.approx(-5.0)  # at least one token
    assert min_k_score(np.array([-1.0, -2.0, -4.0]), 0.5) == pytest.approx(-3.0)  # ceil(1.5) = 2
    assert math.isnan(min_k_score(np.array([]), 0.2))
    assert min_k_score(np.array([-1.0, -np.inf, np.nan]), 0.2) == pytest.approx(-1000.0)
    with pytest.raises(ValueError, match="k is a fraction"):
        min_k_score(lp, 20)


def test_seen_texts_score_higher_and_auc_above_half():
    rng = np.random.default_rng(0)
    # "seen": mostly likely tokens; "unseen": the same plus a tail of low-probability outliers
    seen = [rng.normal(-1.0, 0.5, size=rng.integers(40, 120)) for _ in range(60)]
    unseen = []
    for _ in range(60):
        base = rng.normal(-1.0, 0.5, size=rng.integers(40, 120))
        outliers = rng.random(base.size) < 0.15
        base[outliers] -= rng.exponential(4.0, size=int(outliers.sum()))
        unseen.append(base)
    s_seen, s_unseen = min_k_scores(seen), min_k_scores(unseen)
    assert s_seen.shape == (60,) and s_unseen.shape == (60,)
    assert s_seen.mean() > s_unseen.mean()
    audit = min_k_audit(seen, unseen, k=0.2)
    assert audit.auc > 0.9 and audit.n_benchmark == 60 and audit.n_control == 60
    assert audit.mean_benchmark > audit.mean_control
    # no signal: same distribution -> AUC near 0.5
    same = min_k_audit(seen[:30], seen[30:])
    assert 0.25 < same.auc < 0.75


def test_auc_and_empty_items():
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.1, 0.2])) == 1.0
    assert roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5
    audit = min_k_audit([np.array([-1.0]), np.array([])], [np.array([-3.0])])
    assert audit.n_benchmark == 1 and audit.auc == 1.0
    assert math.isnan(min_k_audit([], [np.array([-1.0])]).auc)


def test_min_k_on_tiny_model_logprobs(tiny_engine):
    texts = ["The history of the printing press begins in the fifteenth century", "zq xv kj wp"]
    scores = min_k_scores(tiny_engine.prompt_logprobs(texts))
    assert scores.shape == (2,) and np.all(np.isfinite(scores)) and np.all(scores < 0)
