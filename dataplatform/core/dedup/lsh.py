"""LSH banding, candidate pairs, verification and union-find clustering (all numpy-vectorised).

* :func:`band_hashes` - a ``(n, bands)`` uint64 hash of each band of ``rows`` signature values
  (FineWeb: 14 bands x 8 rows over 112 permutations).
* :func:`candidate_pairs` - documents sharing any band hash. Inside each bucket, every member is
  paired with the bucket's *first* member (the lowest node id); with node ids assigned in
  priority order that is the member most likely to be kept, and a bucket of k members costs k-1
  pairs instead of k(k-1)/2.
* :func:`estimated_jaccard` / :func:`shingle_jaccard` - verification of candidate pairs, from the
  signatures (fraction of equal minima) or exactly from the shingle-hash sets.
* :func:`connected_components` - union-find over verified pairs by vectorised min-label
  hooking + pointer jumping. Each component's label is its smallest node id, so when node ids
  are assigned by ``(priority, doc_id)`` the label *is* the deterministic keeper.
"""

from __future__ import annotations

import numpy as np

from .minhash import Shingles, splitmix64

__all__ = [
    "band_hashes",
    "candidate_pairs",
    "estimated_jaccard",
    "shingle_jaccard",
    "connected_components",
]

_U64 = np.uint64


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """``np.unique`` by sort + neighbour compare (numpy 2.x's hash-based unique is far slower on
    large integer arrays)."""
    x = np.sort(x)
    if len(x) < 2:
        return x
    keep = np.empty(len(x), dtype=bool)
    keep[0] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]


def band_hashes(sig: np.ndarray, bands: int = 14, rows: int = 8) -> np.ndarray:
    """``(n, bands)`` uint64: a 64-bit hash of each band's ``rows`` signature values.

    Band ``k`` covers columns ``k*rows .. (k+1)*rows-1``; the band index is mixed in, so equal
    values in different bands hash differently. Stable: pure uint64 arithmetic.
    """
    n, p = sig.shape
    if bands * rows > p:
        raise ValueError(f"bands*rows = {bands}*{rows} exceeds num_perm = {p}")
    blk = sig[:, : bands * rows].reshape(n, bands, rows).astype(_U64)
    with np.errstate(over="ignore"):
        h = np.broadcast_to(splitmix64(np.arange(1, bands + 1, dtype=_U64)), (n, bands)).copy()
        for r in range(rows):
            h = splitmix64(h ^ blk[:, :, r])
    return h


def candidate_pairs(
    nodes: np.ndarray, bands: np.ndarray, hashes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(u, v)`` with ``u < v`` of nodes sharing a ``(band, hash)`` bucket.

    ``nodes``, ``bands``, ``hashes`` are parallel 1-D arrays (one entry per node and band).
    Each member ``v`` of a bucket is paired with the bucket's smallest node ``u``. Unique, sorted.
    """
    if len(nodes) == 0:
        e = np.zeros(0, np.int64)
        return e, e
    order = np.lexsort((nodes, hashes, bands))
    b, h, v = bands[order], hashes[order], nodes[order]
    new = np.ones(len(v), dtype=bool)
    new[1:] = (b[1:] != b[:-1]) | (h[1:] != h[:-1])
    first = np.maximum.accumulate(np.where(new, np.arange(len(v)), 0))
    u = v[first]
    m = u != v
    u, v = u[m].astype(np.int64), v[m].astype(np.int64)
    if len(u) == 0:
        return u, v
    span = int(v.max()) + 1  # u < v
    key = _sorted_unique(u * span + v)
    return key // span, key % span


def estimated_jaccard(sig_u: np.ndarray, sig_v: np.ndarray) -> np.ndarray:
    """Row-wise fraction of equal MinHash values (an unbiased Jaccard estimate)."""
    if len(sig_u) == 0:
        return np.zeros(0)
    return (sig_u == sig_v).mean(axis=1)


def shingle_jaccard(sh: Shingles, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Exact Jaccard of the 64-bit shingle-hash sets of document pairs ``(u[i], v[i])``.

    Vectorised over all pairs: the shingles of every document in a pair are de-duplicated by one
    sort of ``(document, hash)`` keys; then each shingle of ``v`` is looked up among ``u``'s keys
    by binary search (``searchsorted`` of the re-tagged key), and the hits are the intersection.
    Hashes are compared on their top 40+ bits (a false match between two shingles of a pair is
    ~1e-12).
    """
    u = np.asarray(u, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    if len(u) == 0:
        return np.zeros(0)
    docs = np.unique(np.concatenate([u, v]))
    # Sort keys pack the document's index above the top bits of the 64-bit hash, so one
    # single-key sort replaces a two-key lexsort.
    sd = max(int(len(docs)).bit_length(), 1)
    if sd > 24:
        raise ValueError("shingle_jaccard: too many documents in one call (> 2^24)")
    lens = sh.offsets[docs + 1] - sh.offsets[docs]
    sel = np.repeat(sh.offsets[docs] - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    sel += np.arange(int(lens.sum()))
    d = np.repeat(np.arange(len(docs), dtype=np.uint64), lens)
    key = _sorted_unique((d << _U64(64 - sd)) | (sh.hashes[sel] >> _U64(sd)))  # per-doc sets
    ulen = np.bincount((key >> _U64(64 - sd)).astype(np.int64), minlength=len(docs))
    ustart = np.concatenate(([0], np.cumsum(ulen)[:-1]))
    du, dv = np.searchsorted(docs, u), np.searchsorted(docs, v)
    la, lb = ulen[du], ulen[dv]
    # every unique shingle of v, re-tagged as a shingle of u, searched among u's keys
    base = np.concatenate(([0], np.cumsum(lb)[:-1]))
    src = np.repeat(ustart[dv] - base, lb) + np.arange(int(lb.sum()))
    low = _U64((1 << (64 - sd)) - 1)
    probe = (key[src] & low) | (np.repeat(du.astype(np.uint64), lb) << _U64(64 - sd))
    at = np.minimum(np.searchsorted(key, probe), len(key) - 1)
    hit = key[at] == probe
    inter = np.bincount(np.repeat(np.arange(len(u)), lb)[hit], minlength=len(u))
    union = la + lb - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def connected_components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Component label of each of ``n`` nodes given edges ``(u, v)``; label = smallest node id."""
    label = np.arange(n, dtype=np.int64)
    if len(u) == 0:
        return label
    u = np.asarray(u, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    while True:
        lu, lv = label[u], label[v]
        if np.array_equal(lu, lv):
            return label
        m = np.minimum(lu, lv)
        # hook both roots onto the smaller one
        np.minimum.at(label, lu, m)
        np.minimum.at(label, lv, m)
        # pointer jumping until every node points at a root
        while True:
            nxt = label[label]
            if np.array_equal(nxt, label):
                break
            label = nxt
