"""WARC bytes -> ``raw_pages`` rows, with every unusable record quarantined and counted.

:mod:`dataplatform.core.warc_framing` finds where each record starts and ends (resynchronising at
the next gzip member or ``WARC/1.`` line after a damaged one); fastwarc parses each complete record
(headers, block digest, HTTP). Rows come out as Arrow record batches of bounded size, so memory
depends on ``max_payload_bytes`` and ``batch_rows``/``batch_bytes``, never on the size of the file
or on what it inflates to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa
from fastwarc.warc import WarcRecord, WarcRecordType

from dataplatform.core import drop_reasons as R
from dataplatform.core.schemas import QUARANTINE, RAW_PAGES
from dataplatform.core.warc_framing import Damage, FramedRecord, iter_framed_records, seekable

PAYLOAD_HEAD_BYTES = 256
INT64_MAX = 2**63 - 1
_HTML_MIME_TYPES = ("text/html", "application/xhtml+xml")
_READ_TYPES = WarcRecordType.response | WarcRecordType.revisit | WarcRecordType.resource | WarcRecordType.conversion
_READ_TYPE_NAMES = frozenset({"response", "revisit", "resource", "conversion"})


@dataclasses.dataclass(frozen=True)
class WarcReadOptions:
    """Limits applied while reading WARC records.

    ``max_payload_bytes`` quarantines giant responses (a 50 MB "page" is a video or a dump, and
    would blow the memory bound of a shard) and bounds every decompression: no more than this (plus
    a 64 KiB chunk) of one record is ever held inflated. ``verify_digests`` checks
    ``WARC-Block-Digest`` where present, catching records corrupted in storage or transfer.
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
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _header_block(http_headers) -> str:
    return "\n".join(f"{k}: {v}" for k, v in http_headers.astuples())


class _RowWriter:
    """Turns framed records and damage into page and quarantine rows of one WARC, counting both."""

    def __init__(self, snapshot: str, warc_file: str, options: WarcReadOptions, stats: WarcReadStats) -> None:
        self.snapshot, self.warc_file, self.options, self.stats = snapshot, warc_file, options, stats
        self.pages = _Batcher(RAW_PAGES)
        self.quarantined = _Batcher(QUARANTINE)

    def quarantine(
        self,
        reason: str,
        detail: str,
        *,
        offset: int | None,
        record_id: str | None = None,
        wtype: str | None = None,
        url: str | None = None,
        payload: bytes | None = None,
        payload_bytes: int | None = None,
    ) -> None:
        self.stats.quarantined[reason] = self.stats.quarantined.get(reason, 0) + 1
        self.quarantined.add(
            {
                "snapshot": self.snapshot,
                "warc_file": self.warc_file,
                "warc_offset": offset,
                "warc_record_id": record_id,
                "warc_type": wtype,
                "url": url,
                "reason": reason,
                "detail": detail,
                # A declared length can exceed int64 (Content-Length: 2**64-1); the column is int64.
                "payload_bytes": None if payload_bytes is None else min(payload_bytes, INT64_MAX),
                "payload_head": payload[:PAYLOAD_HEAD_BYTES] if payload else None,
            }
        )

    def skip(self, kind: str) -> None:
        self.stats.skipped[kind] = self.stats.skipped.get(kind, 0) + 1

    def add_damage(self, damage: Damage) -> None:
        header = damage.header
        if header is None:
            self.quarantine(
                damage.reason, damage.detail, offset=damage.offset, payload=damage.head, payload_bytes=damage.present_bytes
            )
            return
        self.stats.records += 1
        self.quarantine(
            damage.reason,
            damage.detail,
            offset=damage.offset,
            record_id=header.get("WARC-Record-ID"),
            wtype=header.record_type,
            url=header.get("WARC-Target-URI"),
            payload=damage.head,
            payload_bytes=damage.present_bytes,
        )

    def add_record(self, framed: FramedRecord) -> None:
        self.stats.records += 1
        if framed.header.record_type not in _READ_TYPE_NAMES:
            self.skip(framed.header.record_type)
        elif framed.raw is None:
            self._add_unread(framed)
        else:
            try:
                record = WarcRecord.from_bytes(framed.raw)
            except OSError as exc:
                self.add_damage(
                    Damage(
                        framed.offset,
                        R.CORRUPT_RECORD,
                        f"fastwarc cannot parse the record: {exc}",
                        framed.header,
                        framed.block_length,
                        framed.block[:PAYLOAD_HEAD_BYTES],
                    )
                )
                self.stats.records -= 1  # counted once, above
                return
            self._add_parsed(record, framed.offset)

    def _add_unread(self, framed: FramedRecord) -> None:
        """A record whose block is over ``max_payload_bytes``: it was streamed past, never read."""
        header = framed.header
        common = {
            "offset": framed.offset,
            "record_id": header.get("WARC-Record-ID"),
            "wtype": header.record_type,
            "url": header.get("WARC-Target-URI"),
        }
        if header.record_type == "revisit":
            self.quarantine(R.REVISIT, header.get("WARC-Profile") or "revisit record", **common)
        elif not common["url"] or not common["record_id"]:
            self.quarantine(R.MISSING_URL, "record lacks WARC-Target-URI or WARC-Record-ID", **common)
        else:
            self.quarantine(
                R.OVERSIZED_PAYLOAD,
                f"block of {framed.block_length} bytes > max_payload_bytes={self.options.max_payload_bytes}",
                payload_bytes=framed.block_length,
                **common,
            )

    def _add_parsed(self, record: WarcRecord, offset: int) -> None:
        rtype = record.record_type
        if not (rtype & _READ_TYPES):
            self.skip(str(rtype))
            return
        headers = record.headers
        common = {
            "offset": offset,
            "record_id": headers.get("WARC-Record-ID"),
            "wtype": str(rtype),
            "url": headers.get("WARC-Target-URI"),
        }
        if rtype == WarcRecordType.revisit:
            self.quarantine(R.REVISIT, headers.get("WARC-Profile", "revisit record"), **common)
        elif not common["url"] or not common["record_id"]:
            self.quarantine(R.MISSING_URL, "record lacks WARC-Target-URI or WARC-Record-ID", **common)
        elif self.options.verify_digests and "WARC-Block-Digest" in headers and not record.verify_block_digest():
            self.quarantine(
                R.DIGEST_MISMATCH,
                f"WARC-Block-Digest {headers.get('WARC-Block-Digest')} does not match the block",
                payload_bytes=record.content_length,
                **common,
            )
        else:
            self._add_http(record, common)

    def _add_http(self, record: WarcRecord, common: dict) -> None:
        record.parse_http()
        http = record.http_headers
        payload = record.reader.read()
        if http is None or not record.is_http_parsed or not http.status_code:
            self.quarantine(
                R.NON_HTTP,
                f"{common['wtype']} record is not an HTTP message (Content-Type: {record.headers.get('Content-Type')})",
                payload=payload,
                payload_bytes=len(payload),
                **common,
            )
            return
        status, content_type = http.status_code, http.get("Content-Type")
        mime = (content_type or "").split(";", 1)[0].strip().lower()
        if status != 200:
            self.quarantine(R.HTTP_STATUS, f"HTTP status {status}", payload=payload, payload_bytes=len(payload), **common)
        elif not payload:
            self.quarantine(R.EMPTY_PAYLOAD, "HTTP 200 with an empty body", payload_bytes=0, **common)
        elif mime and mime not in _HTML_MIME_TYPES:
            self.quarantine(R.NON_HTML, f"Content-Type {content_type}", payload=payload, payload_bytes=len(payload), **common)
        else:
            self._add_page(record, common, status, content_type, http, payload)

    def _add_page(self, record: WarcRecord, common: dict, status: int, content_type: str | None, http, payload: bytes) -> None:
        self.stats.pages += 1
        self.stats.payload_bytes += len(payload)
        self.pages.add(
            {
                "warc_record_id": common["record_id"],
                "url": common["url"],
                "snapshot": self.snapshot,
                "warc_file": self.warc_file,
                "warc_offset": common["offset"],
                "fetch_time": _as_utc(record.record_date),
                "http_status": status,
                "content_type": content_type,
                "http_headers": _header_block(http),
                "payload": payload,
                "payload_bytes": len(payload),
            },
            nbytes=len(payload),
        )

    def full_batches(self) -> Iterator[tuple[str, pa.RecordBatch]]:
        if self.pages.rows >= self.options.batch_rows or self.pages.nbytes >= self.options.batch_bytes:
            yield "pages", self.pages.flush()
        if self.quarantined.rows >= self.options.batch_rows:
            yield "quarantine", self.quarantined.flush()

    def last_batches(self) -> Iterator[tuple[str, pa.RecordBatch]]:
        if self.pages.rows:
            yield "pages", self.pages.flush()
        if self.quarantined.rows:
            yield "quarantine", self.quarantined.flush()


