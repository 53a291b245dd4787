from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import polars as pl
import pytest

from dataplatform.core.quality_classifier import (
    HIGH_QUALITY,
    LOW_QUALITY,
    REWRITE_CANDIDATE,
    QualityModelError,
    add_quality_scores,
    default_positives,
    load_quality_classifier,
    normalize_for_fasttext,
    roc_auc,
    score_documents,
    select_by_quality,
    train_quality_classifier,
)

# ----------------------------------------------------------------------------- fixtures

_NAV = [
    "Home",
    "About Us",
    "Contact",
    "Login",
    "Sign up",
    "Cart",
    "FAQ",
    "Blog",
    "Shop",
    "Privacy Policy",
    "Terms of Service",
    "Sitemap",
    "Careers",
    "Press",
    "Help",
    "My Account",
    "Wishlist",
    "Checkout",
    "Deals",
    "New Arrivals",
    "Categories",
    "Search",
]
_SPAM = [
    "BUY NOW",
    "cheap",
    "best price",
    "click here",
    "free shipping",
    "limited offer",
    "100% guaranteed",
    "casino bonus",
    "hot deals",
    "viagra",
    "replica watches",
    "!!!",
    "win $$$",
    "lose weight fast",
    "SEO services",
    "backlinks",
    "crypto pump",
    "discount",
    "order today",
    "act now",
    "no prescription",
    "payday loans",
    "top 10",
    "mega sale",
]
_BOILER = [
    "Copyright 2024 All rights reserved.",
    "We use cookies to improve your experience.",
    "Accept all cookies",
    "Subscribe to our newsletter",
    "Share on Facebook",
    "Tweet this",
    "Posted by admin",
    "Leave a comment",
    "Read more >>",
    "Powered by WordPress",
    "Skip to content",
    "Back to top",
    "Loading...",
    "Page 1 of 27",
    "Next >",
    "< Prev",
    "Tags:",
    "Related posts",
    "0 comments",
    "Follow us on Instagram",
]


