"""WARC bytes -> ``raw_pages`` rows, with every unusable record quarantined and counted.

Reads one WARC (gzip-per-record or plain) with fastwarc and yields Arrow record batches of bounded
size, so memory depends on ``batch_rows``/``batch_bytes``, never on the size of the file.
"""

from __future__ import annotations

import dataclasses
import zlib
import datetime as dt
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa
from fastwarc.warc import ArchiveIterator, WarcRecordType

from dataplatform.core import drop_reasons as R
from dataplatform.core.schemas import QUARANTINE, RAW_PAGES

PAYLOAD_HEAD_BYTES = 256
_HTML_MIME_TYPES = ("text/html", "application/xhtml+xml")
_READ_TYPES = (
    WarcRecordType.response | WarcRecordType.revisit | WarcRecordType.resource | WarcRecordType.conversion
)


@dataclasses.dataclass(frozen=True)
class WarcReadOptions:
    """Limits applied while reading WARC records.

    ``max_payload_bytes`` quarantines giant responses (a 50 MB "page" is a video or a dump, and
    would blow the memory bound of a shard); ``verify_digests`` checks ``WARC-Block-Digest`` where
    present, catching records corrupted in storage or transfer.
    """

    max_payload_bytes: int = 10 * 1024 * 1024
    verify_digests: bool = True
    batch_rows: int = 2000
    batch_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_payload_bytes", "batch_rows", "batch_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"WarcReadOptions.{name} must be > 0, got {getattr(self, name)}")


@dataclasses.dataclass
class WarcReadStats:
    records: int = 0
    pages: int = 0
    payload_bytes: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    quarantined: dict[str, int] = dataclasses.field(default_factory=dict)


class _Batcher:
    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.columns: dict[str, list] = {f.name: [] for f in schema}
        self.rows = 0
        self.nbytes = 0

    def add(self, row: dict, nbytes: int = 0) -> None:
        for name, values in self.columns.items():
            values.append(row.get(name))
        self.rows += 1
        self.nbytes += nbytes

    def flush(self) -> pa.RecordBatch:
        batch = pa.RecordBatch.from_pydict(self.columns, schema=self.schema)
        self.columns = {f.name: [] for f in self.schema}
        self.rows = 0
        self.nbytes = 0
        return batch


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _header_block(http_headers) -> str:
    return "\n".join(f"{k}: {v}" for k, v in http_headers.astuples())


