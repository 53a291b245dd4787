"""Token counting with a Hugging Face ``tokenizers`` JSON file (``tokenizer.json``).

The tokenizer is a local file named in configuration; nothing is fetched from a hub. Counting
uses ``encode_batch_fast`` (``encode_batch`` on older releases): the Rust side tokenises a whole
batch in parallel, Python only reads one length per text.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["count_tokens", "load_tokenizer", "tokenizer_sha256"]


def _tokenizers():
    try:
        import tokenizers
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise ImportError("token counting needs the 'tokenizers' package (pip install tokenizers)") from exc
    return tokenizers


def load_tokenizer(path: Path | str):
    """A ``tokenizers.Tokenizer`` from a ``tokenizer.json`` file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    try:
        return _tokenizers().Tokenizer.from_file(str(path))
    except Exception as exc:
        raise ValueError(f"cannot load tokenizer {path}: {exc}") from exc


def tokenizer_sha256(path: Path | str) -> str:
    """sha256 hex of the tokenizer file's bytes (what a manifest pins)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _counting_copy(tokenizer):
    """Truncation or padding configured in the JSON would distort counts: count with a copy that
    has both disabled (the caller's object is not modified)."""
    if tokenizer.truncation is None and tokenizer.padding is None:
        return tokenizer
    copy = _tokenizers().Tokenizer.from_str(tokenizer.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


def count_tokens(
    texts: pl.Series,
    tokenizer,
    batch_size: int = 4096,
    *,
    add_special_tokens: bool = False,
    max_batch_chars: int = 250_000,
) -> np.ndarray:
    """Number of tokens of each text (int64, same order; null text counts 0).

    ``add_special_tokens=False`` by default: the mix counts content tokens; BOS/EOS that a trainer
    adds per document are a per-document constant it can add itself. A batch holds at most
    ``batch_size`` texts and ``max_batch_chars`` characters (one longer text is a batch alone):
    the tokenizer's encodings cost ~300 bytes per token, so 4,096 web documents of ~2,700 tokens
    took ~900 MB at once; 250,000 characters take ~40 MB (``benchmarks/RESULTS.md``, "Token counting")."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if max_batch_chars < 1:
        raise ValueError(f"max_batch_chars must be >= 1, got {max_batch_chars!r}")
    tok = _counting_copy(tokenizer)
    encode = getattr(tok, "encode_batch_fast", None) or tok.encode_batch
    values = texts.cast(pl.String).fill_null("").to_list()
    out = np.zeros(len(values), dtype=np.int64)
    ends = np.cumsum([len(v) for v in values])
    start = 0
    while start < len(values):
        # the last text that keeps the batch under max_batch_chars (at least one text)
        limit = (ends[start - 1] if start else 0) + max_batch_chars
        stop = min(start + batch_size, max(start + 1, int(np.searchsorted(ends, limit, side="right"))))
        encodings = encode(values[start:stop], add_special_tokens=add_special_tokens)
        out[start:stop] = [len(e) for e in encodings]
        start = stop
    return out
