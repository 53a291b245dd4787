"""Deduplication core: exact (normalised-text hash) + fuzzy (MinHash LSH), across snapshots.

Pure functions on Polars/Arrow/numpy data; no Dagster import.

* :func:`deduplicate` - the stage: ``deduplicate(df, index=prior, config=DedupConfig())``
  returns ``(result_df, new_index_rows)`` (with ``.stats``).
* :mod:`.normalize` - text normalisation and the XXH3-64 content hash.
* :mod:`.minhash` - vectorised shingling and MinHash signatures.
* :mod:`.lsh` - banding, candidate pairs, verification, union-find clusters.
* :mod:`.index` - the cross-snapshot signature index (Arrow table) and :class:`SignatureIndex`.
"""

from .config import DedupConfig
from .index import EXACT_BAND, INDEX_SCHEMA, SignatureIndex, build_index_rows, empty_index
from .lsh import band_hashes, candidate_pairs, connected_components, estimated_jaccard
from .minhash import minhash_signatures, shingle_hashes, signatures_from_shingles
from .normalize import content_hash, normalize_buffers, normalize_text
from .pipeline import DROP_EXACT, DROP_MINHASH, DedupResult, deduplicate

__all__ = [
    "DedupConfig",
    "DedupResult",
    "DROP_EXACT",
    "DROP_MINHASH",
    "EXACT_BAND",
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
    "minhash_signatures",
    "normalize_buffers",
    "normalize_text",
    "shingle_hashes",
    "signatures_from_shingles",
]
