"""Configuration of the dedup stage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["DedupConfig"]


@dataclass(frozen=True)
class DedupConfig:
    """Parameters of exact + MinHash-LSH deduplication.

    Defaults: FineWeb's word 5-gram shingles and 112-value signatures, but banded 20 x 5 and
    verified exactly at Jaccard 0.7, so that a page republished with ~3% of its words changed
    (5-gram Jaccard ~0.74-0.80) is caught: FineWeb's 14 x 8 bands without verification catch
    ~85-91% of such pairs with ~14% of flagged pairs below J 0.7, exact verification at 0.8 ~1%
    (measurements on real pages: benchmarks/RESULTS.md, "Near-duplicate recall").

    Attributes:
        exact: drop documents whose normalised text hash equals a kept document's.
        minhash: run MinHash LSH near-duplicate detection.
        ngram: words per shingle (FineWeb: 5).
        num_perm: MinHash values per signature (FineWeb: 112).
        bands, rows: LSH banding over the first ``bands * rows <= num_perm`` values (FineWeb:
            14 x 8; P[candidate] = 1 - (1 - J^rows)^bands: 0.975 at J = 0.7 with 20 x 5).
        seed: seed of the permutations. Signatures are only comparable under the same
            ``(ngram, num_perm, seed)``, so an index must be built and queried with one config.
        threshold: Jaccard threshold used to verify candidate pairs.
        verify: ``"exact"`` - candidate pairs are verified by the exact Jaccard of their shingle
            fingerprint sets (the index keeps the fingerprints of its documents; an index document
            without them is compared by the signature estimate); ``"signature"`` - by the
            signature estimate (fraction of equal values); ``"none"`` - any shared band makes a
            duplicate (FineWeb's behaviour).
        snapshot_order: snapshots from oldest to newest; the keeper of a cluster is the member
            with the smallest ``(snapshot rank, doc_id)``. ``None``: snapshots sort as strings
            (true of Common Crawl ids such as ``CC-MAIN-2024-10``).
    """

    exact: bool = True
    minhash: bool = True
    ngram: int = 5
    num_perm: int = 112
    bands: int = 20
    rows: int = 5
    seed: int = 1
    threshold: float = 0.7
    verify: Literal["exact", "signature", "none"] = "exact"
    snapshot_order: Sequence[str] | None = None

    def __post_init__(self) -> None:
        def bad(field: str, why: str) -> None:
            raise ValueError(f"DedupConfig.{field}: {why}")

        if self.ngram < 1:
            bad("ngram", f"must be >= 1, got {self.ngram}")
        if self.num_perm < 1:
            bad("num_perm", f"must be >= 1, got {self.num_perm}")
        if self.bands < 1 or self.rows < 1:
            bad("bands", f"bands and rows must be >= 1, got {self.bands}x{self.rows}")
        if self.bands * self.rows > self.num_perm:
            bad("bands", f"bands*rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        if not 0.0 < self.threshold <= 1.0:
            bad("threshold", f"must be in (0, 1], got {self.threshold}")
        if self.verify not in ("exact", "signature", "none"):
            bad("verify", f"must be 'exact', 'signature' or 'none', got {self.verify!r}")
        if self.snapshot_order is not None:
            order = list(self.snapshot_order)
            if len(set(order)) != len(order):
                bad("snapshot_order", "contains a snapshot twice")
            object.__setattr__(self, "snapshot_order", tuple(order))
