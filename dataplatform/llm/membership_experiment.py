"""A controlled membership experiment: does the Min-K% audit tell trained-on text from held-out text?

Members and non-members must come from one distribution, or the audit measures style instead of
membership. :func:`synthetic_texts` writes seeded texts from one generator (same vocabulary,
sentence shapes and lengths); :func:`run_membership_experiment` builds the tiny local causal LM
(:mod:`dataplatform.llm.tiny_model`, tokenizer trained on *all* texts so the vocabulary leaks
nothing), trains it for a few steps on half of them (:func:`train_causal_lm`), and calibrates the
audit (:func:`dataplatform.core.synthesis.min_k_prob.calibrate_membership`) on trained vs
held-out halves. A working audit gives an AUC well above 0.5; on CPU it takes seconds.

Used by ``tests/llm/test_min_k_prob.py`` and ``benchmarks/bench_synthesis_cpu.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["MembershipExperiment", "run_membership_experiment", "synthetic_texts", "train_causal_lm"]

_SUBJECTS = (
    "the committee",
    "a local baker",
    "the river survey",
    "our volunteers",
    "the new library",
    "a small farm",
    "the city council",
    "the museum",
    "a research team",
    "the harbour office",
    "the school choir",
    "a tram driver",
)
_VERBS = ("reported", "measured", "planted", "repaired", "counted", "painted", "recorded", "moved", "tested", "sold")
_OBJECTS = (
    "apple trees",
    "old bridges",
    "blue boats",
    "stone walls",
    "copper pipes",
    "wild flowers",
    "wooden benches",
    "street lamps",
    "bee hives",
    "paper maps",
    "glass jars",
    "iron gates",
)
_PLACES = (
    "near the station",
    "in the valley",
    "behind the market",
    "along the coast",
    "on the hill",
    "by the lake",
    "in the old town",
    "at the harbour",
)


def synthetic_texts(n: int, seed: int = 0, sentences: int = 4) -> list[str]:
    """``n`` distinct texts of ``sentences`` sentences each, all drawn from one seeded generator."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    seen: set[str] = set()
    while len(texts) < n:
        parts = []
        for _ in range(sentences):
            parts.append(
                f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} {int(rng.integers(2, 99))} "
                f"{rng.choice(_OBJECTS)} {rng.choice(_PLACES)} in {int(rng.integers(1900, 2030))}."
            )
        text = " ".join(parts)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def train_causal_lm(
    model_dir: str | Path,
    texts: Sequence[str],
    *,
    steps: int = 150,
    lr: float = 3e-3,
    seed: int = 0,
    batch_size: int = 16,
    num_threads: int = 1,
) -> list[float]:
    """Train the causal LM in ``model_dir`` on ``texts`` for ``steps`` AdamW steps (CPU, float32,
    ``num_threads`` torch threads), save it in place and return the loss per step. Deterministic for
    a given seed."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        return _train(model_dir, texts, steps, lr, seed, batch_size)
    finally:
        torch.set_num_threads(threads)


def _train(model_dir: str | Path, texts: Sequence[str], steps: int, lr: float, seed: int, batch_size: int) -> list[float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dataplatform.llm.engine import quiet_loading

    with quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    encoded = tokenizer(list(texts), add_special_tokens=True, padding=True, return_tensors="pt")
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        rows = torch.randperm(len(texts), generator=generator)[:batch_size]
        out = model(input_ids=encoded["input_ids"][rows], attention_mask=encoded["attention_mask"][rows], labels=labels[rows])
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.loss.detach()))
    model.eval()
    with quiet_loading():
        model.save_pretrained(str(model_dir))
    return losses


@dataclasses.dataclass(frozen=True)
class MembershipExperiment:
    auc: float
    auc_low: float
    auc_high: float
    threshold: float
    true_positive_rate: float  # of trained texts, at a 5% false-positive rate on held-out texts
    n_members: int
    n_non_members: int
    first_loss: float
    last_loss: float


def run_membership_experiment(
    workdir: str | Path, *, n_texts: int = 40, steps: int = 40, k: float = 0.2, seed: int = 0
) -> MembershipExperiment:
    """Train the tiny model on half of :func:`synthetic_texts` and audit trained vs held-out."""
    from dataplatform.core.synthesis.min_k_prob import calibrate_membership
    from dataplatform.llm.engine import TransformersEngine
    from dataplatform.llm.tiny_model import build_tiny_causal_lm

    texts = synthetic_texts(n_texts, seed)
    members, non_members = texts[: n_texts // 2], texts[n_texts // 2 :]
    model_dir = build_tiny_causal_lm(
        Path(workdir) / "membership-lm",
        texts,
        seed=seed,
        vocab_size=400,
        hidden_size=64,
        num_layers=2,
        max_position_embeddings=256,
    )
    losses = train_causal_lm(model_dir, members, steps=steps, seed=seed) if steps else [float("nan")]  # 0 steps: the control
    engine = TransformersEngine(str(model_dir), model_id="membership-lm", num_threads=1)
    calibration = calibrate_membership(engine.prompt_logprobs(members), engine.prompt_logprobs(non_members), k, seed=seed)
    return MembershipExperiment(
        calibration.auc,
        calibration.auc_low,
        calibration.auc_high,
        calibration.threshold,
        calibration.true_positive_rate,
        calibration.n_members,
        calibration.n_non_members,
        losses[0],
        losses[-1],
    )