@contextlib.contextmanager
def _opened(stream: BinaryIO | str) -> Iterator[BinaryIO]:
    if isinstance(stream, str):
        with open(stream, "rb") as opened:
            yield opened
    else:
        with contextlib.ExitStack() as stack:
            readable = seekable(stream)
            if readable is not stream:
                stack.enter_context(readable)
            yield readable


def iter_raw_page_batches(
    stream: BinaryIO | str,
    *,
    snapshot: str,
    warc_file: str,
    options: WarcReadOptions = WarcReadOptions(),
    stats: WarcReadStats | None = None,
) -> Iterator[tuple[str, pa.RecordBatch]]:
    """Yield ``("pages", batch)`` and ``("quarantine", batch)`` pairs read from one WARC.

    ``stream`` is a binary file object or a local path (a stream that cannot seek is copied to a
    temporary file first). Request, warcinfo and metadata records are skipped (counted in
    ``stats.skipped``); every response-like record becomes a page or a quarantine row with one of
    the ``quarantine:*`` reasons in :mod:`dataplatform.core.drop_reasons`. Damage (a gzip member
    that does not inflate or is cut off, a ``Content-Length`` that does not frame the record, bytes
    that are no record) costs only the damaged record: it is quarantined with what is known of it,
    and reading resumes at the next record.
    """
    stats = stats if stats is not None else WarcReadStats()
    rows = _RowWriter(snapshot, warc_file, options, stats)
    last_offset: int | None = None
    try:
        with _opened(stream) as readable:
            for item in iter_framed_records(readable, options.max_payload_bytes):
                last_offset = item.offset
                if isinstance(item, Damage):
                    rows.add_damage(item)
                else:
                    rows.add_record(item)
                yield from rows.full_batches()
    except OSError as exc:  # the file cannot be opened (a symlink loop, no permission), or reading fails part-way
        if last_offset is None:
            rows.quarantine(R.CORRUPT_WARC, f"cannot read the WARC file: {exc}", offset=None)
        else:
            rows.quarantine(R.TRUNCATED_WARC, f"WARC stream unreadable after offset {last_offset}: {exc}", offset=last_offset)
    yield from rows.last_batches()
