"""Min-K% Prob membership signal (Shi et al. 2024, "Detecting Pretraining Data from Large Language
Models").

For a text x with per-token log-probabilities log p(x_i | x_<i) under a reference model, take the
k% least likely tokens and average their log-probabilities:

    MinK%(x) = 1/|min-k%| * sum_{x_i in min-k%} log p(x_i | x_<i)

Text the model has seen tends to have few low-probability outliers, so a *higher* score suggests
the text was in the training data; unseen text has more outliers and scores lower. The paper
reports +7.4% AUC over prior detectors on WikiMIA with k = 20%.

Validity (Duan et al. 2024, "Do Membership Inference Attacks Work on Large Language Models?"; the
WikiMIA protocol of Shi et al.): the detector is calibrated on *natural* members and non-members
from the same distribution (e.g. documents the model was trained on vs documents crawled after its
training data), never on shuffled or perturbed copies, which differ in fluency, not membership (any
fluent text scores AUC 0.95-1.0 against its own shuffles). :func:`calibrate_membership` reports
the members-vs-non-members AUC with a bootstrap confidence interval and a score threshold with a
chosen false-positive rate on the non-members; :func:`flag_members` then applies that threshold
to benchmark items. When the interval does not exclude 0.5 the model shows no membership signal
on that set and flags mean nothing (``MembershipCalibration.has_signal``).

Numpy only; the log-probs come from ``LLMEngine.prompt_logprobs``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from dataplatform.core.quality_classifier import roc_auc

__all__ = [
    "MembershipCalibration",
    "bootstrap_auc_interval",
    "calibrate_membership",
    "flag_members",
    "min_k_score",
    "min_k_scores",
    "roc_auc",
]

DEFAULT_K = 0.2
LOGPROB_FLOOR = -1000.0


def _check_k(k: float) -> None:
    if not 0 < k <= 1:
        raise ValueError(f"Min-K% Prob: k is a fraction in (0, 1] (0.2 = 20%), got {k}")


def min_k_score(logprobs: np.ndarray, k: float = DEFAULT_K) -> float:
    """Mean of the ``ceil(k * n)`` lowest of ``n`` token log-probs (at least one); NaN if empty."""
    _check_k(k)
    lp = np.asarray(logprobs, dtype=np.float64).ravel()
    lp = lp[~np.isnan(lp)]
    lp = np.maximum(lp, LOGPROB_FLOOR)  # -inf (a zero-probability token) counts as very unlikely
    if lp.size == 0:
        return float("nan")
    m = max(1, math.ceil(k * lp.size))
    return float(np.partition(lp, m - 1)[:m].mean())


def min_k_scores(logprob_arrays: Sequence[np.ndarray], k: float = DEFAULT_K) -> np.ndarray:
    """:func:`min_k_score` of each array, as a float64 vector (NaN for empty arrays).

    NaN log-probs are ignored; ``-inf`` (a zero-probability token) is clipped to
    :data:`LOGPROB_FLOOR` so it still counts as the least likely token.
    """
    _check_k(k)
    return np.array([min_k_score(a, k) for a in logprob_arrays], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class MembershipCalibration:
    """Min-K% scores of known members vs known non-members, their AUC and a decision threshold."""

    k: float
    auc: float  # P(score of a member > score of a non-member); 0.5 = no membership signal
    auc_low: float  # bootstrap confidence interval of the AUC
    auc_high: float
    confidence: float
    threshold: float  # scores above it are called members; ~false_positive_rate of non-members are
    false_positive_rate: float  # target, on the non-members
    true_positive_rate: float  # achieved on the members at ``threshold``
    member_scores: np.ndarray
    non_member_scores: np.ndarray

    @property
    def n_members(self) -> int:
        return int(np.isfinite(self.member_scores).sum())

    @property
    def n_non_members(self) -> int:
        return int(np.isfinite(self.non_member_scores).sum())

    @property
    def has_signal(self) -> bool:
        """The AUC's confidence interval lies above 0.5: the model separates members from non-members."""
        return bool(np.isfinite(self.auc_low) and self.auc_low > 0.5)


def bootstrap_auc_interval(
    positive: np.ndarray, negative: np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the ROC AUC, resampling each class with replacement (seeded)."""
    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if not pos.size or not neg.size:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    aucs = np.empty(n_resamples, dtype=np.float64)
    for b in range(n_resamples):
        sample = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        aucs[b] = roc_auc(labels, sample)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(aucs, [tail, 100.0 - tail])
    return float(low), float(high)


def calibrate_membership(
    member_logprobs: Sequence[np.ndarray],
    non_member_logprobs: Sequence[np.ndarray],
    k: float = DEFAULT_K,
    *,
    false_positive_rate: float = 0.05,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MembershipCalibration:
    """Min-K% of known members (label 1) vs known non-members (label 0): AUC with a bootstrap
    interval, and the threshold that calls ``false_positive_rate`` of the non-members members
    (their ``1 - false_positive_rate`` quantile). Texts with no scorable token are left out."""
    if not 0 < false_positive_rate < 1:
        raise ValueError(f"false_positive_rate must be in (0, 1), got {false_positive_rate}")
    members, non_members = min_k_scores(member_logprobs, k), min_k_scores(non_member_logprobs, k)
    pos, neg = members[np.isfinite(members)], non_members[np.isfinite(non_members)]
    labels = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    auc = roc_auc(labels, np.concatenate([pos, neg])) if pos.size and neg.size else float("nan")
    low, high = bootstrap_auc_interval(pos, neg, n_resamples=n_resamples, confidence=confidence, seed=seed)
    threshold = float(np.quantile(neg, 1.0 - false_positive_rate)) if neg.size else float("nan")
    tpr = float((pos > threshold).mean()) if pos.size and np.isfinite(threshold) else float("nan")
    return MembershipCalibration(k, auc, low, high, confidence, threshold, false_positive_rate, tpr, members, non_members)


def flag_members(scores: np.ndarray, calibration: MembershipCalibration) -> np.ndarray:
    """True where a Min-K% score lies above the calibrated threshold (NaN scores are not flagged)."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.isfinite(scores) & (scores > calibration.threshold)
