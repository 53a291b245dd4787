"""The one word / word n-gram hash (dataplatform.core.ngrams) against a plain-Python definition."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from dataplatform.core import ngrams

M64 = (1 << 64) - 1


def py_mix64(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def py_word_hash(word: str) -> int:
    """The definition in the module docstring, one byte at a time."""
    raw = word.encode()
    total = sum(py_mix64((((i << 8) | b) + 0x9E3779B97F4A7C15) & M64) for i, b in enumerate(raw)) & M64
    return py_mix64((total + len(raw) * 0xD6E8FEB86659FD93) & M64)


def py_ngram_hash(word_hashes: list[int]) -> int:
    h = 0
    for w in word_hashes:
        h = (h * 0x100000001B3 + w) & M64
    return py_mix64(h)


WORDS = ["a", "bb", "abcdefgh", "abcdefghi", "x" * 17, "y" * 24, "z" * 25, "", "naïve", "日本語", "hello"]


def test_word_hashes_follow_the_definition_in_every_chunking(monkeypatch):
    want = [py_word_hash(w) for w in WORDS]
    assert ngrams.word_hashes(pl.Series(WORDS)).tolist() == want
    monkeypatch.setattr(ngrams, "_WORD_CHUNK_BYTES", 3)  # every word its own numpy pass
    assert ngrams.word_hashes(pl.Series(WORDS)).tolist() == want
    # nulls hash as the empty word, and Arrow arrays with an offset (slices) read the right bytes
    assert ngrams.word_hashes(pl.Series(["a", None])).tolist() == [py_word_hash("a"), py_word_hash("")]
    sliced = pa.array(["skip", "me", *WORDS]).slice(2)
    assert ngrams.word_hashes(sliced).tolist() == want


def test_distinct_and_span_hashes_equal_the_plain_word_hash():
    rng = np.random.default_rng(3)
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), 500)]
    want = ngrams.word_hashes(pl.Series(words))
    assert np.array_equal(ngrams.distinct_word_hashes(pl.Series(words)), want)
    # the same words as spans of one space-separated buffer (how MinHash sees normalised text)
    data = np.frombuffer(" ".join(words).encode(), np.uint8)
    lens = np.array([len(w.encode()) for w in words])
    starts = np.concatenate(([0], np.cumsum(lens + 1)[:-1]))
    assert np.array_equal(ngrams.span_word_hashes(data, starts, starts + lens), want)
    # words equal in their first 16 bytes and differing in the 17th are told apart
    a, b = ngrams.span_word_hashes(
        np.frombuffer(b"qqqqqqqqqqqqqqqqr qqqqqqqqqqqqqqqqs", np.uint8), np.array([0, 18]), np.array([17, 35])
    )
    assert a != b and a == py_word_hash("q" * 16 + "r")


def test_ngram_hashes_stay_inside_documents_and_follow_the_definition():
    wh = ngrams.word_hashes(pl.Series(["w0", "w1", "w2", "w3", "v0", "v1", "u0", "u1", "u2"]))
    doc_of_word = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    h, start = ngrams.ngram_hashes(wh, doc_of_word, 3)
    assert start.tolist() == [0, 1, 6]  # document 1 has only two words: no 3-gram
    assert h.tolist() == [py_ngram_hash([int(x) for x in wh[s : s + 3]]) for s in start.tolist()]
    # the rolling step builds the same raw polynomial
    raw = ngrams.extend(ngrams.extend(wh[:1], wh[1:2]), wh[2:3])
    assert ngrams.mix64(raw).tolist() == h[:1].tolist()
    # too few words for one n-gram
    assert len(ngrams.ngram_hashes(wh[:2], doc_of_word[:2], 3)[0]) == 0


@pytest.mark.parametrize("chunk", [1, 7, 100, 1 << 20])
def test_byte_chunks_cover_every_document_once(chunk):
    lens = np.array([5, 0, 40, 3, 3, 0, 90, 1])
    offsets = np.concatenate(([0], np.cumsum(lens)))
    ranges = list(ngrams.byte_chunks(offsets, chunk))
    assert ranges[0][0] == 0 and ranges[-1][1] == len(lens)
    assert all(a < b for a, b in ranges)
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(len(ranges) - 1))
    # a chunk holds more than chunk bytes only when it is one document
    assert all(offsets[b] - offsets[a] <= chunk or b - a == 1 for a, b in ranges)
