"""Toxicity scoring and its policy: score-only keeps everything, a threshold drops exactly the
documents above it with ``toxicity:<dimension>``; the default scorer on real text; the fastText
and Hugging Face scorers on models built here (nothing downloaded)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from dataplatform.core import toxicity as tox
from dataplatform.core.quality_classifier import default_positives

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

INSULTS = [
    "You are a worthless idiot and everybody hates you, shut up.",
    "What a fucking moron, go to hell you stupid piece of shit.",
    "I hope you die in a fire, you disgusting loser.",
]
# A page whose one toxic line sits among harmless ones: the worst chunk decides.
MIXED_PAGE = "\n".join(
    ["Opening hours are nine to five on weekdays."] * 40
    + ["Shut up you fucking idiot."]
    + ["Parking is free after six in the evening."] * 40
)


def _frame(scores: dict[str, list[float]], reasons: list[str | None] | None = None) -> pl.DataFrame:
    n = len(next(iter(scores.values())))
    columns = {tox.score_column(d): pl.Series(v, dtype=pl.Float32) for d, v in scores.items()}
    return pl.DataFrame(
        {"doc_id": [f"d{i}" for i in range(n)], "drop_reason": pl.Series(reasons or [None] * n, dtype=pl.String), **columns}
    )


# ------------------------------------------------------------------------------------- the policy
def test_score_only_keeps_every_document_even_the_toxic_ones():
    frame = _frame({"profanity": [0.0, 0.49, 0.5, 0.51, 1.0]})
    policy = tox.ToxicityPolicy("score_only", (("profanity", 0.5),))
    out = tox.apply_policy(frame, policy, ("profanity",))
    assert out["drop_reason"].null_count() == out.height
    assert out.equals(frame)


def test_threshold_drops_exactly_the_documents_above_it_with_the_dimension_as_reason():
    frame = _frame({"profanity": [0.0, 0.49, 0.5, 0.5001, 0.97, 1.0]})
    out = tox.apply_policy(frame, tox.ToxicityPolicy("drop_above_threshold", (("profanity", 0.5),)), ("profanity",))
    assert out["drop_reason"].to_list() == [None, None, None, "toxicity:profanity", "toxicity:profanity", "toxicity:profanity"]


def test_per_dimension_thresholds_first_dimension_in_scorer_order_wins_and_earlier_reasons_stay():
    dims = tox.CELADON_DIMENSIONS
    scores = {d: [0.0] * 5 for d in dims}
    scores["race_origin"] = [0.9, 0.0, 0.0, 0.9, 0.0]
    scores["violence"] = [0.9, 0.7, 0.3, 0.0, 0.9]
    scores["religion"] = [0.0, 0.0, 0.0, 0.0, 0.95]
    frame = _frame(scores, [None, None, None, None, "c4:too_few_sentences"])
    policy = tox.ToxicityPolicy("drop_above_threshold", (("race_origin", 0.8), ("violence", 0.5), ("*", 0.99)))
    out = tox.apply_policy(frame, policy, dims)
    assert out["drop_reason"].to_list() == [
        "toxicity:race_origin",
        "toxicity:violence",
        None,
        "toxicity:race_origin",
        "c4:too_few_sentences",
    ]
    assert policy.resolve(dims) == {"race_origin": 0.8, "gender_sex": 0.99, "religion": 0.99, "ability": 0.99, "violence": 0.5}


def test_policy_configuration_errors_name_the_problem():
    with pytest.raises(ValueError, match="does not give.*profanity"):
        tox.ToxicityPolicy("drop_above_threshold", (("hate", 0.5),)).resolve(("profanity",))
    with pytest.raises(ValueError, match="needs at least one threshold"):
        tox.ToxicityPolicy("drop_above_threshold")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        tox.ToxicityPolicy("drop_above_threshold", (("profanity", 1.5),))
    with pytest.raises(ValueError, match="model_path must be empty"):
        tox.ScorerSpec(kind="profanity_check", model_path="/tmp/model.joblib")
    with pytest.raises(ValueError, match="needs model_path"):
        tox.ScorerSpec(kind="fasttext")


def test_tradeoff_counts_documents_and_tokens_above_each_threshold():
    scores = np.array([0.05, 0.3, 0.6, 0.95], dtype=np.float32)
    tokens = np.array([100, 200, 300, 400])
    counts = tox.threshold_counts(scores, tokens, (0.1, 0.5, 0.9))
    assert counts == {"0.1": [3, 900], "0.5": [2, 700], "0.9": [1, 400]}
    table = tox.tradeoff_markdown({"profanity": counts}, total_docs=4, total_tokens=1000)
    assert "| > 0.5 | 2 (50.0%) | 700 (70.0%) |" in table


# ---------------------------------------------------------------------------- the default scorer
@pytest.fixture(scope="module")
def profanity():
    return tox.build_scorer(tox.ScorerSpec())


def test_default_scorer_separates_insults_from_real_explanatory_text(profanity):
    reference = default_positives()[:60]  # the project's real, well-written paragraphs
    scores = tox.score_documents(profanity, pl.Series(reference + INSULTS))
    assert scores.shape == (len(reference) + len(INSULTS), 1)
    assert scores.dtype == np.float32 and ((scores >= 0) & (scores <= 1)).all()
    assert scores[: len(reference), 0].max() < 0.5
    assert scores[len(reference) :, 0].min() > 0.8
    info = profanity.describe()
    assert info["package"] == "alt-profanity-check==1.9.1" and len(info["model_sha256"]) == 64


def test_a_page_is_as_toxic_as_its_worst_chunk(profanity):
    page = pl.Series([MIXED_PAGE])
    chunked = tox.score_documents(profanity, page, max_chunk_chars=200)[0, 0]
    whole = tox.score_documents(profanity, page, max_chunk_chars=len(MIXED_PAGE))[0, 0]
    assert chunked > 0.8 > whole  # diluted over the whole page the insult would pass
    empty = tox.score_documents(profanity, pl.Series(["", None, "   \n  "], dtype=pl.String))
    assert (empty == 0).all()


def test_chunks_are_whole_lines_and_long_lines_are_cut():
    texts = pl.Series(["a" * 25, "line one\nline two\nline three", ""])
    chunks, owner = tox.chunk_documents(texts, max_chars=10)
    assert owner.tolist() == [0, 0, 0, 1, 1]
    assert chunks[:3] == ["a" * 10, "a" * 10, "a" * 5]
    assert chunks[3:] == ["line one\nline two", "line three"]


# ------------------------------------------------------------------------------- other scorers
def test_logits_become_scores_per_head_or_label():
    celadon = np.zeros((2, 5, 4))
    celadon[0, 4, 3] = 50.0  # row 0: violence at the top severity
    heads = tox.probabilities_from_logits(celadon, None)
    assert heads.shape == (2, 5)
    assert heads[0, 4] == pytest.approx(1.0) and heads[1, 0] == pytest.approx(0.5)  # uniform over 0..3: 1.5 / 3
    binary = tox.probabilities_from_logits(np.array([[0.0, 0.0], [0.0, 100.0]]), "single_label_classification")
    assert binary[:, 1].tolist() == pytest.approx([0.5, 1.0])
    multi = tox.probabilities_from_logits(np.array([[0.0, 100.0, -100.0]]), "multi_label_classification")
    assert multi[0].tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert tox.positive_label_columns(["non-toxic", "toxic"]) == [1]
    assert tox.positive_label_columns(["LABEL_0", "LABEL_1"]) == [1]
    assert tox.positive_label_columns(["neutral", "insult", "threat"]) == [1, 2]


def test_fasttext_scorer_reads_a_jigsaw_style_model(tmp_path):
    clean = [" ".join(p.split()[:30]) for p in default_positives()[:80]]
    toxic = [f"{a} {b}" for a in INSULTS for b in ("idiot", "moron", "shut up", "loser", "hate you", "stupid")] * 3
    train = tmp_path / "train.txt"
    train.write_text("".join(f"__label__non-toxic {t}\n" for t in clean) + "".join(f"__label__toxic {t}\n" for t in toxic))
    path = tmp_path / "jigsaw_like.bin"
    # Trained in a fresh interpreter: fastText's trainer hits "Encountered NaN" on this tiny set when
    # the process has already scored with another fastText model (heap-state dependent, not data).
    train_script = (
        f"import fasttext; fasttext.train_supervised({str(train)!r}, epoch=20, wordNgrams=2, dim=16, "
        f"bucket=20_000, thread=1, seed=0, verbose=0).save_model({str(path)!r})"
    )
    subprocess.run([sys.executable, "-c", train_script], check=True)
    scorer = tox.FastTextToxicityScorer(str(path))
    assert scorer.dimensions == ("toxic",)
    scores = scorer.score_texts(["Plants turn light into sugar.\nThey release oxygen.", "you stupid idiot, shut up"])
    assert scores.shape == (2, 1) and scores[1, 0] > scores[0, 0]
    with pytest.raises(ValueError, match="not labels"):
        tox.FastTextToxicityScorer(str(path), {"__label__hate": "hate"})
    with pytest.raises(FileNotFoundError, match="no fastText model"):
        tox.FastTextToxicityScorer(str(tmp_path / "missing.bin"))


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A tiny randomly initialised Llama sequence classifier with labels non-toxic / toxic."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    from dataplatform.llm.tiny_model import build_tiny_causal_lm

    lm = build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"), default_positives() + INSULTS, seed=0, vocab_size=500)
    config = AutoConfig.from_pretrained(lm)
    config.num_labels = 2
    config.id2label, config.label2id = {0: "non-toxic", 1: "toxic"}, {"non-toxic": 0, "toxic": 1}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForSequenceClassification(config)
    out = tmp_path_factory.mktemp("tiny_classifier")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(lm).save_pretrained(out)
    return out


def test_hf_classifier_scores_do_not_depend_on_the_batch(tiny_classifier):
    scorer = tox.HFClassifierScorer(str(tiny_classifier), batch_size=4)
    assert scorer.dimensions == ("toxic",)
    texts = [INSULTS[0], "short", default_positives()[0], MIXED_PAGE[:300], "x y z"]
    batched = scorer.score_texts(texts)
    alone = np.concatenate([scorer.score_texts([t]) for t in texts])
    assert batched.shape == (5, 1) and ((batched >= 0) & (batched <= 1)).all()
    np.testing.assert_allclose(batched, alone, atol=1e-5)  # padding never leaks into a score
    assert len(scorer.describe()["model_sha256"]) == 64
