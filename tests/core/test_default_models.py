"""The models a plain install ships: the default quality classifier and the lid.176 language-ID model."""

import fnmatch
import hashlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType

from dataplatform.core import language_id
from dataplatform.core.default_quality_model import (
    DEFAULT_MODEL_PREFIX,
    DEFAULT_TRAINING,
    default_negatives,
    default_quality_model_path,
    default_quality_model_version,
    load_default_quality_classifier,
    train_default_quality_classifier,
    write_default_quality_classifier,
)
from dataplatform.core.html_extraction import extract_document
from dataplatform.core.language_id import LID176_SHA256, FastTextLanguageIdentifier, LanguageModelNotFound
from dataplatform.core.quality_classifier import default_positives, roc_auc
from dataplatform.sample_data import SAMPLE_CRAWL_ROOT, load_ground_truth

REPO = Path(__file__).parents[2]
MODELS = REPO / "dataplatform" / "models"

# Written for this test: explanatory paragraphs in the reference set's style, not in it.
REFERENCE_LIKE = [
    "A lever multiplies force by trading distance for effort. Placing the pivot close to a heavy load "
    "lets a small push on the long end lift it, which is why a crowbar can move a stone that would be "
    "impossible to lift by hand.",
    "Tides are caused mainly by the gravitational pull of the Moon on the oceans. The water bulges toward "
    "the Moon on one side of the Earth and away from it on the other, so most coasts see two high tides "
    "and two low tides a day.",
    "A compiler translates a whole program into machine code before it runs, while an interpreter reads "
    "and executes the program one statement at a time. Compiled programs usually run faster; interpreted "
    "ones are easier to change and test interactively.",
    "Vaccines train the immune system by showing it a harmless piece or weakened form of a germ. The body "
    "makes antibodies and memory cells, so if the real germ appears later the immune response is fast "
    "enough to prevent serious illness.",
    "When you knead bread dough, you stretch and fold it so that the gluten proteins line up into long "
    "elastic strands. Those strands trap the gas produced by the yeast, which is what lets the loaf rise.",
]


def _sidecar() -> dict:
    return json.loads(default_quality_model_path().with_suffix(".json").read_text(encoding="utf-8"))


def _sample_crawl_texts(categories: set[str]) -> list[str]:
    """Extracted text of the bundled sample crawl's 200 responses in ``categories``."""
    wanted = {r["warc_record_id"] for r in load_ground_truth() if r["category"] in categories and r["http_status"] == 200}
    texts = []
    for path in sorted(SAMPLE_CRAWL_ROOT.rglob("*.warc.gz")):
        for rec in ArchiveIterator(str(path), record_types=WarcRecordType.response, parse_http=True):
            if rec.record_id in wanted:
                extracted = extract_document(rec.reader.read(), rec.http_headers.get("Content-Type"))
                if extracted.text:
                    texts.append(extracted.text)
    return texts


# ------------------------------------------------------------------------------ quality classifier


def test_shipped_quality_model_is_what_the_training_script_produces():
    """A fresh training run (in this process) reproduces the shipped files byte for byte."""
    model = train_default_quality_classifier()
    sidecar = _sidecar()
    assert default_quality_model_path().name == f"{DEFAULT_MODEL_PREFIX}-{model.training_hash[:12]}.bin"
    assert sidecar["training_hash"] == model.training_hash
    assert sidecar["metrics"] == model.metrics.to_dict()
    assert {k: sidecar["hyperparameters"][k] for k in DEFAULT_TRAINING} == DEFAULT_TRAINING
    assert sidecar["model_sha256"] == hashlib.sha256(default_quality_model_path().read_bytes()).hexdigest()
    assert write_default_quality_classifier(model, MODELS, dry_run=True) == []


