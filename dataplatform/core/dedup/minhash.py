"""Batch MinHash signatures, vectorised with numpy (no Python loop per document or shingle).

Pipeline for a batch of *normalised* texts (see :mod:`.normalize`: lowercase words separated by
one space):

1. **Tokens** are found on the concatenated Arrow UTF-8 buffer of the whole batch: a byte mask of
   spaces and document boundaries gives every word's ``[start, end)`` byte span at once.
2. **Shingles** are word n-grams (default 5). Shingle ``k`` of a document spans from the start of
   word ``k`` to the end of word ``k + n - 1``; a document with fewer than ``n`` words is one
   shingle (the whole text), as in datatrove.
3. **Shingle hash** = 64-bit polynomial hash of the shingle's bytes, computed for all shingles at
   once from a prefix sum: with ``S[i] = sum_{j<i} b_j P^j (mod 2^64)``,
   ``hash(s, e) = (S[e] - S[s]) * P^-s``, which equals ``sum_{j} b_{s+j} P^j`` whatever the
   position, followed by the splitmix64 finaliser (with the byte length mixed in). Pure uint64
   arithmetic: identical on every machine and run.
4. **Permutations**: ``num_perm`` hash functions ``h_i(x) = a_i * x + b_i (mod 2^32)`` with odd
   ``a_i`` (each a bijection of the 32-bit space) applied to the top 32 bits of the shingle hash;
   ``a_i, b_i`` come from splitmix64 of ``seed`` (no RNG library, so stable across numpy
   versions). 32-bit lanes let numpy use 8-wide SIMD multiplies; the per-document minimum is a
   ``minimum.reduceat`` over cache-sized blocks of a ``(num_perm, shingles)`` matrix (rows are
   contiguous, so both the multiply-add and the reduction vectorise).

The signature is a ``(n_docs, num_perm)`` ``uint32`` array; documents without any word get
all-``0xFFFFFFFF`` rows (callers should not index those).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from .normalize import Buffers, string_buffers

__all__ = [
    "EMPTY",
    "Shingles",
    "splitmix64",
    "permutations",
    "shingle_hashes",
    "signatures_from_shingles",
    "minhash_signatures",
]

EMPTY = np.uint32(0xFFFFFFFF)
_U64 = np.uint64
_P = 0x100000001B3  # FNV-64 prime: odd, so invertible mod 2^64
_P_INV = pow(_P, -1, 1 << 64)
_LEN_MIX = _U64(0x9E3779B97F4A7C15)
_CHUNK_BYTES = 8 << 20  # bytes of text hashed per step (bounds temporaries to ~10x this)
_BLOCK_SHINGLES = 8192  # columns of the (num_perm, shingles) matrix per minimum.reduceat

_pow_cache: dict[str, np.ndarray] = {}


def splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (returns a new array)."""
    with np.errstate(over="ignore"):
        z = x + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``P^j`` and ``P^-j`` (mod 2^64) for ``j < n``, cached and grown geometrically."""
    have = _pow_cache.get("pw")
    if have is None or len(have) < n:
        size = max(n, 2 * len(have) if have is not None else 1 << 16)
        with np.errstate(over="ignore"):
            pw = np.full(size, _P, dtype=_U64)
            pw[0] = 1
            pw = np.cumprod(pw, dtype=_U64)
            pi = np.full(size, _P_INV, dtype=_U64)
            pi[0] = 1
            pi = np.cumprod(pi, dtype=_U64)
        _pow_cache["pw"], _pow_cache["pi"] = pw, pi
    return _pow_cache["pw"][:n], _pow_cache["pi"][:n]


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` uint32 parameters of the ``num_perm`` hash functions for ``seed``."""
    base = (np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * _U64(0x2545F4914F6CDD1D)) if seed else _U64(0)
    idx = np.arange(2 * num_perm, dtype=_U64)
    with np.errstate(over="ignore"):
        r = splitmix64(idx + base)
    a = (r[:num_perm] >> _U64(32)).astype(np.uint32) | np.uint32(1)
    b = (r[num_perm:] >> _U64(32)).astype(np.uint32)
    return a, b


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


