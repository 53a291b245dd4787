"""Language identification with a fastText model (lid.176 or any model with ``__label__xx`` labels).

The default model is the public ``lid.176.ftz`` (Joulin et al., "Bag of Tricks for Efficient Text
Classification"; CC BY-SA 3.0), shipped inside this package as ``dataplatform/models/lid.176.ftz``
with its licence and attribution beside it (``LICENSE-lid.176.md``), so a plain ``pip install``
identifies languages and nothing is downloaded at run time. Real deployments may point
``model_path`` at ``lid.176.bin`` or their own model.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

UNDETERMINED = "und"
PREDICT_CHARS = 2000  # fastText LID is a bag of n-grams: the head of a document is enough
LID176_FILE = "lid.176.ftz"
LID176_SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"


class LanguageModelNotFound(FileNotFoundError):
    pass


def default_language_model_path() -> Path:
    """Path of the ``lid.176.ftz`` shipped in the package (``dataplatform/models/``)."""
    path = Path(str(resources.files("dataplatform").joinpath("models").joinpath(LID176_FILE)))
    if not path.is_file():
        raise LanguageModelNotFound(
            f"the bundled language-ID model {path} is missing (incomplete install): reinstall "
            "dataplatform, or set language_model_path / --language-model to a fastText LID model"
        )
    return path


@functools.lru_cache(maxsize=4)
def _load(path: str):
    import fasttext

    # fastText prints a deprecation warning on load for old models; keep stderr clean.
    fasttext.FastText.eprint = lambda *args, **kwargs: None
    return fasttext.load_model(path)


class FastTextLanguageIdentifier:
    """Batch language prediction. One model per process (cached), safe to build in workers."""

    def __init__(self, model_path: str | os.PathLike | None = None) -> None:
        path = Path(model_path) if model_path else default_language_model_path()
        if not path.is_file():
            raise LanguageModelNotFound(f"language_model_path: no fastText model at {path}")
        self.model_path = str(path)

    def predict(self, texts: Sequence[str | None]) -> tuple[list[str], np.ndarray]:
        """Return ISO codes (``und`` for empty text) and probabilities in [0, 1]."""
        labels = [UNDETERMINED] * len(texts)
        scores = np.zeros(len(texts), dtype=np.float32)
        index = [i for i, t in enumerate(texts) if t and not t.isspace()]
        if not index:
            return labels, scores
        model = _load(self.model_path)
        cleaned = [" ".join(texts[i][:PREDICT_CHARS].split()) for i in index]
        predicted, probs = model.predict(cleaned, k=1)
        for i, label, prob in zip(index, predicted, probs):
            labels[i] = label[0].removeprefix("__label__") if label else UNDETERMINED
            scores[i] = min(float(prob[0]), 1.0) if len(prob) else 0.0
        return labels, scores