def make_negatives(n: int, seed: int) -> list[str]:
    """Low-quality crawl-like text: navigation bars, spam, boilerplate, keyword stuffing."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            parts = rng.sample(_NAV, 8) + rng.sample(_BOILER, 3)
            docs.append(" | ".join(parts))
        elif kind == 1:
            words = [rng.choice(_SPAM) for _ in range(rng.randint(10, 25))]
            docs.append(" ".join(words) + f" call {rng.randint(100, 999)} now")
        elif kind == 2:
            kw = rng.choice(["shoes", "watches", "loans", "hotels", "pills", "phones"])
            docs.append(" ".join(f"{rng.choice(_SPAM)} {kw} {kw} online" for _ in range(rng.randint(5, 9))))
        else:
            docs.append("\n".join(rng.sample(_BOILER, 6) + rng.sample(_NAV, 5)))
    return docs


# held out from training entirely: written for this test, not in the reference set
EXTRA_POSITIVES = [
    "A lever multiplies force by trading distance for effort. Placing the pivot close to a heavy "
    "load lets a small push on the long end lift it, which is why a crowbar can move a stone "
    "that would be impossible to lift by hand.",
    "To store fresh herbs, trim the stems, stand them in a glass of water like a bouquet and "
    "cover loosely with a plastic bag in the refrigerator. Basil is the exception: it keeps best "
    "at room temperature, away from direct sunlight.",
    "The Hanseatic League was a medieval alliance of merchant guilds and market towns around the "
    "Baltic and North Seas. By cooperating on trade rules and protection, its members dominated "
    "commerce in northern Europe for several centuries.",
    "A stack is a collection in which the last element added is the first one removed. Function "
    "calls use a stack to remember where to return, and undo features in editors keep a stack of "
    "previous states.",
    "When planning a long hike, tell someone your route and expected return time, check the "
    "weather forecast, and carry more water than you think you need. Layers of clothing let you "
    "adjust as the temperature changes during the day.",
    "Photosynthesis and respiration mirror each other: plants capture energy to build sugars and "
    "release oxygen, while cells break sugars down with oxygen to release the energy they need, "
    "returning carbon dioxide to the air.",
    "Question: Why does ice float? Answer: As water freezes, its molecules arrange into an open "
    "hexagonal lattice held by hydrogen bonds, which takes up more space than liquid water. Ice is "
    "therefore less dense than the water around it and floats.",
    "Interest on a savings account is usually quoted as an annual rate, but it may be compounded "
    "monthly or daily. Comparing the annual equivalent rate lets you see which account actually "
    "pays more over a year.",
]


@pytest.fixture(scope="module")
def positives() -> list[str]:
    return default_positives()


@pytest.fixture(scope="module")
def negatives() -> list[str]:
    return make_negatives(400, seed=1)


@pytest.fixture(scope="module")
def classifier(positives, negatives):
    return train_quality_classifier(positives, negatives, seed=0, epoch=10)


# -------------------------------------------------------------------------------- tests


def test_reference_set_is_shipped_and_varied():
    pos = default_positives()
    assert 150 <= len(pos) <= 300
    assert len(set(pos)) == len(pos)
    assert all(len(p.split()) >= 30 for p in pos)
    assert not any(p.startswith("#") for p in pos)


def test_normalization():
    s = normalize_for_fasttext(["Hello\nWORLD\t\t again  ", None, "__label__hq trick"])
    assert s.to_list() == ["hello world again", None, "label hq trick"]


def test_training_is_deterministic(tmp_path, positives, negatives, classifier):
    again = train_quality_classifier(list(reversed(positives)), negatives[::-1], seed=0, epoch=10)
    assert again.training_hash == classifier.training_hash
    texts = EXTRA_POSITIVES + make_negatives(20, seed=99)
    np.testing.assert_array_equal(score_documents(again, texts), score_documents(classifier, texts))
    a = classifier.save(tmp_path / "a")
    b = again.save(tmp_path / "b")
    assert a.name == b.name == f"quality-{classifier.training_hash[:12]}.bin"
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def test_hash_changes_with_data_seed_and_hyperparameters(positives, negatives, classifier):
    other_seed = train_quality_classifier(positives, negatives, seed=1, epoch=10)
    other_data = train_quality_classifier(positives, negatives[:-1], seed=0, epoch=10)
    other_hp = train_quality_classifier(positives, negatives, seed=0, epoch=11)
    hashes = {classifier.training_hash, other_seed.training_hash, other_data.training_hash, other_hp.training_hash}
    assert len(hashes) == 4


def test_holdout_metrics(classifier, positives, negatives):
    m = classifier.metrics
    assert m is not None
    n_pos_test = round(len(positives) * 0.2)
    n_neg_test = round(len(negatives) * 0.2)
    assert (m.n_test_positive, m.n_test_negative) == (n_pos_test, n_neg_test)
    assert m.n_train + m.n_test == len(positives) + len(negatives)
    assert m.roc_auc > 0.9
    assert m.precision > 0.8 and m.recall > 0.8 and m.f1 > 0.8
    assert m.threshold == 0.5


def test_auc_on_unseen_fixture(classifier):
    neg = make_negatives(60, seed=12345)
    scores = score_documents(classifier, EXTRA_POSITIVES + neg)
    y = np.array([1] * len(EXTRA_POSITIVES) + [0] * len(neg))
    assert roc_auc(y, scores) > 0.9


def test_scores_are_probabilities(classifier):
    texts = pl.Series("text", EXTRA_POSITIVES + make_negatives(30, seed=3) + ["", None, "x"])
    scores = score_documents(classifier, texts)
    assert scores.dtype == np.float32
    assert scores.shape == (len(texts),)
    valid = scores[~np.isnan(scores)]
    assert np.isnan(scores[-2]) and valid.size == len(texts) - 1
    assert ((valid >= 0) & (valid <= 1)).all()


def test_add_quality_scores(classifier):
    df = pl.DataFrame({"id": [1, 2, 3], "body": [EXTRA_POSITIVES[0], None, "BUY NOW cheap!!!"]})
    out = add_quality_scores(df, classifier, text_column="body")
    assert out.columns == ["id", "body", "quality_score"]
    assert out.schema["quality_score"] == pl.Float32
    assert out["quality_score"][1] is None
    assert out["quality_score"][0] > out["quality_score"][2]
    with pytest.raises(ValueError, match="text"):
        add_quality_scores(df, classifier)


def test_save_load_round_trip(tmp_path, classifier):
    path = classifier.save(tmp_path)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["training_hash"] == classifier.training_hash
    assert sidecar["metrics"]["n_test"] == classifier.metrics.n_test
    assert sidecar["hyperparameters"]["word_ngrams"] == 2
    assert sidecar["hyperparameters"]["thread"] == 1
    loaded = load_quality_classifier(path)
    texts = EXTRA_POSITIVES + make_negatives(10, seed=5)
    np.testing.assert_array_equal(score_documents(loaded, texts), score_documents(classifier, texts))
    assert loaded.training_hash == classifier.training_hash
    assert loaded.metrics == classifier.metrics


def test_load_missing_and_corrupt(tmp_path, classifier):
    missing = tmp_path / "quality-000000000000.bin"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_quality_classifier(missing)

    path = classifier.save(tmp_path / "m")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated: fastText itself would load this
    with pytest.raises(QualityModelError, match=str(path)):
        load_quality_classifier(path)

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model" * 10)
    with pytest.raises(QualityModelError, match=str(junk)):
        load_quality_classifier(junk)  # no sidecar
    with pytest.raises(QualityModelError, match=str(junk)):
        load_quality_classifier(junk, require_sidecar=False)  # fastText rejects it

    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(QualityModelError, match="sidecar"):
        load_quality_classifier(path)


def test_bare_fasttext_model_loads_without_sidecar(tmp_path, classifier):
    bare = tmp_path / "dclm-like.bin"
    classifier.model.save_model(str(bare))
    loaded = load_quality_classifier(bare, require_sidecar=False)
    np.testing.assert_array_equal(score_documents(loaded, EXTRA_POSITIVES), score_documents(classifier, EXTRA_POSITIVES))


def test_training_input_validation(positives):
    with pytest.raises(ValueError, match="negatives"):
        train_quality_classifier(positives, [])
    with pytest.raises(ValueError, match="holdout_fraction"):
        train_quality_classifier(positives, ["a b"], holdout_fraction=1.0)
    with pytest.raises(ValueError, match="dim"):
        train_quality_classifier(positives, ["a b"], dim=0)


# ---------------------------------------------------------------------------- selection


def test_select_by_quality_exact_fraction_with_ties():
    # 20 rows, many ties; top 10% = exactly 2 rows, band (0.1, 0.5) = next 8 rows
    scores = np.array(
        [0.9, 0.5, 0.9, 0.9, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.2, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3, np.nan, 0.0, 0.5], dtype=np.float32
    )
    sel = select_by_quality(scores, top_fraction=0.10, rewrite_band=(0.10, 0.50))
    labels = sel.labels.to_list()
    assert (sel.n_high, sel.n_rewrite, sel.n_low) == (2, 8, 10)
    # ties broken by row order: rows 0 and 2 win among the three 0.9s
    assert [i for i, lab in enumerate(labels) if lab == HIGH_QUALITY] == [0, 2]
    assert sel.threshold == pytest.approx(0.9)
    # rank 3..10: row 3 (0.9), then the 0.5s in row order: 1, 5, 6, 7, 8, 9, 19
    assert [i for i, lab in enumerate(labels) if lab == REWRITE_CANDIDATE] == [1, 3, 5, 6, 7, 8, 9, 19]
    assert sel.rewrite_threshold == pytest.approx(0.5)
    assert labels[17] == LOW_QUALITY  # NaN ranks last
    assert sel.is_high.sum() == 2
    # same answer from a polars Series with a null
    sel2 = select_by_quality(pl.Series(scores.tolist()).fill_nan(None))
    assert sel2.labels.to_list() == labels


def test_select_by_quality_sizes_and_edges():
    rng = np.random.default_rng(0)
    scores = rng.random(1000)
    sel = select_by_quality(scores)
    assert (sel.n_high, sel.n_rewrite, sel.n_low) == (100, 400, 500)
    assert sel.threshold == pytest.approx(np.sort(scores)[::-1][99])
    assert (scores[sel.is_high] >= sel.threshold).all()
    assert (scores[~sel.is_high] < sel.threshold).all()

    empty = select_by_quality(np.array([]))
    assert (empty.n_high, empty.threshold) == (0, float("inf"))
    all_kept = select_by_quality(np.ones(5), top_fraction=1.0)
    assert all_kept.n_high == 5
    with pytest.raises(ValueError, match="top_fraction"):
        select_by_quality(scores, top_fraction=1.5)
    with pytest.raises(ValueError, match="rewrite_band"):
        select_by_quality(scores, rewrite_band=(0.6, 0.5))


def test_roc_auc_matches_pairwise_definition():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200), 1)  # many ties
    pos, neg = s[y == 1], s[y == 0]
    pairwise = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(y, s) == pytest.approx(pairwise / (pos.size * neg.size))
    assert np.isnan(roc_auc(np.ones(3), np.array([0.1, 0.2, 0.3])))


def test_scoring_independent_of_chunking_and_whitespace_collapse(classifier):
    texts = (EXTRA_POSITIVES + make_negatives(40, seed=8)) * 3
    texts[5] = None
    texts[7] = "Tabs\tand\u00a0non-breaking\u2003spaces\n\nand  Newlines  "
    whole = score_documents(classifier, texts, chunk_bytes=1 << 30)
    for chunk_bytes in (1, 100, 5000):
        np.testing.assert_array_equal(score_documents(classifier, texts, chunk_bytes=chunk_bytes), whole)
    assert np.isnan(whole[5]) and not np.isnan(whole[7])
    valid = [t for t in texts if t is not None]
    collapsed = normalize_for_fasttext(valid).to_list()
    direct = classifier.model.predict(collapsed, k=2)
    probs = np.array([p[list(lab).index("__label__hq")] for lab, p in zip(*direct)])
    np.testing.assert_allclose(np.delete(whole, 5), np.clip(probs, 0, 1), rtol=0, atol=1e-7)


def test_small_models_are_identical_after_the_heap_was_reused(tmp_path, positives, negatives):
    """fastText leaves most of its input matrix uninitialised; a small one (not mmap'd) used to
    pick up whatever an earlier allocation left behind: different bytes, or "Encountered NaN"."""
    digests = set()
    for i in range(4):
        garbage = [np.full(300_000, 1e15) for _ in range(20)]  # fill, then free, heap memory
        del garbage
        model = train_quality_classifier(positives, negatives, dim=16, bucket=20_000)
        digests.add(hashlib.sha256(model.save(tmp_path / str(i)).read_bytes()).hexdigest())
    assert len(digests) == 1
