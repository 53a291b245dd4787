"""Stable identifiers: the same input gives the same id on every machine and every run."""

from __future__ import annotations

import hashlib


def document_id(url: str, warc_record_id: str) -> str:
    """Id of a document: a 128-bit BLAKE2b hex digest of its URL and WARC record id.

    The WARC record id is globally unique per capture, so the same URL crawled in two snapshots
    gives two documents (dedup decides later whether they are the same text), while re-processing
    the same WARC file always gives the same ids.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(url.encode("utf-8", "surrogatepass"))
    h.update(b"\x00")
    h.update(warc_record_id.encode("utf-8", "surrogatepass"))
    return h.hexdigest()