def test_training_script_check_passes_and_covers_the_negatives_file():
    """``--check`` regenerates the negatives from the sample banks and retrains in a fresh process."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train_default_quality_classifier.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{default_quality_model_version()} matches" in result.stdout


def test_shipped_metrics_and_size():
    metrics = _sidecar()["metrics"]
    assert metrics["roc_auc"] >= 0.99
    assert metrics["n_test_positive"] >= 30 and metrics["n_test_negative"] >= 100
    assert default_quality_model_path().stat().st_size < 3 * 2**20  # package data stays small
    negatives = default_negatives()
    assert len(negatives) == len(set(negatives)) >= 500
    assert not set(negatives) & set(default_positives())


def test_default_model_ranks_reference_text_above_crawl_boilerplate_and_spam():
    model = load_default_quality_classifier()
    reference = model.score(REFERENCE_LIKE)
    junk = model.score(_sample_crawl_texts({"boilerplate", "spam"}))
    assert len(junk) >= 50
    assert reference.min() > junk.max()
    assert reference.min() > 0.8 and np.median(junk) < 0.1
    articles = model.score(_sample_crawl_texts({"article"}))
    labels = np.r_[np.ones(len(reference)), np.zeros(len(articles))]
    assert roc_auc(labels, np.r_[reference, articles]) > 0.95


def test_default_model_is_loaded_once_and_named_by_its_version():
    first = load_default_quality_classifier()
    assert load_default_quality_classifier() is first
    version = default_quality_model_version()
    assert version == f"{DEFAULT_MODEL_PREFIX}-{first.training_hash[:12]}"
    assert first.path == default_quality_model_path()
    assert first.metrics is not None and first.metrics.roc_auc == _sidecar()["metrics"]["roc_auc"]


def test_write_default_replaces_older_versions(tmp_path):
    model = load_default_quality_classifier()
    (tmp_path / f"{DEFAULT_MODEL_PREFIX}-000000000000.bin").write_bytes(b"old")
    (tmp_path / f"{DEFAULT_MODEL_PREFIX}-000000000000.json").write_text("{}")
    problems = write_default_quality_classifier(model, tmp_path, dry_run=True)
    assert any("missing" in p for p in problems) and any("stale" in p for p in problems)
    write_default_quality_classifier(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{default_quality_model_version()}.bin",
        f"{default_quality_model_version()}.json",
    ]
    assert write_default_quality_classifier(model, tmp_path, dry_run=True) == []


# ------------------------------------------------------------------------------------ language ID


def test_bundled_lid176_identifies_languages_without_extra_packages():
    path = language_id.default_language_model_path()
    assert path.parent == MODELS
    assert hashlib.sha256(path.read_bytes()).hexdigest() == LID176_SHA256
    labels, scores = FastTextLanguageIdentifier().predict(
        [
            "The weather today is sunny with a light breeze from the west.",
            "Das Wetter ist heute sonnig und es weht ein leichter Wind aus Westen.",
            "Il fait beau aujourd'hui avec une légère brise venant de l'ouest.",
            "   ",
            None,
        ]
    )
    assert labels == ["en", "de", "fr", "und", "und"]
    assert (scores[:3] > 0.5).all() and (scores[3:] == 0).all()


def test_lid176_licence_and_attribution_ship_beside_it():
    notice = (MODELS / "LICENSE-lid.176.md").read_text(encoding="utf-8")
    assert "CC BY-SA 3.0" in notice and "creativecommons.org/licenses/by-sa/3.0" in notice
    assert "Bag of Tricks for Efficient Text" in notice and LID176_SHA256 in notice


def test_missing_bundled_model_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(language_id.resources, "files", lambda package: tmp_path)
    with pytest.raises(LanguageModelNotFound, match="incomplete install.*--language-model"):
        language_id.default_language_model_path()


def test_package_data_globs_ship_every_model_file():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["dataplatform"]
    shipped = sorted(p.relative_to(REPO / "dataplatform").as_posix() for p in MODELS.iterdir())
    assert {"lid.176.ftz", "LICENSE-lid.176.md", default_quality_model_path().name} <= {Path(p).name for p in shipped}
    for rel in shipped + ["core/quality_reference/positives.txt", "core/quality_reference/negatives.txt"]:
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not package data"
