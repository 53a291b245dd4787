"""LLM judge for instruction/answer pairs (FineInstructions' last filter: rate 1-5, keep >= 4).

The judge reads a versioned prompt (``prompts/judge_v1.txt``: document, instruction, answer and a
1-5 rubric; ``judge_small_v1``: the same rubric without the document, short enough for the
bundled 135M model) and answers with one digit. The rating is read as a *constrained choice*: the
log-probability of each of ``"1"`` .. ``"5"`` right after the prompt and the response prefix
``"Rating: "`` (:meth:`LLMEngine.score_continuations`), and the rating is the most likely digit:
what greedy decoding restricted to valid answers writes. So a model that would otherwise write
"1 = wrong or unrelated, ..." still yields a rating, and the same code runs on vLLM.
``judge_score`` is the expected rating under the renormalised digit distribution (G-Eval style),
kept for analysis.

Measured with the bundled 135M model on hand-labelled pairs: it does *not* discriminate (expected
ratings 3.3-3.6 for a correct and for an unrelated answer alike; ``benchmarks/RESULTS.md``), so on
the CPU default the quoted-answer rule carries the quality and the judge is a formality; with a
real instruction model it is the filter the paper describes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from dataplatform.core.synthesis.common import load_prompt, render
from dataplatform.llm.engine import LLMEngine

__all__ = ["JUDGE_PROMPTS", "RATINGS", "RESPONSE_PREFIX", "JudgeResult", "build_judge_prompts", "judge_pairs"]

RATINGS = ("1", "2", "3", "4", "5")
RESPONSE_PREFIX = "Rating: "
JUDGE_PROMPTS = ("judge_v1", "judge_small_v1")


@dataclasses.dataclass(frozen=True)
class JudgeResult:
    ratings: np.ndarray  # int8, 1..5; 0 = could not be scored (prompt longer than the context)
    scores: np.ndarray  # float32 expected rating; NaN where unscored


def build_judge_prompts(
    prompt_version: str, instructions: Sequence[str], answers: Sequence[str], documents: Sequence[str]
) -> list[str]:
    if prompt_version not in JUDGE_PROMPTS:
        raise ValueError(f"judge prompt_version must be one of {JUDGE_PROMPTS}, got {prompt_version!r}")
    template = load_prompt(prompt_version)
    return [
        render(template, instruction=i.strip(), answer=a.strip(), document=d.strip())
        for i, a, d in zip(instructions, answers, documents, strict=True)
    ]


def judge_pairs(
    engine: LLMEngine,
    instructions: Sequence[str],
    answers: Sequence[str],
    documents: Sequence[str],
    prompt_version: str = "judge_v1",
) -> JudgeResult:
    """Rate each (instruction, answer) pair 1-5 with ``engine`` (see the module docstring)."""
    prompts = build_judge_prompts(prompt_version, instructions, answers, documents)
    if not prompts:
        return JudgeResult(np.zeros(0, dtype=np.int8), np.zeros(0, dtype=np.float32))
    logprobs = np.asarray(engine.score_continuations(prompts, RATINGS, response_prefix=RESPONSE_PREFIX), dtype=np.float64)
    scored = np.isfinite(logprobs).all(axis=1)
    ratings = np.where(scored, np.argmax(np.where(np.isfinite(logprobs), logprobs, -np.inf), axis=1) + 1, 0).astype(np.int8)
    safe = np.where(scored[:, None], logprobs, 0.0)
    probs = np.exp(safe - safe.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    expected = np.where(scored, probs @ np.arange(1, len(RATINGS) + 1), np.nan).astype(np.float32)
    return JudgeResult(ratings, expected)
