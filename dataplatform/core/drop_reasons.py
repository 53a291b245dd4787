"""Stable drop-reason strings, ``<stage>:<rule>``.

Users grep for these and Dagster metadata counts them, so they never change meaning. Rule families
that compute their own reasons (filters, dedup, contamination) build them with :func:`reason`.
"""

from __future__ import annotations

QUARANTINE = "quarantine"


def reason(stage: str, rule: str) -> str:
    return f"{stage}:{rule}"


# WARC / HTTP level (raw_pages quarantine)
TRUNCATED_WARC = "quarantine:truncated_warc"
CORRUPT_WARC = "quarantine:corrupt_warc"
CORRUPT_RECORD = "quarantine:corrupt_record"
BAD_CONTENT_LENGTH = "quarantine:bad_content_length"
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