def iter_raw_page_batches(
    stream: BinaryIO | str,
    *,
    snapshot: str,
    warc_file: str,
    options: WarcReadOptions = WarcReadOptions(),
    stats: WarcReadStats | None = None,
) -> Iterator[tuple[str, pa.RecordBatch]]:
    """Yield ``("pages", batch)`` and ``("quarantine", batch)`` pairs read from one WARC.

    ``stream`` is a binary file object or a local path. Request, warcinfo and metadata records
    are skipped (counted in ``stats.skipped``); every response-like record becomes a page or a
    quarantine row with one of the ``quarantine:*`` reasons in :mod:`dataplatform.core.drop_reasons`.
    A stream that breaks mid-file (gzip member cut off, garbage bytes) ends the file with one
    ``quarantine:truncated_warc`` row; the records read before it are kept.
    """
    stats = stats if stats is not None else WarcReadStats()
    pages = _Batcher(RAW_PAGES)
    quarantine = _Batcher(QUARANTINE)

    def quarantine_row(reason: str, detail: str, *, offset=None, record_id=None, wtype=None, url=None,
                       payload: bytes | None = None, payload_bytes: int | None = None) -> None:
        stats.quarantined[reason] = stats.quarantined.get(reason, 0) + 1
        quarantine.add(
            {
                "snapshot": snapshot,
                "warc_file": warc_file,
                "warc_offset": offset,
                "warc_record_id": record_id,
                "warc_type": wtype,
                "url": url,
                "reason": reason,
                "detail": detail,
                "payload_bytes": payload_bytes,
                "payload_head": payload[:PAYLOAD_HEAD_BYTES] if payload else None,
            }
        )

    def skip(kind: str) -> None:
        stats.skipped[kind] = stats.skipped.get(kind, 0) + 1

    # parse_http=False: the block digest must be checked over the whole block, before the HTTP
    # headers are consumed; parse_http() is then called on records that pass.
    iterator = ArchiveIterator(stream, record_types=WarcRecordType.any_type, parse_http=False, fsspec_args=False)
    last_offset: int | None = None
    try:
        for record in iterator:
            stats.records += 1
            offset = record.stream_pos
            last_offset = offset
            rtype = record.record_type
            if not (rtype & _READ_TYPES):
                skip(str(rtype))
                continue
            headers = record.headers
            record_id = headers.get("WARC-Record-ID")
            url = headers.get("WARC-Target-URI")
            common = {"offset": offset, "record_id": record_id, "wtype": str(rtype), "url": url}
            if rtype == WarcRecordType.revisit:
                quarantine_row(R.REVISIT, headers.get("WARC-Profile", "revisit record"), **common)
                continue
            if not url or not record_id:
                quarantine_row(R.MISSING_URL, "record lacks WARC-Target-URI or WARC-Record-ID", **common)
                continue
            declared = record.content_length
            if declared > options.max_payload_bytes:
                # Never read it into memory: the iterator skips the unread rest of the block.
                quarantine_row(R.OVERSIZED_PAYLOAD, f"block of {declared} bytes > max_payload_bytes="
                               f"{options.max_payload_bytes}", payload_bytes=declared, **common)
                continue
            if options.verify_digests and "WARC-Block-Digest" in headers and not record.verify_block_digest():
                quarantine_row(R.DIGEST_MISMATCH, f"WARC-Block-Digest {headers.get('WARC-Block-Digest')} "
                               "does not match the block", payload_bytes=declared, **common)
                continue
            record.parse_http()
            http = record.http_headers
            if http is None or not record.is_http_parsed or not http.status_code:
                payload = record.reader.read()
                quarantine_row(R.NON_HTTP, f"{rtype} record is not an HTTP message "
                               f"(Content-Type: {headers.get('Content-Type')})", payload=payload,
                               payload_bytes=len(payload), **common)
                continue
            expected = record.content_length  # after parse_http(): the payload length the record declares
            payload = record.reader.read()
            if len(payload) < expected:
                quarantine_row(R.TRUNCATED_WARC, f"payload has {len(payload)} of {expected} declared bytes",
                               payload=payload, payload_bytes=len(payload), **common)
                continue
            status = http.status_code
            content_type = http.get("Content-Type")
            if status != 200:
                quarantine_row(R.HTTP_STATUS, f"HTTP status {status}", payload=payload,
                               payload_bytes=len(payload), **common)
                continue
            if not payload:
                quarantine_row(R.EMPTY_PAYLOAD, "HTTP 200 with an empty body", payload_bytes=0, **common)
                continue
            mime = (content_type or "").split(";", 1)[0].strip().lower()
            if mime and mime not in _HTML_MIME_TYPES:
                quarantine_row(R.NON_HTML, f"Content-Type {content_type}", payload=payload,
                               payload_bytes=len(payload), **common)
                continue
            # Flush before adding, so the last record read is still in hand when the tail check
            # below finds the file truncated.
            if pages.rows >= options.batch_rows or pages.nbytes >= options.batch_bytes:
                yield "pages", pages.flush()
            stats.pages += 1
            stats.payload_bytes += len(payload)
            pages.add(
                {
                    "warc_record_id": record_id,
                    "url": url,
                    "snapshot": snapshot,
                    "warc_file": warc_file,
                    "warc_offset": offset,
                    "fetch_time": _as_utc(record.record_date),
                    "http_status": status,
                    "content_type": content_type,
                    "http_headers": _header_block(http),
                    "payload": payload,
                    "payload_bytes": len(payload),
                },
                nbytes=len(payload),
            )
        problem = _stream_problem(stream, last_offset)
    except (OSError, ValueError) as exc:
        problem = (R.TRUNCATED_WARC, f"WARC stream unreadable after offset {last_offset}: {exc}")
    if problem:
        # fastwarc stops quietly at a gzip member cut short; the last record it returned may be a
        # fragment. That record is re-labelled (keeping its id and URL) instead of kept as half a page.
        reason, detail = problem
        fragment: dict = {"offset": last_offset}
        if last_offset is not None and pages.rows and pages.columns["warc_offset"][-1] == last_offset:
            row = {name: values.pop() for name, values in pages.columns.items()}
            pages.rows -= 1
            stats.pages -= 1
            fragment = {"offset": last_offset, "record_id": row["warc_record_id"], "url": row["url"], "wtype": "response"}
        elif last_offset is not None and quarantine.rows and quarantine.columns["warc_offset"][-1] == last_offset:
            row = {name: values.pop() for name, values in quarantine.columns.items()}
            quarantine.rows -= 1
            stats.quarantined[row["reason"]] -= 1
            fragment = {"offset": last_offset, "record_id": row["warc_record_id"], "url": row["url"], "wtype": row["warc_type"]}
        quarantine_row(reason, detail, **fragment)
    if pages.rows:
        yield "pages", pages.flush()
    if quarantine.rows:
        yield "quarantine", quarantine.flush()


def _stream_problem(stream: BinaryIO | str, last_offset: int | None) -> tuple[str, str] | None:
    """Return ``(reason, detail)`` if a WARC stream did not end cleanly, else None.

    For gzip files this re-reads only the tail from the last record's member and checks every
    remaining gzip member is complete. Non-seekable streams are not checked (the records already
    read stand).
    """
    opened = None
    try:
        if isinstance(stream, str):
            opened = stream = open(stream, "rb")
        if not stream.seekable():
            return None
        start = last_offset or 0
        stream.seek(0, 2)
        size = stream.tell()
        if size == 0:
            return R.CORRUPT_WARC, "empty WARC file"
        stream.seek(start)
        tail = stream.read()
        if last_offset is None and not tail.startswith(b"\x1f\x8b") and not tail.startswith(b"WARC/"):
            return R.CORRUPT_WARC, f"no WARC record found in {size} bytes"
        if not tail.startswith(b"\x1f\x8b"):
            return None
        while tail:
            decompressor = zlib.decompressobj(31)
            try:
                decompressor.decompress(tail)
            except zlib.error as exc:
                return R.CORRUPT_WARC, f"corrupt gzip member after offset {start}: {exc}"
            if not decompressor.eof:
                return R.TRUNCATED_WARC, f"gzip member cut off after offset {start} ({size} bytes in file)"
            tail = decompressor.unused_data
        return None
    finally:
        if opened is not None:
            opened.close()
