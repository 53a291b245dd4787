"""LSH banding, candidate pairs, verification and union-find clustering (all numpy-vectorised).

* :func:`band_hashes` - a ``(n, bands)`` uint64 hash of each band of ``rows`` signature values
  (FineWeb: 14 bands x 8 rows over 112 permutations).
* :func:`candidate_pairs` - documents sharing any band hash. Inside each bucket, every member is
  paired with the bucket's *first* member (the lowest node id); with node ids assigned in
  priority order that is the member most likely to be kept, and a bucket of k members costs k-1
  pairs instead of k(k-1)/2.
* :func:`estimated_jaccard` / :func:`fingerprint_jaccard` - verification of candidate pairs, from
  the signatures (fraction of equal minima) or exactly from the shingle fingerprint sets.
* :func:`connected_components` - union-find over verified pairs by vectorised min-label
  hooking + pointer jumping. Each component's label is its smallest node id, so when node ids
  are assigned by ``(priority, doc_id)`` the label *is* the deterministic keeper.
"""

from __future__ import annotations

import numpy as np

from .minhash import Fingerprints, splitmix64

__all__ = [
    "band_hashes",
    "candidate_pairs",
    "estimated_jaccard",
    "fingerprint_jaccard",
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


def candidate_pairs(nodes: np.ndarray, bands: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def fingerprint_jaccard(fu: Fingerprints, fv: Fingerprints, chunk_values: int = 1 << 20) -> np.ndarray:
    """Exact Jaccard of the fingerprint *sets* of pairs: document ``i`` of ``fu`` with document
    ``i`` of ``fv`` (both hold one document per pair, e.g. ``fp.take(u)``, ``fp.take(v)``).

    Vectorised over the pairs of a chunk (about ``chunk_values`` fingerprints, which bounds the
    temporaries): each side's values are tagged with their pair (``pair << 32 | value``) and
    de-duplicated by one sort; every key of ``v`` is looked up among ``u``'s keys by binary search,
    and the hits are the intersection.
    """
    n = fu.n_docs
    if fv.n_docs != n:
        raise ValueError(f"fingerprint_jaccard: {n} u documents but {fv.n_docs} v documents")
    out = np.zeros(n)
    sizes = np.diff(fu.offsets) + np.diff(fv.offsets)
    start = 0
    while start < n:
        stop = max(int(np.searchsorted(np.cumsum(sizes[start:]), chunk_values, side="right")) + start, start + 1)
        pairs = np.arange(start, min(stop, n))
        out[pairs] = _chunk_jaccard(fu.take(pairs), fv.take(pairs))
        start = stop
    return out


def _chunk_jaccard(fu: Fingerprints, fv: Fingerprints) -> np.ndarray:
    n = fu.n_docs

    def pair_keys(fp: Fingerprints) -> tuple[np.ndarray, np.ndarray]:
        pair = np.repeat(np.arange(n, dtype=np.uint64), np.diff(fp.offsets))
        keys = _sorted_unique((pair << _U64(32)) | fp.values.astype(np.uint64))
        return keys, np.bincount((keys >> _U64(32)).astype(np.int64), minlength=n)

    ku, lu = pair_keys(fu)
    kv, lv = pair_keys(fv)
    if len(ku):
        at = np.minimum(np.searchsorted(ku, kv), len(ku) - 1)
        hit = ku[at] == kv
    else:
        hit = np.zeros(len(kv), dtype=bool)
    inter = np.bincount((kv[hit] >> _U64(32)).astype(np.int64), minlength=n)
    union = lu + lv - inter
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
