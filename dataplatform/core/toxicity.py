"""Toxicity scores per document and per dimension; the filtering policy is configuration.

Why scores and not a built-in cut: the Pretrainer's Guide (Longpre et al. 2023, "A Pretrainer's
Guide to Training Data") found that toxicity filtering trades benchmark performance against toxic
generation, with no threshold right for every use; Toxicity of the Commons (Arnett et al. 2024)
scores five dimensions (race/origin, gender/sex, religion, ability, violence) with its Celadon
classifier and filters with a per-dimension policy. So every document gets a score in [0, 1] per
dimension (``toxicity_<dimension>``) and their maximum (``toxicity_score``); the default policy only
scores, and ``drop_above_threshold`` drops a document whose score on a dimension is above that
dimension's threshold, with the reason ``toxicity:<dimension>`` (first dimension in the scorer's
order wins).

Scorers (one interface, :class:`ToxicityScorer`):

* :class:`ProfanityCheckScorer` (default, offline): ``alt-profanity-check``'s linear SVM on TF-IDF
  features, MIT, trained model shipped in its wheel. The package unpickles its model with joblib,
  so it is loaded only from the installed package's own files, never from a user path.
* :class:`FastTextToxicityScorer`: a fastText classifier file such as Dolma's Jigsaw-trained
  taggers (``jigsaw_fasttext_bigrams_{hatespeech,nsfw}``, Soldaini et al. 2024): one dimension per
  label that is not a ``non-`` label.
* :class:`HFClassifierScorer`: a local Hugging Face sequence classifier (Celadon, or any
  ``AutoModelForSequenceClassification`` folder) on CPU or a torch device.

Long documents are scored in chunks of about ``max_chunk_chars`` (whole lines packed together; a
line longer than that is cut) and a document's score is the maximum over its chunks, like Dolma's
sentence-level taggers: a page with one toxic paragraph is not averaged clean, and a classifier
with a 512-token window sees all of the text.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import hashlib
import importlib.util
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa

__all__ = [
    "CELADON_DIMENSIONS",
    "MAX_COLUMN",
    "THRESHOLD_GRID",
    "FastTextToxicityScorer",
    "HFClassifierScorer",
    "ProfanityCheckScorer",
    "ScorerSpec",
    "ToxicityPolicy",
    "ToxicityScorer",
    "apply_policy",
    "build_scorer",
    "chunk_documents",
    "drop_reason",
    "positive_label_columns",
    "probabilities_from_logits",
    "score_column",
    "score_documents",
    "score_histogram",
    "threshold_counts",
    "toxicity_schema",
    "tradeoff_markdown",
]

STAGE = "toxicity"
MAX_COLUMN = "toxicity_score"  # the maximum over the scorer's dimensions
# Thresholds the metadata reports "docs / tokens above" for, so the trade-off is visible before a
# policy is chosen (in addition to the thresholds a policy names).
THRESHOLD_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
HISTOGRAM_BINS = 10
# Toxicity of the Commons (Celadon) heads, in its order.
CELADON_DIMENSIONS = ("race_origin", "gender_sex", "religion", "ability", "violence")
_DIMENSION = re.compile(r"^[a-z0-9][a-z0-9_]*$")
ALL_DIMENSIONS = "*"  # a policy threshold for every dimension not named on its own


def score_column(dimension: str) -> str:
    return f"toxicity_{dimension}"


def drop_reason(dimension: str) -> str:
    return f"{STAGE}:{dimension}"


def dimension_name(label: str) -> str:
    """A model label as a column-safe dimension name: ``__label__Hate-Speech`` -> ``hate_speech``."""
    name = re.sub(r"[^a-z0-9]+", "_", label.removeprefix("__label__").lower()).strip("_")
    if not name:
        raise ValueError(f"label {label!r} gives an empty dimension name")
    return name


def toxicity_schema(base: pa.Schema, dimensions: Sequence[str]) -> pa.Schema:
    """``base`` (the filtered documents) plus one float32 score per dimension and their maximum."""
    return pa.schema(
        list(base) + [pa.field(score_column(d), pa.float32()) for d in dimensions] + [pa.field(MAX_COLUMN, pa.float32())]
    )


# ------------------------------------------------------------------------------------- scorers
class ToxicityScorer(abc.ABC):
    """Scores texts on named dimensions: ``score_texts(texts)`` is float32 ``(len(texts), len(dimensions))``
    in [0, 1], one row per text, independent of which other texts share the call."""

    name: str = "abstract"
    dimensions: tuple[str, ...] = ()

    @abc.abstractmethod
    def score_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]:
        return {"scorer": self.name, "dimensions": list(self.dimensions)}


def _sha256_files(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class ProfanityCheckScorer(ToxicityScorer):
    """``alt-profanity-check`` (Zhou, Kotoglou, Mistriotis; MIT): P(offensive) from a calibrated linear
    SVM over TF-IDF features, trained on ~200k human-labelled comments (Davidson et al. 2017 and the
    Jigsaw toxic-comment set). Dimension ``profanity``.

    The model ships as joblib pickles inside the wheel; it is read from the installed
    ``profanity_check`` package only (unpickling a file is running code).
    """

    name = "profanity_check"
    dimensions = ("profanity",)

    def __init__(self) -> None:
        spec = importlib.util.find_spec("profanity_check")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("the default toxicity scorer needs alt-profanity-check: pip install alt-profanity-check==1.9.1")
        # Importing the package unpickles the model files inside the installed wheel, nothing else.
        from profanity_check import profanity_check as package

        self.vectorizer, self.model = package.vectorizer, package.model
        data = Path(next(iter(spec.submodule_search_locations))) / "data"
        self.model_sha256 = _sha256_files([data / "model.joblib", data / "vectorizer.joblib"])

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, 1), dtype=np.float32)
        probs = self.model.predict_proba(self.vectorizer.transform(list(texts)))[:, 1]
        return np.clip(probs, 0.0, 1.0).astype(np.float32).reshape(-1, 1)

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            **super().describe(),
            "package": f"alt-profanity-check=={version('alt-profanity-check')}",
            "model_sha256": self.model_sha256,
        }


class FastTextToxicityScorer(ToxicityScorer):
    """A fastText classifier file, e.g. Dolma's Jigsaw taggers (``__label__toxic`` vs
    ``__label__non-toxic``-style labels). Each label that does not start with ``non`` is a dimension
    (``label_dimensions`` maps labels to names explicitly); its score is that label's probability.
    Newlines become spaces (fastText reads one example per line), as Dolma's tagger does."""

    name = "fasttext"

    def __init__(self, model_path: str, label_dimensions: Mapping[str, str] | None = None) -> None:
        import fasttext

        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"toxicity model_path: no fastText model at {path}")
        fasttext.FastText.eprint = lambda *_args, **_kwargs: None  # noisy deprecation warning on load
        self.model = fasttext.load_model(str(path))
        labels = list(self.model.get_labels())
        if label_dimensions:
            unknown = sorted(set(label_dimensions) - set(labels))
            if unknown:
                raise ValueError(f"toxicity label_dimensions: {unknown} are not labels of {path.name} (labels: {labels})")
            self.labels = list(label_dimensions)
            names = [label_dimensions[label] for label in self.labels]
        else:
            self.labels = [label for label in labels if not label.removeprefix("__label__").lower().startswith("non")]
            names = [dimension_name(label) for label in self.labels]
        if not self.labels:
            raise ValueError(f"toxicity model {path.name}: no label to score (labels: {labels}); set label_dimensions")
        self.dimensions = tuple(_check_dimensions(names))
        self.model_path = path
        self.model_sha256 = _sha256_files([path])

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if not len(texts):
            return out
        lines = pl.Series(list(texts), dtype=pl.String).str.replace_all(r"\s+", " ").str.strip_chars().to_list()
        labels, probs = self.model.predict(lines, k=-1)
        column = {label: j for j, label in enumerate(self.labels)}
        for i, (row_labels, row_probs) in enumerate(zip(labels, probs)):
            for label, p in zip(row_labels, row_probs):
                j = column.get(label)
                if j is not None:
                    out[i, j] = p
        return np.clip(out, 0.0, 1.0)  # fastText adds 1e-5 before the log: p can exceed 1 by a hair

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "model_file": self.model_path.name,
            "model_sha256": self.model_sha256,
            "labels": self.labels,
        }


