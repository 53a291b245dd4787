import math

import numpy as np
import pytest

from dataplatform.core.synthesis.min_k_prob import (
    bootstrap_auc_interval,
    calibrate_membership,
    flag_members,
    min_k_score,
    min_k_scores,
    roc_auc,
)


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


def _logprob_sets(seed=0, n=60):
    rng = np.random.default_rng(seed)
    # "seen": mostly likely tokens; "unseen": the same plus a tail of low-probability outliers
    seen = [rng.normal(-1.0, 0.5, size=rng.integers(40, 120)) for _ in range(n)]
    unseen = []
    for _ in range(n):
        base = rng.normal(-1.0, 0.5, size=rng.integers(40, 120))
        outliers = rng.random(base.size) < 0.15
        base[outliers] -= rng.exponential(4.0, size=int(outliers.sum()))
        unseen.append(base)
    return seen, unseen


def test_calibration_reports_auc_interval_and_a_threshold_at_the_chosen_fpr():
    seen, unseen = _logprob_sets()
    cal = calibrate_membership(seen, unseen, k=0.2, false_positive_rate=0.1, n_resamples=300)
    assert cal.auc > 0.9 and cal.auc_low <= cal.auc <= cal.auc_high and cal.auc_low > 0.5 and cal.has_signal
    assert cal.n_members == 60 and cal.n_non_members == 60 and cal.confidence == 0.95
    assert (cal.non_member_scores > cal.threshold).mean() == pytest.approx(0.1, abs=0.02)
    assert cal.true_positive_rate == pytest.approx((cal.member_scores > cal.threshold).mean())
    assert cal.true_positive_rate > 0.5
    flags = flag_members(np.array([cal.threshold + 1, cal.threshold - 1, np.nan]), cal)
    assert flags.tolist() == [True, False, False]
    # same distribution on both sides: no signal, and the audit says so
    same = calibrate_membership(seen[:30], seen[30:], n_resamples=300)
    assert same.auc_low < 0.5 < same.auc_high and not same.has_signal
    # reproducible (seeded bootstrap)
    assert (
        calibrate_membership(seen, unseen, n_resamples=300).auc_low == calibrate_membership(seen, unseen, n_resamples=300).auc_low
    )
    with pytest.raises(ValueError, match="false_positive_rate"):
        calibrate_membership(seen, unseen, false_positive_rate=0.0)


def test_bootstrap_interval_and_auc_edge_cases():
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.1, 0.2])) == 1.0
    assert roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5
    low, high = bootstrap_auc_interval(np.arange(10.0) + 100, np.arange(10.0), n_resamples=50)
    assert low == high == 1.0
    assert all(math.isnan(x) for x in bootstrap_auc_interval(np.array([]), np.arange(3.0)))
    cal = calibrate_membership([np.array([-1.0]), np.array([])], [np.array([-3.0])], n_resamples=10)
    assert cal.n_members == 1 and cal.auc == 1.0 and math.isnan(cal.member_scores[1])


def test_min_k_on_tiny_model_logprobs(tiny_engine):
    texts = ["The history of the printing press begins in the fifteenth century", "zq xv kj wp"]
    scores = min_k_scores(tiny_engine.prompt_logprobs(texts))
    assert scores.shape == (2,) and np.all(np.isfinite(scores)) and np.all(scores < 0)


def test_controlled_experiment_the_audit_separates_trained_from_held_out_text(tmp_path):
    """Train the tiny model on half of 40 same-distribution texts: the audit tells the trained half
    from the held-out half. The untrained model (0 steps) is the control: no signal."""
    from dataplatform.llm.membership_experiment import run_membership_experiment, synthetic_texts

    texts = synthetic_texts(40, seed=0)
    assert len(set(texts)) == 40 and texts == synthetic_texts(40, seed=0)
    trained = run_membership_experiment(tmp_path / "trained", n_texts=40, steps=40, seed=0)
    assert trained.last_loss < trained.first_loss
    assert trained.auc > 0.9 and trained.auc_low > 0.75, trained
    assert trained.true_positive_rate > 0.5 and trained.n_members == trained.n_non_members == 20
    control = run_membership_experiment(tmp_path / "control", n_texts=40, steps=0, seed=0)
    assert control.auc_low < 0.5 < control.auc_high, control
