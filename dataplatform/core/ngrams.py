"""Word and word n-gram hashing, shared by MinHash dedup, decontamination and the Gopher filter.

One definition of the hashes (all unsigned 64-bit arithmetic with defined wrap-around, no Python
``hash`` and no Polars ``hash``, so values are the same on every machine, run and library
version; ``tests/core/test_decontamination.py::test_hashes_are_pinned`` pins them):

* **word hash** = ``mix64(len * K + sum_i mix64((i << 8 | byte_i) + S))`` over the UTF-8 bytes
  of the word; computed for all words of a batch at once from a cumulative sum over their
  concatenated bytes (:func:`word_hashes`), and once per *distinct* word when the words repeat
  (:func:`distinct_word_hashes`, an Arrow dictionary encoding; a shard has far fewer distinct
  words than words);
* **n-gram hash** = ``mix64(sum_j w_{i+j} * P^(n-1-j))``: a polynomial over the word hashes,
  built left to right by the rolling step ``h <- h * P + w`` (:func:`extend`) and finished by
  :func:`mix64`. :func:`ngram_hashes` computes every n-gram of a batch with ``n`` vectorised
  multiply-adds over slices of the word-hash array and keeps those inside one document.

``mix64`` is the SplitMix64 finaliser (Steele, Lea & Flood 2014); ``P`` is the 64-bit FNV prime.
Users: :mod:`dataplatform.core.dedup.minhash` (word 5-gram shingles), :mod:`dataplatform.core.
decontamination` (13-gram overlap with benchmarks), :mod:`dataplatform.core.filters.gopher`
(repeated 2..10-grams, where only equality inside a document matters).

:func:`byte_chunks` is the one loop that walks a batch of texts in slices of whole documents of
about ``chunk_bytes`` (bounded temporaries for byte-level passes).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "Buffers",
    "NGRAM_PRIME",
    "byte_chunks",
    "distinct_word_hashes",
    "extend",
    "mix64",
    "ngram_hashes",
    "span_word_hashes",
    "string_buffers",
    "word_hashes",
]

# (data uint8, offsets int64 of length n+1 starting at 0)
Buffers = tuple[np.ndarray, np.ndarray]

_U64 = np.uint64
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_BYTE_SEED = _U64(0x9E3779B97F4A7C15)
_LEN_MUL = _U64(0xD6E8FEB86659FD93)
NGRAM_PRIME = _U64(0x100000001B3)  # odd 64-bit multiplier (FNV prime)
_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=_U64)  # low k bytes of a uint64
_WORD_CHUNK_BYTES = 1 << 23  # bytes of words hashed per numpy pass (bounds temporary memory)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of a uint64 array (a new array; wraps modulo 2^64)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> _U64(30))
        x = x * _MIX1
        x = x ^ (x >> _U64(27))
        x = x * _MIX2
        return x ^ (x >> _U64(31))


def string_buffers(texts: pl.Series | pa.Array | pa.ChunkedArray | Buffers) -> Buffers:
    """``(data, offsets)`` of a string column as numpy arrays: ``data`` is the UTF-8 of all values
    back to back, ``offsets`` the int64 start of each value plus the end (``n + 1`` long,
    ``offsets[0] == 0``). Nulls are empty. A ``(data, offsets)`` tuple passes through."""
    if isinstance(texts, tuple):
        return texts
    arr = texts.to_arrow() if isinstance(texts, pl.Series) else texts
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.null_count:
        arr = arr.fill_null("")
    arr = arr.cast(pa.large_string())
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.uint8), np.zeros(1, np.int64)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    lo, hi = int(offsets[0]), int(offsets[-1])
    data = (
        np.frombuffer(bufs[2], dtype=np.uint8, count=hi - lo, offset=lo)
        if bufs[2] is not None and hi > lo
        else np.zeros(0, np.uint8)
    )
    return data, offsets - lo


def byte_chunks(offsets: np.ndarray, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    """Consecutive document ranges ``[start, stop)`` covering ``offsets`` (``n + 1`` byte offsets),
    each holding about ``chunk_bytes`` bytes and at least one document."""
    n = len(offsets) - 1
    start = 0
    while start < n:
        stop = int(np.searchsorted(offsets, offsets[start] + chunk_bytes, side="right")) - 1
        stop = min(max(stop, start + 1), n)
        yield start, stop
        start = stop


def word_hashes(words: pl.Series | pa.Array | Buffers) -> np.ndarray:
    """uint64 hash of each value of ``words`` (module docstring); nulls hash as empty words."""
    data, offsets = string_buffers(words)
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for start, stop in byte_chunks(offsets, _WORD_CHUNK_BYTES):
            lo, hi = int(offsets[start]), int(offsets[stop])
            off = offsets[start : stop + 1] - lo
            lens = np.diff(off)
            pos = np.arange(hi - lo, dtype=np.int64) - np.repeat(off[:-1], lens)
            term = mix64(((pos.astype(np.uint64) << _U64(8)) | data[lo:hi].astype(np.uint64)) + _BYTE_SEED)
            cs = np.zeros(hi - lo + 1, dtype=np.uint64)
            np.cumsum(term, out=cs[1:])  # wraps modulo 2^64, which is what we want
            seg = cs[off[1:]] - cs[off[:-1]]
            out[start:stop] = mix64(seg + lens.astype(np.uint64) * _LEN_MUL)
    return out


def distinct_word_hashes(words: pl.Series) -> np.ndarray:
    """:func:`word_hashes` of each word, hashing every distinct word once (Arrow dictionary
    encoding)."""
    if len(words) == 0:
        return np.zeros(0, np.uint64)
    arr = words.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    enc = pc.dictionary_encode(arr)
    return word_hashes(enc.dictionary)[enc.indices.to_numpy(zero_copy_only=False)]


def span_word_hashes(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """:func:`word_hashes` of the byte spans ``data[starts[i]:ends[i]]``, each distinct word hashed
    once. Distinct words are found by a cheap 64-bit fingerprint of each span (its bytes read 8 at
    a time through an unaligned view, folded with :func:`mix64`) and an Arrow dictionary encoding
    of the fingerprints; two different words sharing a fingerprint (~d^2 / 2^65 for d distinct
    words in a call) would share a hash."""
    if len(starts) == 0:
        return np.zeros(0, np.uint64)
    enc = pc.dictionary_encode(pa.array(_span_fingerprints(data, starts, ends)))
    code = enc.indices.to_numpy(zero_copy_only=False)
    # codes are numbered in order of first appearance: a new code raises the running maximum
    running = np.maximum.accumulate(code)
    first = np.ones(len(code), dtype=bool)
    first[1:] = running[1:] > running[:-1]
    rep = np.flatnonzero(first)  # position of each distinct word's first occurrence
    lens = ends[rep] - starts[rep]
    offsets = np.zeros(len(rep) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    gather = np.repeat(starts[rep] - offsets[:-1], lens) + np.arange(offsets[-1])
    return word_hashes((data[gather], offsets))[code]


def _span_fingerprints(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 64-bit fingerprint of each byte span: one unaligned little-endian uint64 load per 8 bytes
    (89% of English words take one), masked to the span, mixed with its length."""
    nb = len(data)
    buf = np.zeros(nb + 8, dtype=np.uint8)
    buf[:nb] = data
    words = np.ndarray((nb + 1,), dtype="<u8", buffer=buf, strides=(1,))  # every byte offset
    length = ends - starts
    with np.errstate(over="ignore"):
        h = mix64((words[starts] & _LOW_BYTES.take(np.minimum(length, 8))) ^ (length.astype(_U64) * _LEN_MUL))
        rest = np.flatnonzero(length > 8)
        k = 8
        while len(rest):
            left = length[rest] - k
            h[rest] = mix64(h[rest] ^ (words[starts[rest] + k] & _LOW_BYTES.take(np.minimum(left, 8))))
            rest = rest[left > 8]
            k += 8
    return h


def extend(prefix: np.ndarray, word: np.ndarray) -> np.ndarray:
    """The rolling step: the raw (unfinished) hash of an n-gram extended by one word."""
    with np.errstate(over="ignore"):
        return prefix * NGRAM_PRIME + word


def ngram_hashes(wh: np.ndarray, doc_of_word: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hashes, start)``: the hash of every word ``n``-gram that lies inside one document, and the
    index of its first word in ``wh``. ``doc_of_word`` is non-decreasing (words grouped by
    document)."""
    m = len(wh) - n + 1
    if m <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    h = wh[:m].copy()
    with np.errstate(over="ignore"):
        for j in range(1, n):  # the rolling step (:func:`extend`), in place over all windows
            h *= NGRAM_PRIME
            h += wh[j : j + m]
    start = np.flatnonzero(doc_of_word[:m] == doc_of_word[n - 1 :])
    return mix64(h[start]), start
