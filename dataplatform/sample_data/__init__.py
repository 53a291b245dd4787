"""The bundled sample crawl: two small Common-Crawl-shaped snapshots with a ground-truth sidecar.

The WARC files under ``crawl/`` are produced by :mod:`dataplatform.sample_data.generate_sample_crawl`
(deterministic, byte for byte) and committed. ``ground_truth.jsonl`` has one row per WARC
response/revisit record saying what the page is (article, spam, duplicate, ...) and, for broken
records, which ``quarantine:*`` drop reason a reader should assign.
"""

from __future__ import annotations

import json
from pathlib import Path

SAMPLE_DATA_DIR = Path(__file__).resolve().parent
SAMPLE_CRAWL_ROOT = SAMPLE_DATA_DIR / "crawl"
SAMPLE_SNAPSHOTS = ("CC-SAMPLE-2026-05", "CC-SAMPLE-2026-10")
GROUND_TRUTH_PATH = SAMPLE_DATA_DIR / "ground_truth.jsonl"
SAMPLE_BENCHMARKS_DIR = SAMPLE_DATA_DIR / "benchmarks"


def load_ground_truth(path: Path | str = GROUND_TRUTH_PATH) -> list[dict]:
    """Rows of ``ground_truth.jsonl`` as dicts, in file order."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


__all__ = [
    "GROUND_TRUTH_PATH",
    "SAMPLE_BENCHMARKS_DIR",
    "SAMPLE_CRAWL_ROOT",
    "SAMPLE_DATA_DIR",
    "SAMPLE_SNAPSHOTS",
    "load_ground_truth",
]
