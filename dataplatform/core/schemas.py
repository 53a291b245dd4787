"""Arrow schemas of the datasets every stage reads and writes.

These are the contract between stages and with users' notebooks: add columns, never rename.
"""

from __future__ import annotations

import pyarrow as pa

FETCH_TIME = pa.timestamp("us", tz="UTC")

RAW_PAGES = pa.schema(
    [
        pa.field("warc_record_id", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("snapshot", pa.string(), nullable=False),
        pa.field("warc_file", pa.string(), nullable=False),
        pa.field("warc_offset", pa.int64(), nullable=False),
        pa.field("fetch_time", FETCH_TIME),
        pa.field("http_status", pa.int16()),
        pa.field("content_type", pa.string()),
        pa.field("http_headers", pa.string()),  # header block as sent, one "Name: value" per line
        pa.field("payload", pa.large_binary()),
        pa.field("payload_bytes", pa.int64(), nullable=False),
    ]
)

# Records that never became a page: kept with the reason so "why is this record gone?" has an answer.
QUARANTINE = pa.schema(
    [
        pa.field("snapshot", pa.string(), nullable=False),
        pa.field("warc_file", pa.string(), nullable=False),
        pa.field("warc_offset", pa.int64()),
        pa.field("warc_record_id", pa.string()),
        pa.field("warc_type", pa.string()),
        pa.field("url", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("payload_bytes", pa.int64()),
        pa.field("payload_head", pa.binary()),  # first bytes only, for inspection
    ]
)

DOCUMENTS = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("snapshot", pa.string(), nullable=False),
        pa.field("warc_record_id", pa.string(), nullable=False),
        pa.field("warc_file", pa.string(), nullable=False),
        pa.field("fetch_time", FETCH_TIME),
        pa.field("text", pa.large_string()),
        pa.field("title", pa.string()),
        pa.field("language", pa.string()),
        pa.field("language_score", pa.float32()),
        pa.field("n_chars", pa.int64(), nullable=False),
        pa.field("drop_reason", pa.string()),  # null when kept
    ]
)

FILTER_FLAGS = ("passes_gopher_repetition", "passes_gopher_quality", "passes_c4", "passes_fineweb")

FILTERED = pa.schema(
    list(DOCUMENTS)
    + [pa.field(name, pa.bool_()) for name in FILTER_FLAGS]
    + [pa.field("c4_lines_removed", pa.uint32()), pa.field("pii_count", pa.int32())]
)

QUALITY_LABELS = ("high_quality", "rewrite_candidate", "low_quality")

SCORED = pa.schema(list(FILTERED) + [pa.field("quality_score", pa.float32()), pa.field("quality_label", pa.string())])


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, in order, cast to its types (missing -> null)."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


DEDUPLICATED = pa.schema(list(SCORED) + [pa.field("duplicate_of", pa.string())])

# One row per page of a `dataplatform process` run: every column any stage added, and the
# drop_reason of the stage that set the page aside (null for pages that made it through).
PROCESSED = pa.schema(
    list(DEDUPLICATED) + [pa.field("contamination_benchmark", pa.string()), pa.field("contamination_cut_chars", pa.int64())]
)

DECONTAMINATED = pa.schema(
    list(DEDUPLICATED)
    + [
        pa.field("contamination_benchmark", pa.string()),
        pa.field("overlap_ngrams", pa.int64()),
        pa.field("contamination_cut_chars", pa.int64()),
    ]
)

MIX = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),  # id of this mix row's text
        pa.field("source_doc_id", pa.string()),  # the crawl document it came from
        pa.field("source", pa.string(), nullable=False),  # curated_raw | rewritten | instructions
        pa.field("snapshot", pa.string()),
        pa.field("text", pa.large_string()),
        pa.field("n_tokens", pa.int64(), nullable=False),
    ]
)
