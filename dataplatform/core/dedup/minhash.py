"""Batch MinHash signatures, vectorised with numpy (no Python loop per document or shingle).

Pipeline for a batch of *normalised* texts (see :mod:`.normalize`: lowercase words separated by
one space):

1. **Tokens** are found on the concatenated Arrow UTF-8 buffer of the whole batch: the positions
   of spaces plus the document boundaries give every word's ``[start, end)`` byte span at once.
2. **Token hash** (one ``uint64`` per word, not per byte): the word's bytes are read 8 at a time
   as little-endian ``uint64`` words through an unaligned stride-1 view of the buffer (one gather
   per 8 bytes of word; 89% of words fit in the first), masked to the word's length and folded
   with the splitmix64 finaliser, the byte length mixed in first. Long words loop over the few
   tokens that still have bytes left.
3. **Shingles** are word n-grams (default 5). Shingle ``k`` of a document covers words
   ``k .. k + n - 1``; a document with fewer than ``n`` words is one shingle (all its words), as
   in datatrove. Shingle hash = ``splitmix64(sum_j t_{k+j} Q^(m-1-j) ^ m * C)`` (mod 2^64, ``m``
   words, odd ``Q``): ``n`` multiply-adds over *slices* of the token-hash array give every window
   at once; windows that cross a document boundary are dropped.
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

from .normalize import Buffers, string_buffers

__all__ = [
    "EMPTY",
    "Shingles",
    "splitmix64",
    "shingle_hashes",
    "signatures_from_shingles",
    "minhash_signatures",
]

EMPTY = np.uint32(0xFFFFFFFF)
_U64 = np.uint64
_ALL = _U64(0xFFFFFFFFFFFFFFFF)
_Q = _U64(0x100000001B3)  # FNV-64 prime: odd
_LEN_MIX = _U64(0x9E3779B97F4A7C15)
_SEED_MIX = _U64(0x2545F4914F6CDD1D)
_BIN_MUL = _U64(0xD6E8FEB86659FD93)  # odd: bin = top bits of (h ^ key(seed)) * _BIN_MUL
_SIG_BLOCK = 1 << 17  # shingles per step of the signature loop
_ROT_C = 0x9E3779B1  # densification offset per bin of distance (odd, 32-bit)
_CHUNK_BYTES = 1 << 20  # bytes of text tokenised per step: per-token temporaries stay in cache
# _MASKS[k]: the low k bytes of a uint64 (k = 0..8)
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=_U64)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (returns a new array)."""
    with np.errstate(over="ignore"):
        z = x + _U64(0x9E3779B97F4A7C15)
        z ^= z >> _U64(30)
        z *= _U64(0xBF58476D1CE4E5B9)
        z ^= z >> _U64(27)
        z *= _U64(0x94D049BB133111EB)
        z ^= z >> _U64(31)
        return z


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


def _token_hashes(data: np.ndarray, tok_s: np.ndarray, tok_e: np.ndarray) -> np.ndarray:
    """One uint64 hash per token ``data[tok_s[i]:tok_e[i]]`` (module docstring, step 2)."""
    nb = len(data)
    buf = np.zeros(nb + 8, dtype=np.uint8)
    buf[:nb] = data
    # every byte offset as the start of a little-endian uint64 (unaligned, stride 1)
    words = np.ndarray((nb + 1,), dtype="<u8", buffer=buf, strides=(1,))
    length = tok_e - tok_s
    with np.errstate(over="ignore"):
        h = words[tok_s]
        h &= _MASKS.take(np.minimum(length, 8))
        h ^= length.astype(_U64) * _LEN_MIX
        h = splitmix64(h)
        rest = np.flatnonzero(length > 8)
        k = 8
        while len(rest):
            left = length[rest] - k
            w = words[tok_s[rest] + k] & _MASKS.take(np.minimum(left, 8))
            h[rest] = splitmix64(h[rest] ^ w)
            rest = rest[left > 8]
            k += 8
    return h


def _shingle_chunk(data: np.ndarray, offs: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of documents whose bytes are ``data`` (offsets ``offs`` relative to it).
    Returns (hashes, shingles-per-doc)."""
    lens = np.diff(offs)
    nonempty = lens > 0
    sp = np.flatnonzero(data == 32)
    # tokens per document: spaces inside + 1 for non-empty docs
    ntok = np.diff(np.searchsorted(sp, offs)) + nonempty
    n_tok = int(ntok.sum())
    nsh = np.where(ntok >= ngram, ntok - ngram + 1, (ntok > 0).astype(np.int64))
    total = int(nsh.sum())
    if total == 0:
        return np.zeros(0, _U64), nsh
    first_tok = np.zeros(len(ntok), dtype=np.int64)
    np.cumsum(ntok[:-1], out=first_tok[1:])
    last_tok = first_tok + ntok - 1
    # token spans: a document's first token starts at the document, the others after a space;
    # its last token ends at the document end, the others at a space
    is_first = np.zeros(n_tok, dtype=bool)
    is_first[first_tok[nonempty]] = True
    tok_s = np.empty(n_tok, dtype=np.int64)
    tok_s[is_first] = offs[:-1][nonempty]
    tok_s[~is_first] = sp + 1
    is_last = np.zeros(n_tok, dtype=bool)
    is_last[last_tok[nonempty]] = True
    tok_e = np.empty(n_tok, dtype=np.int64)
    tok_e[is_last] = offs[1:][nonempty]
    tok_e[~is_last] = sp
    th = _token_hashes(data, tok_s, tok_e)

    out = np.empty(total, dtype=_U64)
    short = np.flatnonzero((ntok > 0) & (ntok < ngram))
    sh_first = np.zeros(len(nsh), dtype=np.int64)
    np.cumsum(nsh[:-1], out=sh_first[1:])
    with np.errstate(over="ignore"):
        if n_tok >= ngram:
            # every window of ngram consecutive tokens (Horner over slices), then keep the ones
            # inside one document: those not starting in a document's last ngram-1 tokens
            nw = n_tok - ngram + 1
            win = th[:nw].copy()
            for j in range(1, ngram):
                win *= _Q
                win += th[j : nw + j]
            valid = np.ones(nw, dtype=bool)
            for j in range(ngram - 1):
                # windows starting in a document's last ngram-1 tokens (all of a short one's)
                st = last_tok - j
                valid[st[(ntok > j) & (st < nw)]] = False
            raw = win[valid]
            if len(short):
                slot = np.ones(total, dtype=bool)
                slot[sh_first[short]] = False
                out[slot] = raw
            else:
                out[:] = raw
        out ^= _U64(ngram) * _LEN_MIX
        if len(short):
            m = ntok[short]
            first = first_tok[short]
            acc = np.zeros(len(short), dtype=_U64)
            for j in range(ngram - 1):
                sel = j < m
                acc[sel] = acc[sel] * _Q + th[first[sel] + j]
            out[sh_first[short]] = acc ^ (m.astype(_U64) * _LEN_MIX)
    return splitmix64(out), nsh


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
