"""The names every layer shares: datasets (assets), their tables, partitions and row labels.

Assets, stages, checks, the command line and tests import these instead of spelling the strings,
so a dataset is renamed in one place. Plain constants only: importable from ``core`` too.
"""

from __future__ import annotations

# -- partitions ----------------------------------------------------------------------------------
UNPARTITIONED = "unpartitioned"  # the partition key of assets that span every snapshot
SNAPSHOT_PARTITIONS = "crawl_snapshots"  # Dagster's dynamic partitions definition

# -- datasets, in pipeline order -----------------------------------------------------------------
CRAWL_WARC_FILES = "crawl_warc_files"  # external: the crawl itself
RAW_PAGES = "raw_pages"
DOCUMENTS = "documents"
FILTERED = "filtered"
TOXICITY = "toxicity"  # filtered documents with toxicity scores (policy: score only, or drop above thresholds)
QUALITY_CLASSIFIER = "quality_classifier"
SCORED = "scored"
DEDUPLICATED = "deduplicated"
SIGNATURE_INDEX = "dedup_signature_index"
BENCHMARK_FILES = "benchmark_files"  # external: evaluation benchmark items
EVAL_BENCHMARKS = "eval_benchmarks"
DECONTAMINATED = "decontaminated"
EVAL_SPLITS = "eval_splits"
REWIRE_OUTPUTS = "rewire_outputs"  # REWIRE step 1: every pool document rewritten by the LLM
REWRITE_CLASSIFIER = "rewrite_classifier"  # REWIRE step 2: reference text vs random rewrites
REWRITTEN = "rewritten"  # REWIRE step 3: the classifier's top rewrites
INSTRUCTION_TEMPLATES = "instruction_templates"
INSTRUCTION_PAIRS = "instruction_pairs"
CONTAMINATION_AUDIT = "contamination_audit"
TRAINING_MIX = "training_mix"
COLOR_TARGET_FILES = "color_target_files"  # external: the target set CoLoR-Filter selects towards
COLOR_CONDITIONAL_MODEL = "color_conditional_model"  # small LM fine-tuned on the target set
COLOR_SCORES = "color_scores"  # CoLoR-Filter: loss_prior - loss_conditional per document, top fraction in data
PROCESSED = "processed"  # `dataplatform process`: one row per page with every stage's columns

# -- tables inside a dataset's partition -----------------------------------------------------------
DATA = "data"  # what the stage keeps
QUARANTINE = "quarantine"  # WARC records that never became a page, with their reason
DROPPED = "dropped"  # rows the stage set aside, with their drop_reason
REWRITE_CANDIDATES = "rewrite_candidates"  # scored: below the quality cut, in REWIRE's pool
REWRITE_POOL = "rewrite_pool"  # deduplicated / decontaminated: REWIRE's input
FAILURES = "failures"  # synthesis: model outputs that could not be used, with their reason
ITEMS = "items"  # eval_benchmarks: benchmark items
NGRAM_INDEX = "ngram_index"  # eval_benchmarks: n-gram hashes of the items
SPLITS = ("train", "validation", "test")  # eval_splits tables
INDEX_EXACT = "exact"  # dedup_signature_index: normalised-text hash of each kept document
INDEX_BANDS = "bands"  # dedup_signature_index: LSH band hashes of each kept document
INDEX_SIGNATURES = "signatures"  # dedup_signature_index: MinHash signature + shingle fingerprints

# -- training-mix sources ---------------------------------------------------------------------------
COLOR_SELECTED = "color_selected"  # documents CoLoR-Filter selected (color_scores/data)

# -- files inside a version ----------------------------------------------------------------------
MIX_MANIFEST = "mix_manifest.json"

# -- quality labels (scored) -----------------------------------------------------------------------
HIGH_QUALITY = "high_quality"
REWRITE_CANDIDATE = "rewrite_candidate"
LOW_QUALITY = "low_quality"
QUALITY_LABELS = (HIGH_QUALITY, REWRITE_CANDIDATE, LOW_QUALITY)
