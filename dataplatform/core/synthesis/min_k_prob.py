"""Min-K% Prob membership signal (Shi et al. 2024, "Detecting Pretraining Data from Large Language
Models").

For a text x with per-token log-probabilities log p(x_i | x_<i) under a reference model, take the
k% least likely tokens and average their log-probabilities:

    MinK%(x) = 1/|min-k%| * sum_{x_i in min-k%} log p(x_i | x_<i)

Text the model has seen tends to have few low-probability outliers, so a *higher* score suggests
the text was in the training data; unseen text has more outliers and scores lower. The paper
reports +7.4% AUC over prior detectors on WikiMIA with k = 20%.

Here the contamination audit scores benchmark items (label 1: suspected seen) against known-unseen
controls (label 0) and reports ROC AUC (0.5 = no signal). Numpy only; the log-probs come from
``LLMEngine.prompt_logprobs``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from dataplatform.core.quality_classifier import roc_auc

__all__ = ["MinKAudit", "min_k_audit", "min_k_score", "min_k_scores", "roc_auc"]

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
class MinKAudit:
    k: float
    auc: float  # P(score of a benchmark item > score of a control); 0.5 = no membership signal
    n_benchmark: int
    n_control: int
    mean_benchmark: float
    mean_control: float
    benchmark_scores: np.ndarray
    control_scores: np.ndarray


def min_k_audit(benchmark_logprobs: Sequence[np.ndarray], control_logprobs: Sequence[np.ndarray], k: float = DEFAULT_K) -> MinKAudit:
    """Min-K% scores of benchmark items (label 1) vs known-unseen controls (label 0) and their AUC.

    Items with no scorable tokens (NaN score) are left out of the AUC.
    """
    b = min_k_scores(benchmark_logprobs, k)
    c = min_k_scores(control_logprobs, k)
    bf, cf = b[np.isfinite(b)], c[np.isfinite(c)]
    labels = np.concatenate([np.ones(bf.size), np.zeros(cf.size)])
    auc = roc_auc(labels, np.concatenate([bf, cf])) if bf.size and cf.size else float("nan")
    return MinKAudit(
        k=k,
        auc=auc,
        n_benchmark=int(bf.size),
        n_control=int(cf.size),
        mean_benchmark=float(bf.mean()) if bf.size else float("nan"),
        mean_control=float(cf.mean()) if cf.size else float("nan"),
        benchmark_scores=b,
        control_scores=c,
    )
