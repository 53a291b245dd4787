"""The default quality classifier shipped in the package (``dataplatform/models/quality-default-*``).

A snapshot too small to train the DCLM-style classifier on (a single WARC, an empty one) is
scored with this model instead. It is the same fastText bigram classifier as
:func:`~dataplatform.core.quality_classifier.train_quality_classifier` trains, on committed data:
positives are the bundled reference paragraphs (``quality_reference/positives.txt``), negatives
``quality_reference/negatives.txt`` (pages made by the sample-crawl generator's banks, see
``scripts/train_default_quality_classifier.py``). ``dim=16`` and ``bucket=20_000`` keep the file
at 1.8 MB instead of 53 MB with the same held-out AUC on this data (0.9997).

The model is versioned by its file name, ``quality-default-<training hash[:12]>``: the training
hash covers the hyperparameters and every training and held-out example, so a new reference set
or new hyperparameters give a new version. The sidecar carries that hash, the model's sha256
(checked on load) and the held-out metrics.
"""

from __future__ import annotations

import functools
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from dataplatform.core.quality_classifier import (
    QualityModelError,
    TrainedQualityClassifier,
    default_positives,
    load_quality_classifier,
    train_quality_classifier,
)

__all__ = [
    "DEFAULT_MODEL_PREFIX",
    "DEFAULT_TRAINING",
    "default_negatives",
    "default_quality_model_path",
    "default_quality_model_version",
    "load_default_quality_classifier",
    "train_default_quality_classifier",
    "write_default_quality_classifier",
]

DEFAULT_MODEL_PREFIX = "quality-default"
# The stage's defaults except dim/bucket (size): measured in benchmarks/RESULTS.md.
DEFAULT_TRAINING: dict[str, Any] = {
    "seed": 0,
    "word_ngrams": 2,
    "epoch": 10,
    "lr": 0.5,
    "dim": 16,
    "bucket": 20_000,
    "min_count": 1,
    "holdout_fraction": 0.2,
    "threshold": 0.5,
}
# Source-tree locations, for the training script (installed code reads through importlib.resources).
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_NEGATIVES_FILE = Path(__file__).resolve().parent / "quality_reference" / "negatives.txt"


def default_negatives() -> list[str]:
    """The committed negatives of the default model (one document per line)."""
    text = resources.files("dataplatform.core").joinpath("quality_reference/negatives.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def train_default_quality_classifier() -> TrainedQualityClassifier:
    """Train the default model from the committed reference files (deterministic)."""
    return train_quality_classifier(default_positives(), default_negatives(), **DEFAULT_TRAINING)


def default_quality_model_path() -> Path:
    """The shipped ``quality-default-<hash12>.bin`` (its ``.json`` sidecar lies beside it)."""
    folder = resources.files("dataplatform").joinpath("models")
    found = sorted(
        Path(str(entry))
        for entry in (folder.iterdir() if folder.is_dir() else [])
        if entry.name.startswith(f"{DEFAULT_MODEL_PREFIX}-") and entry.name.endswith(".bin")
    )
    if len(found) != 1:
        raise QualityModelError(
            f"expected exactly one {DEFAULT_MODEL_PREFIX}-*.bin in {folder}, found "
            f"{[p.name for p in found]}: the install is incomplete; reinstall dataplatform or run "
            "scripts/train_default_quality_classifier.py in a source checkout"
        )
    return found[0]


def default_quality_model_version() -> str:
    """``quality-default-<training hash[:12]>``: what to report as the model that scored data."""
    return default_quality_model_path().stem


@functools.lru_cache(maxsize=1)
def load_default_quality_classifier() -> TrainedQualityClassifier:
    """The shipped default model, loaded once per process (sha256 checked against its sidecar)."""
    return load_quality_classifier(default_quality_model_path())


def _stem(model: TrainedQualityClassifier) -> str:
    return f"{DEFAULT_MODEL_PREFIX}-{model.training_hash[:12]}"


def _differences(model: TrainedQualityClassifier, directory: Path) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="quality-default-check-") as tmp:
        fresh = model.save(tmp, stem=_stem(model))
        problems = []
        for path in (fresh, fresh.with_suffix(".json")):
            shipped = directory / path.name
            if not shipped.is_file():
                problems.append(f"{shipped} is missing")
            elif shipped.read_bytes() != path.read_bytes():
                problems.append(f"{shipped} differs from a fresh training run")
    stale = sorted(p.name for p in directory.glob(f"{DEFAULT_MODEL_PREFIX}-*") if not p.name.startswith(_stem(model)))
    problems += [f"{directory / name} is a stale version" for name in stale]
    return problems


def write_default_quality_classifier(
    model: TrainedQualityClassifier, directory: Path = MODELS_DIR, *, dry_run: bool = False
) -> list[str]:
    """Write ``model`` as the shipped default into ``directory``, removing older versions.

    With ``dry_run`` nothing is written: returns what differs between ``directory`` and
    ``model`` (missing or different files, stale versions), ``[]`` when they match byte for byte.
    """
    directory = Path(directory)
    if dry_run:
        return _differences(model, directory)
    model.save(directory, stem=_stem(model))
    for old in directory.glob(f"{DEFAULT_MODEL_PREFIX}-*"):
        if not old.name.startswith(_stem(model)):
            old.unlink()
    return []
