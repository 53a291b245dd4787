"""Batch MinHash signatures, vectorised with numpy (no Python loop per document or shingle).

Pipeline for a batch of *normalised* texts (see :mod:`.normalize`: lowercase words separated by
one space):

1. **Words** are found on the concatenated Arrow UTF-8 buffer of the batch, ~1 MB at a time: the
   positions of spaces plus the document boundaries give every word's ``[start, end)`` byte span.
2. **Word hash**: :func:`dataplatform.core.ngrams.span_word_hashes` (each distinct word of a
   chunk hashed once).
3. **Shingles** are word n-grams (default 5), hashed by :func:`dataplatform.core.ngrams.ngram_hashes`
   (the platform's one n-gram hash, shared with decontamination and the Gopher filter). Shingle
   ``k`` of a document covers words ``k .. k + n - 1``; a document with fewer than ``n`` words is
   one shingle (the same polynomial over all its words), as in datatrove.
4. **Signature: one-permutation MinHash** (Li, Owen & Zhang 2012) with rotation densification
   (Shrivastava & Li 2014). Each shingle hash is re-mixed with the seed
   (``g = splitmix64(h ^ key(seed))``); its top 32 bits pick one of ``num_perm`` bins
   (``(g >> 32) * num_perm >> 32``) and its low 32 bits are the value; each bin keeps its
   minimum (one ``np.minimum.at`` over all shingles of the batch). ``P[bin values equal] = J``
   as for ``num_perm`` independent permutations, at the cost of one hash per shingle instead of
   ``num_perm``. A bin that no shingle fell into (documents with few shingles) borrows the value
   of the next non-empty bin to its right (circularly) plus ``t * C`` for a distance ``t``, so
   two documents with equal shingle sets still get equal signatures.

All arithmetic is on ``uint64``/``uint32`` with explicit little-endian loads: identical on every
machine and run. The signature is a ``(n_docs, num_perm)`` ``uint32`` array; documents without
any word get all-``0xFFFFFFFF`` rows (callers should not index those).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from dataplatform.core.ngrams import (
    Buffers,
    byte_chunks,
    extend,
    mix64,
    ngram_hashes,
    span_word_hashes,
    string_buffers,
)

__all__ = [
    "EMPTY",
    "Fingerprints",
    "Shingles",
    "binary_buffers",
    "splitmix64",
    "shingle_hashes",
    "signatures_from_shingles",
    "minhash_signatures",
]

EMPTY = np.uint32(0xFFFFFFFF)
_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_SEED_MIX = _U64(0x2545F4914F6CDD1D)
_BIN_MUL = _U64(0xD6E8FEB86659FD93)  # odd: bin = top bits of (h ^ key(seed)) * _BIN_MUL
_SIG_BLOCK = 1 << 17  # shingles per step of the signature loop
_ROT_C = 0x9E3779B1  # densification offset per bin of distance (odd, 32-bit)
_CHUNK_BYTES = 1 << 20  # bytes of text tokenised per step: per-word temporaries stay small


def splitmix64(x: np.ndarray) -> np.ndarray:
    """One SplitMix64 step on a uint64 array: add the golden-ratio increment, then finalise."""
    with np.errstate(over="ignore"):
        return mix64(x + _GOLDEN)


@dataclass(frozen=True)
class Shingles:
    """Shingle hashes of a batch: ``hashes[offsets[d]:offsets[d+1]]`` belong to document ``d``."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # int64, len n_docs + 1

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    def of(self, d: int) -> np.ndarray:
        return self.hashes[self.offsets[d] : self.offsets[d + 1]]


