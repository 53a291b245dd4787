"""Stable drop-reason strings, ``<stage>:<rule>``.

Users grep for these and Dagster metadata counts them, so they never change meaning. Rule families
that compute their own reasons (filters, dedup, contamination) build them in their own modules.
"""

from __future__ import annotations

# WARC / HTTP level (raw_pages quarantine)
TRUNCATED_WARC = "quarantine:truncated_warc"  # the file ends (or a gzip member is cut off) inside a record
CORRUPT_WARC = "quarantine:corrupt_warc"  # bytes that are no WARC record: empty file, garbage, a damaged member
CORRUPT_RECORD = "quarantine:corrupt_record"  # a record whose gzip member fails to inflate (bad data or CRC)
BAD_CONTENT_LENGTH = "quarantine:bad_content_length"  # Content-Length missing, not a number, or not framing the record
DIGEST_MISMATCH = "quarantine:digest_mismatch"
NON_HTTP = "quarantine:non_http"
REVISIT = "quarantine:revisit"
EMPTY_PAYLOAD = "quarantine:empty_payload"
OVERSIZED_PAYLOAD = "quarantine:oversized_payload"
HTTP_STATUS = "quarantine:http_status"
NON_HTML = "quarantine:non_html"
MISSING_URL = "quarantine:missing_url"

# HTML -> document level (documents.drop_reason)
UNDECODABLE_CHARSET = "quarantine:undecodable_charset"
HTML_PARSE_ERROR = "quarantine:html_parse_error"
EMPTY_TEXT = "quarantine:empty_text"