def _shingle_chunk(data: np.ndarray, offs: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of documents whose bytes are ``data`` (offsets ``offs`` relative to it).
    Returns (hashes, shingles-per-doc)."""
    n_docs = len(offs) - 1
    nbytes = len(data)
    lens = np.diff(offs)
    nonempty = lens > 0
    doc_start = offs[:-1][nonempty]
    doc_end = offs[1:][nonempty]
    sp = np.flatnonzero(data == 32)
    start_mask = np.zeros(nbytes + 1, dtype=bool)
    start_mask[sp + 1] = True
    start_mask[doc_start] = True
    end_mask = np.zeros(nbytes + 1, dtype=bool)
    end_mask[sp] = True
    end_mask[doc_end] = True
    tok_s = np.flatnonzero(start_mask)
    tok_e = np.flatnonzero(end_mask)
    # tokens per document (spaces inside + 1 for non-empty docs)
    sp_cum = np.searchsorted(sp, offs)
    ntok = np.diff(sp_cum) + nonempty
    first_tok = np.concatenate(([0], np.cumsum(ntok)[:-1]))
    nsh = np.where(ntok >= ngram, ntok - ngram + 1, (ntok > 0).astype(np.int64))
    total = int(nsh.sum())
    if total == 0:
        return np.zeros(0, _U64), nsh
    sh_first = np.concatenate(([0], np.cumsum(nsh)[:-1]))
    doc_of = np.repeat(np.arange(n_docs), nsh)
    t0 = first_tok[doc_of] + (np.arange(total) - sh_first[doc_of])
    t1 = np.minimum(t0 + (ngram - 1), (first_tok + ntok - 1)[doc_of])
    s = tok_s[t0]
    e = tok_e[t1]
    pw, pi = _powers(nbytes + 1)
    with np.errstate(over="ignore"):
        pref = np.empty(nbytes + 1, dtype=_U64)
        pref[0] = 0
        np.cumsum(data.astype(_U64) * pw[:nbytes], dtype=_U64, out=pref[1:])
        raw = (pref[e] - pref[s]) * pi[s]
        raw ^= (e - s).astype(_U64) * _LEN_MIX
    return splitmix64(raw), nsh


def shingle_hashes(normalized: pl.Series | pa.Array | Buffers, ngram: int = 5) -> Shingles:
    """64-bit hashes of the word ``ngram``-shingles of each normalised text (module docstring)."""
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram}")
    data, offsets = string_buffers(normalized)
    n = len(offsets) - 1
    hashes: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    d0 = 0
    while d0 < n:
        # grow the chunk until it holds ~_CHUNK_BYTES of text (at least one document)
        d1 = int(np.searchsorted(offsets, offsets[d0] + _CHUNK_BYTES, side="right")) - 1
        d1 = min(max(d1, d0 + 1), n)
        lo, hi = int(offsets[d0]), int(offsets[d1])
        h, c = _shingle_chunk(data[lo:hi], offsets[d0 : d1 + 1] - lo, ngram)
        hashes.append(h)
        counts.append(c)
        d0 = d1
    cnt = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    offs = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(cnt, out=offs[1:])
    return Shingles(np.concatenate(hashes) if hashes else np.zeros(0, _U64), offs)


def signatures_from_shingles(sh: Shingles, num_perm: int = 112, seed: int = 1) -> np.ndarray:
    """``(n_docs, num_perm)`` uint32 MinHash signatures from shingle hashes."""
    a, b = permutations(num_perm, seed)
    a, b = a[:, None], b[:, None]
    n = sh.n_docs
    sig_t = np.full((num_perm, n), EMPTY, dtype=np.uint32)  # transposed while filling
    x32 = (sh.hashes >> _U64(32)).astype(np.uint32)
    total = len(x32)
    offs = sh.offsets
    # documents with at least one shingle, and where each starts
    has = np.flatnonzero(offs[1:] > offs[:-1])
    starts = offs[:-1][has]
    block = _BLOCK_SHINGLES
    mat = np.empty((num_perm, block), dtype=np.uint32)
    lo = 0
    while lo < total:
        hi = min(lo + block, total)
        # segments inside [lo, hi): the doc containing lo, plus docs starting after lo
        i0 = int(np.searchsorted(starts, lo, side="right")) - 1
        i1 = int(np.searchsorted(starts, hi, side="left"))
        seg_docs = has[i0:i1]
        seg = starts[i0:i1] - lo
        seg[0] = 0
        m = mat[:, : hi - lo]
        # (num_perm, block) = a_i * x_j + b_i  (mod 2^32); contiguous rows -> SIMD
        np.multiply(a, x32[None, lo:hi], out=m)
        m += b
        mins = np.minimum.reduceat(m, seg, axis=1)
        if i1 - i0 == 1:
            cur = sig_t[:, seg_docs[0]]
            np.minimum(cur, mins[:, 0], out=cur)
        else:
            sig_t[:, seg_docs] = np.minimum(sig_t[:, seg_docs], mins)
        lo = hi
    sig = np.ascontiguousarray(sig_t.T)
    return sig


def minhash_signatures(
    normalized: pl.Series | pa.Array | Buffers, *, num_perm: int = 112, ngram: int = 5, seed: int = 1
) -> np.ndarray:
    """MinHash signatures ``(n_docs, num_perm)`` uint32 of a batch of normalised texts."""
    return signatures_from_shingles(shingle_hashes(normalized, ngram), num_perm, seed)