@dataclass(frozen=True)
class Fingerprints:
    """32-bit fingerprints of shingles (the top 32 bits of each shingle hash), per document and in
    shingle order (repeats kept): ``values[offsets[d]:offsets[d+1]]`` belong to document ``d``.

    Exact Jaccard verification (:func:`~.lsh.fingerprint_jaccard`) compares the *sets* of these
    values: the Jaccard of the shingle sets up to fingerprint collisions (two different shingles of
    one pair share a fingerprint with probability ~|A| |B| / 2^32, a change of 1/|A u B| in J).
    At 4 bytes per word they are the verification payload the out-of-core dedup stores next to
    the signatures.
    """

    values: np.ndarray  # uint32
    offsets: np.ndarray  # int64, len n_docs + 1

    @classmethod
    def of(cls, sh: Shingles) -> Fingerprints:
        return cls((sh.hashes >> _U64(32)).astype(np.uint32), sh.offsets)

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    def take(self, docs: np.ndarray) -> Fingerprints:
        """The fingerprints of documents ``docs`` (in that order, repeats allowed)."""
        docs = np.asarray(docs, dtype=np.int64)
        lens = self.offsets[docs + 1] - self.offsets[docs]
        offsets = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        gather = np.repeat(self.offsets[docs] - offsets[:-1], lens) + np.arange(offsets[-1])
        return Fingerprints(self.values[gather], offsets)

    def to_arrow(self) -> pa.Array:
        """One little-endian binary value per document."""
        raw = np.ascontiguousarray(self.values.astype("<u4", copy=False))
        return pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), self.n_docs, [None, pa.py_buffer(self.offsets * 4), pa.py_buffer(raw.tobytes())]
        )

    @classmethod
    def from_arrow(cls, arr: pa.Array | pa.ChunkedArray) -> Fingerprints:
        data, offsets = binary_buffers(arr)
        if offsets[-1] % 4 or np.any(offsets % 4):
            raise ValueError("fingerprints: binary values must hold whole little-endian uint32s")
        return cls(data.view("<u4").astype(np.uint32, copy=False), offsets // 4)


def binary_buffers(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``(data uint8, offsets int64)`` of a binary column (nulls are empty)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    arr = arr.cast(pa.large_binary())
    if arr.null_count:
        arr = arr.fill_null(b"")
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.uint8), np.zeros(1, np.int64)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    lo, hi = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(bufs[2], np.uint8, hi - lo, lo) if bufs[2] is not None and hi > lo else np.zeros(0, np.uint8)
    return data, offsets - lo


def _word_spans(data: np.ndarray, offs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(starts, ends, words per doc)`` of the space-separated words of normalised documents
    whose bytes are ``data`` (offsets ``offs`` relative to it)."""
    nonempty = np.diff(offs) > 0
    sp = np.flatnonzero(data == 32)
    ntok = np.diff(np.searchsorted(sp, offs)) + nonempty  # spaces inside + 1 for non-empty docs
    n_tok = int(ntok.sum())
    first_tok = np.zeros(len(ntok), dtype=np.int64)
    np.cumsum(ntok[:-1], out=first_tok[1:])
    # a document's first word starts at the document, the others after a space; its last word
    # ends at the document end, the others at a space
    is_first = np.zeros(n_tok, dtype=bool)
    is_first[first_tok[nonempty]] = True
    starts = np.empty(n_tok, dtype=np.int64)
    starts[is_first] = offs[:-1][nonempty]
    starts[~is_first] = sp + 1
    is_last = np.zeros(n_tok, dtype=bool)
    is_last[(first_tok + ntok - 1)[nonempty]] = True
    ends = np.empty(n_tok, dtype=np.int64)
    ends[is_last] = offs[1:][nonempty]
    ends[~is_last] = sp
    return starts, ends, ntok


def _shingle_chunk(data: np.ndarray, offs: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of the documents whose bytes are ``data`` (offsets ``offs`` relative to it).
    Returns (hashes, shingles per doc)."""
    starts, ends, ntok = _word_spans(data, offs)
    nsh = np.where(ntok >= ngram, ntok - ngram + 1, (ntok > 0).astype(np.int64))
    if int(nsh.sum()) == 0:
        return np.zeros(0, _U64), nsh
    wh = span_word_hashes(data, starts, ends)
    doc_of_word = np.repeat(np.arange(len(ntok), dtype=np.int64), ntok)
    full, _ = ngram_hashes(wh, doc_of_word, ngram)  # every window inside one document, in order
    short = np.flatnonzero((ntok > 0) & (ntok < ngram))
    if len(short) == 0:
        return full, nsh
    # a document shorter than one shingle is one shingle of all its words
    first_word = np.concatenate(([0], np.cumsum(ntok)[:-1]))[short]
    acc = wh[first_word].copy()
    for j in range(1, ngram - 1):
        more = j < ntok[short]
        acc[more] = extend(acc[more], wh[first_word[more] + j])
    out = np.empty(int(nsh.sum()), dtype=_U64)
    first_shingle = np.concatenate(([0], np.cumsum(nsh)[:-1]))
    slot = np.ones(len(out), dtype=bool)
    slot[first_shingle[short]] = False
    out[slot] = full
    out[first_shingle[short]] = mix64(acc)
    return out, nsh


def shingle_hashes(normalized: pl.Series | pa.Array | Buffers, ngram: int = 5) -> Shingles:
    """64-bit hashes of the word ``ngram``-shingles of each normalised text (module docstring)."""
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram}")
    data, offsets = string_buffers(normalized)
    n = len(offsets) - 1
    hashes: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for d0, d1 in byte_chunks(offsets, _CHUNK_BYTES):
        lo, hi = int(offsets[d0]), int(offsets[d1])
        h, c = _shingle_chunk(data[lo:hi], offsets[d0 : d1 + 1] - lo, ngram)
        hashes.append(h)
        counts.append(c)
    cnt = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    offs = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(cnt, out=offs[1:])
    return Shingles(np.concatenate(hashes) if hashes else np.zeros(0, _U64), offs)


def signatures_from_shingles(sh: Shingles, num_perm: int = 112, seed: int = 1) -> np.ndarray:
    """``(n_docs, num_perm)`` uint32 one-permutation MinHash signatures from shingle hashes
    (module docstring, step 4)."""
    n, p = sh.n_docs, int(num_perm)
    sig = np.full(n * p, EMPTY, dtype=np.uint32)
    if len(sh.hashes) == 0 or n == 0:
        return sig.reshape(n, p)
    with np.errstate(over="ignore"):
        key = splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], _U64) * _SEED_MIX)[0]
    base = np.repeat(np.arange(0, n * p, p, dtype=np.int64), np.diff(sh.offsets))
    filled = np.zeros(n * p, dtype=bool)
    total = len(sh.hashes)
    with np.errstate(over="ignore"):
        for lo in range(0, total, _SIG_BLOCK):  # cache-sized blocks of shingles
            g = sh.hashes[lo : lo + _SIG_BLOCK] ^ key
            val = g.astype(np.uint32)  # low 32 bits
            g *= _BIN_MUL
            g >>= _U64(32)
            g *= _U64(p)
            g >>= _U64(32)
            cell = base[lo : lo + _SIG_BLOCK] + g.view(np.int64)
            np.minimum.at(sig, cell, val)
            filled[cell] = True
    filled = filled.reshape(n, p)
    sig = sig.reshape(n, p)
    # densify documents with empty bins: borrow from the next non-empty bin to the right
    sparse = np.flatnonzero(~filled.all(axis=1) & filled.any(axis=1))
    if len(sparse):
        src, got = sig[sparse], filled[sparse]
        out, have = src.copy(), got.copy()
        for t in range(1, p):
            take = ~have & np.roll(got, -t, axis=1)
            if take.any():
                out[take] = np.roll(src, -t, axis=1)[take] + np.uint32((t * _ROT_C) & 0xFFFFFFFF)
                have |= take
            if have.all():
                break
        sig[sparse] = out
    return sig


def minhash_signatures(
    normalized: pl.Series | pa.Array | Buffers, *, num_perm: int = 112, ngram: int = 5, seed: int = 1
) -> np.ndarray:
    """MinHash signatures ``(n_docs, num_perm)`` uint32 of a batch of normalised texts."""
    return signatures_from_shingles(shingle_hashes(normalized, ngram), num_perm, seed)
