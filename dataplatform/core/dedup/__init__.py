"""Deduplication core: exact (normalised-text hash) + fuzzy (MinHash LSH), across snapshots.

Pure functions on Polars/Arrow/numpy data; no Dagster import.

* :func:`deduplicate` - the in-memory reference: ``deduplicate(df, index=prior, config=DedupConfig())``
  returns a :class:`DedupResult` (``frame``, ``index_rows``, ``stats``).
* :mod:`.normalize` - text normalisation and the XXH3-64 content hash.
* :mod:`.minhash` - vectorised shingling and MinHash signatures.
* :mod:`.lsh` - banding, candidate pairs, verification, union-find clusters.
* :mod:`.index` - the cross-snapshot signature index (Arrow table); :class:`SignatureIndex` keeps
  one in memory.
* :mod:`.buckets` - the out-of-core pieces (bucket ids, per-bucket exact groups and candidate
  pairs, pair verification, clustering of the edge list) the dedup stage runs bucket by bucket.
"""

from .config import DedupConfig
from .index import EXACT_BAND, INDEX_SCHEMA, build_index_rows, empty_index
from .lsh import band_hashes, candidate_pairs, connected_components, estimated_jaccard, fingerprint_jaccard
from .minhash import Fingerprints, minhash_signatures, shingle_hashes, signatures_from_shingles
from .normalize import content_hash, normalize_buffers, normalize_text
from .pipeline import DROP_EXACT, DROP_MINHASH, DedupResult, SignatureIndex, deduplicate

__all__ = [
    "DedupConfig",
    "DedupResult",
    "DROP_EXACT",
    "DROP_MINHASH",
    "EXACT_BAND",
    "Fingerprints",
    "INDEX_SCHEMA",
    "SignatureIndex",
    "band_hashes",
    "build_index_rows",
    "candidate_pairs",
    "connected_components",
    "content_hash",
    "deduplicate",
    "empty_index",
    "estimated_jaccard",
    "fingerprint_jaccard",
    "minhash_signatures",
    "normalize_buffers",
    "normalize_text",
    "shingle_hashes",
    "signatures_from_shingles",
]