def probabilities_from_logits(logits: np.ndarray, problem_type: str | None) -> np.ndarray:
    """Scores in [0, 1] from a classifier's logits.

    * ``(n, labels)`` single-label: softmax; multi-label (``problem_type ==
      "multi_label_classification"``): sigmoid per label.
    * ``(n, heads, levels)``: one severity head per dimension (Celadon: 5 heads, severity 0-3);
      the score is the expected severity over the softmax, divided by the top level.
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim == 3:
        p = np.exp(x - x.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        levels = np.arange(x.shape[-1], dtype=np.float64)
        return ((p * levels).sum(axis=-1) / max(x.shape[-1] - 1, 1)).astype(np.float32)
    if x.ndim != 2:
        raise ValueError(f"classifier logits must be (n, labels) or (n, heads, levels), got shape {x.shape}")
    if problem_type == "multi_label_classification":
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
    p = np.exp(x - x.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)).astype(np.float32)


_NEGATIVE_LABEL = re.compile(r"^(non|not|neutral|normal|clean|safe|ok)\b", re.IGNORECASE)


def positive_label_columns(labels: Sequence[str]) -> list[int]:
    """Which of a single-head classifier's labels are toxicity dimensions: all but the negative ones
    (``non-toxic``, ``neutral``, ...); of a binary model with neutral names (``LABEL_0``/``LABEL_1``)
    the second."""
    keep = [i for i, label in enumerate(labels) if not _NEGATIVE_LABEL.search(label)]
    if len(labels) == 2 and len(keep) == 2:
        keep = [1]
    return keep


class HFClassifierScorer(ToxicityScorer):
    """A local Hugging Face sequence classifier (``AutoModelForSequenceClassification``): Celadon
    (PleIAs, Toxicity of the Commons) or any toxicity classifier folder. Never downloads
    (``local_files_only``). Dimensions: the model's labels minus negative ones (see
    :func:`positive_label_columns`); a multi-head model (logits ``(n, heads, levels)``) has one per
    head, named by ``dimensions`` (default: Celadon's five when there are five heads).

    ``trust_remote_code`` runs Python shipped in the model folder: off unless asked for.
    """

    name = "hf_classifier"

    def __init__(
        self,
        model_path: str,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int = 512,
        dimensions: Sequence[str] | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"toxicity model_path: no Hugging Face model folder (config.json) at {path}")
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=trust_remote_code)
        self.model = (
            AutoModelForSequenceClassification.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=trust_remote_code
            )
            .to(torch.device(device))
            .eval()
        )
        self.device, self.batch_size, self.max_length = torch.device(device), int(batch_size), int(max_length)
        self.model_path = path
        self.problem_type = getattr(self.model.config, "problem_type", None)
        shape = self._logits(["probe"]).shape  # (1, labels) or (1, heads, levels)
        if len(shape) == 3:
            self.columns = None
            names = (
                list(dimensions)
                if dimensions
                else (list(CELADON_DIMENSIONS) if shape[1] == len(CELADON_DIMENSIONS) else [f"head_{i}" for i in range(shape[1])])
            )
            if len(names) != shape[1]:
                raise ValueError(f"toxicity dimensions: {path.name} has {shape[1]} heads, {len(names)} names given")
        else:
            id2label = self.model.config.id2label
            labels = [id2label[i] for i in sorted(id2label)]
            self.columns = positive_label_columns(labels)
            names = list(dimensions) if dimensions else [dimension_name(labels[i]) for i in self.columns]
            if len(names) != len(self.columns):
                raise ValueError(
                    f"toxicity dimensions: {path.name} scores labels {[labels[i] for i in self.columns]}, "
                    f"{len(names)} names given"
                )
        self.dimensions = tuple(_check_dimensions(names))
        self.model_sha256 = _sha256_files([p for p in path.iterdir() if p.is_file()])

    def _logits(self, texts: list[str]) -> np.ndarray:
        import torch

        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt").to(
            self.device
        )
        with torch.inference_mode():
            output = self.model(**enc)
        return getattr(output, "logits", output).float().cpu().numpy()

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.dimensions)), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths share a batch
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            probs = probabilities_from_logits(self._logits([texts[i] for i in rows]), self.problem_type)
            out[rows] = probs if self.columns is None else probs[:, self.columns]
        return np.clip(out, 0.0, 1.0)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "model": self.model_path.name,
            "model_sha256": self.model_sha256,
            "device": str(self.device),
            "max_length": self.max_length,
        }


def _check_dimensions(names: list[str]) -> list[str]:
    bad = [n for n in names if not _DIMENSION.match(n)]
    if bad:
        raise ValueError(f"toxicity dimensions must match {_DIMENSION.pattern}: {bad}")
    if len(set(names)) != len(names):
        raise ValueError(f"toxicity dimensions repeat: {names}")
    return names


ScorerKind = Literal["profanity_check", "fasttext", "hf_classifier"]


@dataclasses.dataclass(frozen=True)
class ScorerSpec:
    """Which scorer to build (picklable: workers build their own, once per process)."""

    kind: ScorerKind = "profanity_check"
    model_path: str | None = None  # fastText .bin or Hugging Face folder
    device: str = "cpu"
    batch_size: int = 32
    max_length: int = 512
    dimensions: tuple[str, ...] = ()  # hf_classifier: names of the model's heads/labels
    label_dimensions: tuple[tuple[str, str], ...] = ()  # fasttext: label -> dimension
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("profanity_check", "fasttext", "hf_classifier"):
            raise ValueError(f"toxicity scorer must be profanity_check, fasttext or hf_classifier, got {self.kind!r}")
        if self.kind != "profanity_check" and not self.model_path:
            raise ValueError(f"toxicity scorer {self.kind} needs model_path")
        if self.kind == "profanity_check" and self.model_path:
            raise ValueError("toxicity scorer profanity_check loads only the model inside its package; model_path must be empty")


@functools.lru_cache(maxsize=2)
def build_scorer(spec: ScorerSpec) -> ToxicityScorer:
    """The scorer for ``spec``, built once per process."""
    if spec.kind == "profanity_check":
        return ProfanityCheckScorer()
    if spec.kind == "fasttext":
        return FastTextToxicityScorer(spec.model_path, dict(spec.label_dimensions) or None)
    return HFClassifierScorer(
        spec.model_path,
        device=spec.device,
        batch_size=spec.batch_size,
        max_length=spec.max_length,
        dimensions=spec.dimensions or None,
        trust_remote_code=spec.trust_remote_code,
    )


# ------------------------------------------------------------------------------------- scoring
def chunk_documents(texts: pl.Series, max_chars: int) -> tuple[list[str], np.ndarray]:
    """Cut each text into chunks of whole lines, about ``max_chars`` each (a chunk starts at the
    first line that begins past a multiple of ``max_chars``, so it is shorter than twice that;
    a longer line is cut into ``max_chars`` pieces). Returns the chunks and each one's text index;
    empty and null texts have no chunk."""
    if max_chars < 1:
        raise ValueError(f"max_chunk_chars must be >= 1, got {max_chars}")
    frame = pl.DataFrame({"text": texts.cast(pl.String)}).with_row_index("doc")
    pieces = (
        frame.select("doc", pl.col("text").str.extract_all(rf"[^\n]{{1,{max_chars}}}").alias("piece"))
        .explode("piece")
        .drop_nulls("piece")
        .filter(pl.col("piece").str.strip_chars() != "")
        .with_columns(pl.col("piece").str.len_chars().alias("n"))
    )
    pieces = pieces.with_columns(((pl.col("n").cum_sum().over("doc") - pl.col("n")) // max_chars).alias("chunk"))
    chunks = pieces.group_by("doc", "chunk", maintain_order=True).agg(pl.col("piece").str.join("\n"))
    return chunks["piece"].to_list(), chunks["doc"].to_numpy().astype(np.int64)


def score_documents(scorer: ToxicityScorer, texts: pl.Series, max_chunk_chars: int = 1000) -> np.ndarray:
    """float32 ``(len(texts), len(dimensions))``: per dimension, the maximum over a document's chunks;
    0 for a document with no text."""
    chunks, owner = chunk_documents(texts, max_chunk_chars)
    out = np.zeros((len(texts), len(scorer.dimensions)), dtype=np.float32)
    if chunks:
        np.maximum.at(out, owner, scorer.score_texts(chunks))
    return out


# -------------------------------------------------------------------------------------- policy
@dataclasses.dataclass(frozen=True)
class ToxicityPolicy:
    """``score_only`` keeps every document; ``drop_above_threshold`` drops a document whose score on
    a dimension is above that dimension's threshold. ``thresholds`` are ``(dimension, value)``;
    ``"*"`` stands for every dimension not named. In ``score_only`` the thresholds only feed the
    metadata (share of documents above each)."""

    mode: Literal["score_only", "drop_above_threshold"] = "score_only"
    thresholds: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in ("score_only", "drop_above_threshold"):
            raise ValueError(f"toxicity policy must be score_only or drop_above_threshold, got {self.mode!r}")
        for name, value in self.thresholds:
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"toxicity threshold for {name!r} must be in [0, 1], got {value!r}")
        if self.mode == "drop_above_threshold" and not self.thresholds:
            raise ValueError("toxicity policy drop_above_threshold needs at least one threshold (dimension -> value)")

    def resolve(self, dimensions: Sequence[str]) -> dict[str, float]:
        """Threshold per dimension of this scorer, in the scorer's order; unknown names fail here,
        before any document is scored."""
        given = dict(self.thresholds)
        unknown = sorted(set(given) - set(dimensions) - {ALL_DIMENSIONS})
        if unknown:
            raise ValueError(
                f"toxicity thresholds name {unknown}, which the scorer does not give (its dimensions: {list(dimensions)})"
            )
        default = given.get(ALL_DIMENSIONS)
        return {d: float(given.get(d, default)) for d in dimensions if d in given or default is not None}


def apply_policy(frame: pl.DataFrame, policy: ToxicityPolicy, dimensions: Sequence[str]) -> pl.DataFrame:
    """Set ``drop_reason`` to ``toxicity:<dimension>`` (first dimension over its threshold) under
    ``drop_above_threshold``; rows with a reason keep it; ``score_only`` changes nothing."""
    if policy.mode == "score_only":
        return frame
    rules = [pl.when(pl.col(score_column(d)) > t).then(pl.lit(drop_reason(d))) for d, t in policy.resolve(dimensions).items()]
    return frame.with_columns(pl.coalesce([pl.col("drop_reason"), *rules]).alias("drop_reason"))


# ----------------------------------------------------------------------------- trade-off figures
def score_histogram(scores: np.ndarray, bins: int = HISTOGRAM_BINS) -> list[int]:
    counts, _ = np.histogram(np.asarray(scores, dtype=np.float64), bins=bins, range=(0.0, 1.0))
    return counts.tolist()


def threshold_counts(scores: np.ndarray, tokens: np.ndarray, thresholds: Sequence[float]) -> dict[str, list[int]]:
    """``{str(threshold): [docs above, tokens of those docs]}`` for one dimension's scores."""
    scores = np.asarray(scores, dtype=np.float32)
    tokens = np.asarray(tokens, dtype=np.int64)
    out = {}
    for t in thresholds:
        above = scores > np.float32(t)
        out[str(t)] = [int(above.sum()), int(tokens[above].sum())]
    return out


def tradeoff_markdown(counts: Mapping[str, Mapping[str, Sequence[int]]], total_docs: int, total_tokens: int) -> str:
    """The table the UI shows: per threshold, documents and tokens each dimension's cut would remove."""
    dims = list(counts)
    thresholds = sorted({t for c in counts.values() for t in c}, key=float)
    header = "| threshold | " + " | ".join(f"{d}: docs removed | {d}: tokens removed" for d in dims) + " |"
    lines = [header, "|---:|" + "---:|---:|" * len(dims)]
    for t in thresholds:
        cells = []
        for d in dims:
            docs, tokens = counts[d].get(t, (0, 0))
            cells += [f"{docs} ({docs / max(total_docs, 1):.1%})", f"{tokens} ({tokens / max(total_tokens, 1):.1%})"]
        lines.append(f"| > {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
