"""Where each WARC record starts and ends, found without trusting any one record.

fastwarc parses a record well, but it reads a file as one stream and cannot resynchronise: an empty
gzip member ends its iteration, an over-long ``Content-Length`` makes it take the following records
as the block (up to the end of the file), and it stops at the first header it cannot parse. Common
Crawl writes one gzip member per record, so member boundaries are a framing that one damaged record
cannot move. This module splits a file into records itself and
:mod:`dataplatform.core.warc_records` hands each complete record's bytes to fastwarc:

* A gzip file is split into members, each inflated on its own with ``zlib`` and never more than the
  payload limit (plus a chunk) held in memory: a larger record is streamed through and discarded.
  A member that does not inflate (bad CRC, bad deflate data, cut off) is reported, and reading
  resumes at the next gzip header (``1f 8b 08``) after the member's start whose first bytes inflate
  to a ``WARC/`` line.
* Inside a member (some writers compress several records, or a whole file, as one member) and in an
  uncompressed file, a record is framed by its ``Content-Length``: the block must be followed by line
  breaks and then the next ``WARC/`` line or the end of the member. A record that does not frame is
  reported, and reading resumes at the next line starting with ``WARC/1.`` after its header.
* Bytes that are not a gzip member are read as uncompressed WARC up to the next gzip member that
  holds a record, so garbage between members, or a damaged first member, hides nothing after it.

The usual member (one record within the limit) is inflated in one go and checked with a few
slices; only the others take the general, streaming path. A resynchronisation point is a guess
where a payload itself holds WARC bytes (a page quoting a WARC record, a ``.warc.gz`` stored as a
response); records found there are real WARC records and are read as such. CPU, unlike memory, is
not bounded by the payload limit: a member is inflated to its end to find where the next one starts
(a few CPU seconds per inflated gigabyte); work stays linear in the input however it is damaged.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from dataplatform.core import drop_reasons as R

GZIP_MAGIC = b"\x1f\x8b\x08"
RECORD_START = b"WARC/1."
MAX_HEADER_BYTES = 256 * 1024
TRAILER_WINDOW = 64  # bytes looked at after a block: line breaks, then "WARC/" or the end
INFLATE_CHUNK = 64 * 1024
READ_BLOCK = 1024 * 1024
SINGLE_STEP_INPUT = 256 * 1024  # members with more compressed bytes go the general way
FIRST_INPUT_STEP = 16 * 1024
HEAD_BYTES = 256
KNOWN_RECORD_TYPES = frozenset(
    {"warcinfo", "response", "resource", "request", "metadata", "revisit", "conversion", "continuation"}
)

OK, TRUNCATED, CORRUPT = "ok", "truncated", "corrupt"
# The header ends at its first empty line; writers end lines with CRLF, LF, and (seen in pywb's
# samples) CR CR LF.
_BLANK_LINE = re.compile(rb"\n\r{0,8}\n")
BLANK_LINE_MAX = 10
_LINE_BREAK_BYTES = b"\r\n \t"
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*([^\r\n]*)")
_WARC_TYPE = re.compile(rb"(?im)^warc-type:[ \t]*([^\r\n]*)")


@dataclasses.dataclass(frozen=True)
class WarcHeader:
    """A record's WARC header block, as bytes; fields are parsed only when asked for."""

    raw: bytes

    @functools.cached_property
    def fields(self) -> dict[str, str]:
        """Fields by lower-cased name (the first of a repeated name wins)."""
        fields: dict[str, str] = {}
        for line in self.raw.decode("utf-8", "replace").splitlines()[1:]:
            name, sep, value = line.partition(":")
            if sep and name.strip():
                fields.setdefault(name.strip().lower(), value.strip())
        return fields

    def get(self, name: str) -> str | None:
        return self.fields.get(name.lower())

    @property
    def record_type(self) -> str:
        """The WARC-Type as fastwarc names it (``"unknown"`` for anything else)."""
        match = _WARC_TYPE.search(self.raw)
        value = match.group(1).strip().lower().decode("ascii", "replace") if match else ""
        return value if value in KNOWN_RECORD_TYPES else "unknown"

    @property
    def content_length(self) -> int | None:
        match = _CONTENT_LENGTH.search(self.raw)
        value = match.group(1).strip() if match else b""
        return int(value) if value.isdigit() else None


@dataclasses.dataclass(frozen=True)
class FramedRecord:
    """One record whose block is exactly ``Content-Length`` bytes and ends where a record may end.

    ``raw`` holds the record from its ``WARC/`` line through the block (line breaks may follow); it
    is None when the block is longer than the payload limit: the block was streamed past, unread.
    ``offset`` is where the gzip member holding the record starts (the offset Common Crawl's index
    gives), or for an uncompressed file where the record starts.
    """

    offset: int
    header: WarcHeader
    block_length: int
    raw: bytes | None

    @property
    def block(self) -> bytes | None:
        if self.raw is None:
            return None
        start = len(self.header.raw)
        return self.raw[start : start + self.block_length]


@dataclasses.dataclass(frozen=True)
class Damage:
    """Bytes that are not a usable record, with the drop reason and what is known of the record."""

    offset: int
    reason: str
    detail: str
    header: WarcHeader | None = None
    present_bytes: int | None = None
    head: bytes | None = None


# --------------------------------------------------------------------------------- the file bytes
class _Source:
    """Random access to a seekable file's bytes, read in blocks of up to 1 MiB (reads are mostly forward)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._base = stream.tell()
        stream.seek(0, 2)
        self.size = stream.tell() - self._base
        self._block = b""
        self._block_start = 0

    def view(self, pos: int, n: int) -> memoryview:
        """Up to ``n`` bytes at ``pos`` (fewer at the end of the file)."""
        end = min(pos + n, self.size)
        if pos < self._block_start or end > self._block_start + len(self._block):
            # Reading on from the block: a big read. A jump (a resynchronisation): a small one.
            sequential = self._block_start <= pos <= self._block_start + len(self._block)
            self._stream.seek(self._base + pos)
            self._block = self._stream.read(max(n, READ_BLOCK if sequential else INFLATE_CHUNK))
            self._block_start = pos
        start = pos - self._block_start
        return memoryview(self._block)[start : start + (end - pos)]

    def find(self, pattern: bytes, start: int) -> int:
        """Offset of the first ``pattern`` at or after ``start``, or -1."""
        pos = start
        while pos < self.size:
            window = self.view(pos, READ_BLOCK).tobytes()
            hit = window.find(pattern)
            if hit >= 0:
                return pos + hit
            if pos + len(window) >= self.size:
                return -1
            pos += len(window) - len(pattern) + 1
        return -1


# ----------------------------------------------------------------------------- decompressed units
class _Unit:
    """The decompressed bytes of one gzip member, or of an uncompressed stretch, read forward.

    Everything from the last :meth:`release` on stays in the buffer, so a record that fails to frame
    can be re-read from its header end without inflating again.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._i = 0  # read position in _buf
        self._buf_start = 0  # unit position of _buf[0]
        self.ended = False
        self.state = OK
        self.error = ""

    def _produce(self) -> bytes:
        """The next decompressed chunk; sets ``ended``/``state`` when there is no more."""
        raise NotImplementedError

    def _restart_at(self, pos: int) -> None:
        """Continue reading from unit position ``pos`` (earlier than the buffer)."""
        raise NotImplementedError

    @property
    def pos(self) -> int:
        return self._buf_start + self._i

    def fill(self, n: int) -> int:
        """Try to have ``n`` bytes ahead of the read position; return how many there are."""
        while len(self._buf) - self._i < n and not self.ended:
            self._buf += self._produce()
        return len(self._buf) - self._i

    def ahead(self, start: int, end: int) -> bytes:
        return bytes(self._buf[self._i + start : self._i + end])

    def find_ahead(self, pattern: bytes, start: int = 0) -> int:
        hit = self._buf.find(pattern, self._i + start)
        return -1 if hit < 0 else hit - self._i

    def search_ahead(self, pattern: re.Pattern[bytes], start: int, end: int) -> tuple[int, int] | None:
        """(start, end) of the first match of ``pattern`` inside ``[start, end)`` ahead, or None."""
        match = pattern.search(self._buf, self._i + start, self._i + end)
        return None if match is None else (match.start() - self._i, match.end() - self._i)

    def known_remaining(self) -> int | None:
        """How many bytes are left after the read position, if that is known without reading them."""
        return None

    def take(self, n: int) -> bytes:
        out = bytes(self._buf[self._i : self._i + n])
        self._i += len(out)
        return out

    def advance(self, n: int) -> None:
        self._i += n

    def release(self) -> None:
        """Forget what was read before the read position."""
        del self._buf[: self._i]
        self._buf_start += self._i
        self._i = 0

    def skip(self, n: int) -> int:
        """Discard up to ``n`` bytes without keeping them; return how many there were."""
        self.release()
        left = n
        while left:
            step = min(left, len(self._buf))
            del self._buf[:step]
            self._buf_start += step
            left -= step
            if not left or self.ended:
                break
            self._buf += self._produce()
        return n - left

    def checkpoint(self) -> object:
        return self.pos

    def restore(self, token: object) -> None:
        pos = int(token)  # type: ignore[call-overload]
        if pos >= self._buf_start:
            self._i = pos - self._buf_start
        else:
            self._restart_at(pos)

    def skip_line_breaks(self) -> bool:
        """Move past CR/LF/space/tab (forgetting them: a member may hold gigabytes of padding);
        False if the unit ends first."""
        while True:
            self.release()
            available = self.fill(1)
            if not available:
                return False
            if self._buf[self._i] not in _LINE_BREAK_BYTES:  # the usual case: a record starts here
                return True
            window = self._buf[self._i : self._i + INFLATE_CHUNK]
            stripped = len(window) - len(window.lstrip(_LINE_BREAK_BYTES))
            self._i += stripped
            if stripped < len(window):
                return True

    def seek_record_start(self, at_line_start: bool, stop: int | None = None) -> bool:
        """Discard up to the next line starting with ``WARC/1.``; False if none before the end.

        With ``stop`` (a unit position), give up there and leave the read position at ``stop``.
        """
        pattern = b"\n" + RECORD_START
        self.fill(len(RECORD_START))
        if at_line_start and self._buf.startswith(RECORD_START, self._i) and (stop is None or self.pos < stop):
            return True
        while True:
            hit = self._buf.find(pattern, self._i)
            if hit >= 0 and (stop is None or self._buf_start + hit + 1 < stop):
                self._i = hit + 1
                return True
            if stop is not None and self._buf_start + len(self._buf) >= stop:
                self._i = stop - self._buf_start
                return False
            self._i = max(self._i, len(self._buf) - len(pattern) + 1)
            self.release()
            if self.ended:
                self._i = len(self._buf)
                return False
            self._buf += self._produce()


class _GzipMember(_Unit):
    """One gzip member inflated in chunks; ``compressed_end`` is set when it ends cleanly."""

    def __init__(self, source: _Source, offset: int) -> None:
        super().__init__()
        self._source = source
        self.offset = offset
        self._start_inflating()
        self.compressed_end: int | None = None
        self.total: int | None = None  # inflated length, once the member has been inflated to its end

    def _start_inflating(self) -> None:
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._cpos = self.offset

    def _produce(self) -> bytes:
        data = self._inflater.unconsumed_tail
        if not data:
            data = self._source.view(self._cpos, INFLATE_CHUNK)
            self._cpos += len(data)
            if not data:
                self.ended, self.state = True, TRUNCATED
                return b""
        try:
            out = self._inflater.decompress(data, INFLATE_CHUNK)
        except zlib.error as exc:
            self.ended, self.state, self.error = True, CORRUPT, str(exc)
            return b""
        if self._inflater.eof:
            self.ended = True
            self.compressed_end = self._cpos - len(self._inflater.unused_data)
            self.total = self._buf_start + len(self._buf) + len(out)
        return out

    def known_remaining(self) -> int | None:
        return None if self.total is None else self.total - self.pos

    def checkpoint(self) -> object:
        """A copy of the inflater, so that :meth:`restore` need not inflate from the start again."""
        return (self.pos, self._inflater.copy(), self._cpos, bytes(self._buf[self._i :]), self.ended, self.state)

    def restore(self, token: object) -> None:
        if not isinstance(token, tuple):
            return super().restore(token)
        pos, inflater, cpos, ahead, ended, state = token
        self._inflater, self._cpos = inflater.copy(), cpos
        self._buf, self._buf_start, self._i = bytearray(ahead), pos, 0
        self.ended, self.state, self.error = ended, state, ""
        self.compressed_end = None

    def _restart_at(self, pos: int) -> None:
        self._start_inflating()
        self._buf, self._buf_start, self._i = bytearray(), 0, 0
        self.ended, self.state, self.error = False, OK, ""
        self.skip(pos)


class _Plain(_Unit):
    """Uncompressed bytes from ``start`` to the end of the file, or to the first gzip member (holding
    a record) that a search for the next record runs into: so bytes between two gzip members, or a
    damaged first record of a gzip file, are read as plain WARC, and the members after them as such.
    """

    def __init__(self, source: _Source, start: int, end: int) -> None:
        super().__init__()
        self._source = source
        self.start, self.end = start, end
        self._cpos = start
        self.ended = start >= end
        self._member_search: tuple[int, int] = (-1, -1)  # (searched from, next member found)

    def _next_member_from(self, pos: int) -> int:
        searched_from, found = self._member_search
        if not searched_from <= pos <= found:
            self._member_search = (pos, _next_member(self._source, pos))
        return self._member_search[1]

    def seek_record_start(self, at_line_start: bool, stop: int | None = None) -> bool:
        member = self._next_member_from(self.start + self.pos)
        if member >= self.end:
            return super().seek_record_start(at_line_start, stop)
        if super().seek_record_start(at_line_start, member - self.start):
            return True
        self.end = member  # the rest of the file is read as gzip members
        self._buf, self._buf_start, self._i = bytearray(), member - self.start, 0
        self._cpos, self.ended = member, True
        return False

    def _produce(self) -> bytes:
        data = self._source.view(self._cpos, min(INFLATE_CHUNK, self.end - self._cpos)).tobytes()
        self._cpos += len(data)
        if self._cpos >= self.end:
            self.ended = True
        return data

    def known_remaining(self) -> int:
        return self.end - self._cpos + len(self._buf) - self._i

    def skip(self, n: int) -> int:
        self.release()
        buffered = min(n, len(self._buf))
        del self._buf[:buffered]
        jump = min(n - buffered, self.end - self._cpos)
        self._cpos += jump
        self._buf_start += buffered + jump
        self.ended = self._cpos >= self.end
        return buffered + jump

    def _restart_at(self, pos: int) -> None:
        self._buf, self._buf_start, self._i = bytearray(), pos, 0
        self._cpos = self.start + pos
        self.ended = self._cpos >= self.end


# ------------------------------------------------------------------------------------ the framing
class _RecordFramer:
    """Records in one unit, each checked against its ``Content-Length``."""

    def __init__(self, unit: _Unit, limit: int, file_size: int) -> None:
        self.unit = unit
        self.limit = limit
        self.file_size = file_size
        self.member_offset = unit.offset if isinstance(unit, _GzipMember) else None
        self.reported_unit_failure = False
        # (searched from, no blank line starts before, first blank line's start, its end): unit positions
        self._blank_search = (0, 0, -1, -1)

    def records(self) -> Iterator[FramedRecord | Damage]:
        unit = self.unit
        while unit.skip_line_breaks():
            unit.release()
            if unit.fill(5) >= 5 and unit.ahead(0, 5) == b"WARC/":
                yield from self._record()
            elif (damage := self._garbage()) is not None:
                yield damage
        if unit.state != OK and not self.reported_unit_failure:
            yield self._unit_failure(unit.pos, None, None, None)

    # -- what the rows say
    def _offset(self, unit_pos: int) -> int:
        if self.member_offset is not None:
            return self.member_offset
        return self.unit.start + unit_pos  # type: ignore[attr-defined]

    def _where(self) -> str:
        return "gzip member" if self.member_offset is not None else "file"

    def _failure_detail(self) -> str:
        if self.unit.state == TRUNCATED:
            return f"gzip member cut off after offset {self.member_offset} ({self.file_size} bytes in file)"
        return f"gzip member at offset {self.member_offset} is corrupt: {self.unit.error}"

    def _unit_failure(self, pos: int, header: WarcHeader | None, present: int | None, head: bytes | None) -> Damage:
        self.reported_unit_failure = True
        if self.unit.state == TRUNCATED:
            reason = R.TRUNCATED_WARC
        else:
            reason = R.CORRUPT_RECORD if header is not None else R.CORRUPT_WARC
        return Damage(self._offset(pos), reason, self._failure_detail(), header, present, head)

    def _garbage(self) -> Damage | None:
        unit = self.unit
        start = unit.pos
        head = unit.ahead(0, HEAD_BYTES)
        unit.seek_record_start(at_line_start=False)
        size = unit.pos - start
        if not size:  # a gzip member starts right here
            return None
        if self.member_offset is not None:
            detail = f"{size} bytes in the gzip member at offset {self.member_offset} are not a WARC record"
        elif start == 0 and size == self.file_size:
            detail = f"no WARC record found in {size} bytes"
        else:
            detail = f"{size} bytes at offset {self._offset(start)} are neither a WARC record nor a gzip member"
        return Damage(self._offset(start), R.CORRUPT_WARC, detail, present_bytes=size, head=head)

    # -- one record
    def _record(self) -> Iterator[FramedRecord | Damage]:
        unit = self.unit
        start = unit.pos
        header = self._read_header()
        if header is None:
            yield self._unreadable_header(start)
            return
        length = header.content_length
        if length is None:
            detail = f"Content-Length {header.get('Content-Length')!r} is not a byte count"
            yield Damage(self._offset(start), R.BAD_CONTENT_LENGTH, detail, header, head=unit.ahead(0, HEAD_BYTES))
            unit.seek_record_start(at_line_start=True)
        elif length <= self.limit:
            yield self._small_record(start, header, length)
        else:
            yield self._large_record(start, header, length)

    def _read_header(self) -> WarcHeader | None:
        end = self._header_end()
        return None if end < 0 else WarcHeader(self.unit.take(end))

    def _header_end(self) -> int:
        """Length of the header at the read position through its blank line; -1 if there is none
        within MAX_HEADER_BYTES. The last search is remembered, so that a run of damaged headers (many
        ``WARC/1.`` lines, no blank line) costs one pass over the bytes, not one pass per line."""
        unit = self.unit
        start = unit.pos
        searched_from, clear_until, match_start, match_end = self._blank_search
        if start < searched_from:
            searched_from, clear_until, match_start, match_end = start, start, -1, -1
        if match_start >= start:  # no blank line between here and the one found before
            return match_end - start if match_end - start <= MAX_HEADER_BYTES else -1
        want = 4096
        while True:
            available = unit.fill(want)
            scan_end = min(available, MAX_HEADER_BYTES)
            match = unit.search_ahead(_BLANK_LINE, max(0, clear_until - start), scan_end + BLANK_LINE_MAX)
            if match is not None:
                self._blank_search = (searched_from, start + match[0], start + match[0], start + match[1])
                return match[1] if match[1] <= MAX_HEADER_BYTES else -1
            # No blank line starts before here (one starting later may still be cut off by `available`).
            clear_until = max(clear_until, start + min(scan_end, available - BLANK_LINE_MAX))
            self._blank_search = (searched_from, clear_until, -1, -1)
            if available < want or want >= MAX_HEADER_BYTES:
                return -1
            want = min(want * 4, MAX_HEADER_BYTES)

    def _unreadable_header(self, start: int) -> Damage:
        unit = self.unit
        head = unit.ahead(0, HEAD_BYTES)
        available = unit.fill(MAX_HEADER_BYTES)
        if available < MAX_HEADER_BYTES and unit.state != OK:
            damage = self._unit_failure(start, None, None, head)
        else:
            within = (
                f"within {MAX_HEADER_BYTES} bytes"
                if available >= MAX_HEADER_BYTES
                else (f"before the end of the {self._where()}")
            )
            detail = f"WARC header at offset {self._offset(start)} has no blank line {within}"
            damage = Damage(self._offset(start), R.CORRUPT_WARC, detail, head=head)
        unit.advance(1)
        unit.seek_record_start(at_line_start=False)
        return damage

    def _small_record(self, start: int, header: WarcHeader, length: int) -> FramedRecord | Damage:
        """A block of at most ``limit`` bytes: read it whole, then check what follows it."""
        unit = self.unit
        token = unit.pos  # everything from here stays buffered until the next record
        available = unit.fill(length + TRAILER_WINDOW)
        verdict = self._after_block(length) if available >= length else "short"
        if verdict is None:
            return FramedRecord(self._offset(start), header, length, header.raw + unit.take(length))
        head = unit.ahead(0, HEAD_BYTES)
        if verdict in (TRUNCATED, CORRUPT) or (verdict == "short" and unit.state != OK):
            unit.advance(available)
            return self._unit_failure(start, header, min(available, length), head)
        unit.restore(token)
        return self._misframed(start, header, length, min(available, length), head)

    def _large_record(self, start: int, header: WarcHeader, length: int) -> FramedRecord | Damage:
        """A block over ``limit`` bytes: stream past it, keeping only a checkpoint to come back to."""
        unit = self.unit
        unit.fill(HEAD_BYTES)
        head = unit.ahead(0, HEAD_BYTES)
        remaining = unit.known_remaining()
        if remaining is not None and length > remaining:  # no need to stream to the end to know
            return self._misframed(start, header, length, remaining, head)
        token = unit.checkpoint()
        skipped = unit.skip(length)
        verdict = "short"
        if skipped == length:
            unit.fill(TRAILER_WINDOW)
            verdict = self._after_block(0)
        if verdict is None:
            return FramedRecord(self._offset(start), header, length, None)
        if verdict in (TRUNCATED, CORRUPT) or (verdict == "short" and unit.state != OK):
            unit.skip(2**63)
            return self._unit_failure(start, header, skipped, head)
        unit.restore(token)
        return self._misframed(start, header, length, skipped, head)

    def _after_block(self, block_end: int) -> str | None:
        """None if the block ends where a record may end; else "misframed", TRUNCATED or CORRUPT."""
        tail = self.unit.ahead(block_end, block_end + TRAILER_WINDOW)
        rest = tail.lstrip(b"\r\n")
        if rest.startswith(b"WARC/"):
            return None
        if rest:
            return "misframed"
        if len(tail) == TRAILER_WINDOW:  # a long run of line breaks; what follows is checked as a record
            return None
        return None if self.unit.state == OK else self.unit.state

    def _misframed(self, start: int, header: WarcHeader, length: int, present: int, head: bytes) -> Damage:
        """The block does not end where Content-Length says: report it, resume at the next record."""
        unit = self.unit
        found = unit.seek_record_start(at_line_start=True)
        offset = self._offset(start)
        if unit.state != OK:
            return self._unit_failure(start, header, present, head)
        if not found and isinstance(unit, _Plain) and present < length and unit.end == self.file_size:
            detail = f"file ends {present} bytes into a block of Content-Length {length}"
            return Damage(offset, R.TRUNCATED_WARC, detail, header, present, head)
        if present < length:
            detail = f"Content-Length {length}, but the {self._where()} ends {present} bytes after the header"
        else:
            detail = f"Content-Length {length} does not end the record: neither a record nor the end follows"
        return Damage(offset, R.BAD_CONTENT_LENGTH, detail, header, present, head)


def _looks_like_record_member(source: _Source, offset: int) -> bool:
    """Whether a gzip header at ``offset`` starts a member that inflates to a WARC record (or nothing)."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    out = b""
    pos = offset
    while len(out) < 16 and pos < offset + INFLATE_CHUNK and not inflater.eof:
        data = source.view(pos, 4096)
        if not data:
            return False
        pos += len(data)
        try:
            out += inflater.decompress(data, 64)
        except zlib.error:
            return False
    text = out.lstrip(b"\r\n \t")
    return text.startswith(b"WARC/") or (inflater.eof and not text)


def _next_member(source: _Source, start: int) -> int:
    """Offset of the next gzip member at or after ``start`` that holds a record; the file size if none."""
    pos = start
    while (hit := source.find(GZIP_MAGIC, pos)) >= 0:
        if _looks_like_record_member(source, hit):
            return hit
        pos = hit + 1
    return source.size


def _single_record_member(source: _Source, offset: int, limit: int) -> tuple[FramedRecord, int] | None:
    """The usual member, one record of at most ``limit`` bytes, inflated in one go: the record and
    where the next member starts. None for anything else, which the general framing then reads."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    room = limit + MAX_HEADER_BYTES + TRAILER_WINDOW
    parts: list[bytes] = []
    pos, step = offset, FIRST_INPUT_STEP  # small first: zlib copies the input left over as unused_data
    while not inflater.eof and pos - offset < SINGLE_STEP_INPUT and room > 0:
        data = source.view(pos, step)
        if not data:
            return None
        try:
            parts.append(inflater.decompress(data, room))
        except zlib.error:
            return None
        room -= len(parts[-1])
        pos, step = pos + len(data), INFLATE_CHUNK
    out = parts[0] if len(parts) == 1 else b"".join(parts)
    if not inflater.eof or not out.startswith(b"WARC/"):
        return None
    blank_line = _BLANK_LINE.search(out, 0, MAX_HEADER_BYTES)
    if blank_line is None:
        return None
    header = WarcHeader(out[: blank_line.end()])
    length = header.content_length
    if length is None or length > limit or len(out) < blank_line.end() + length:
        return None
    if out[blank_line.end() + length :].strip(b"\r\n"):  # a second record, or bytes that are none
        return None
    return FramedRecord(offset, header, length, out), pos - len(inflater.unused_data)


def iter_framed_records(stream: BinaryIO, limit: int) -> Iterator[FramedRecord | Damage]:
    """Every record of a seekable WARC stream, or the damage found in its place, in file order.

    ``limit`` is the largest block read into memory; longer blocks come back with ``block=None``.
    """
    source = _Source(stream)
    if source.size == 0:
        yield Damage(0, R.CORRUPT_WARC, "empty WARC file")
    pos = 0
    while pos < source.size:
        if source.view(pos, len(GZIP_MAGIC)) == GZIP_MAGIC:
            if (single := _single_record_member(source, pos, limit)) is not None:
                record, pos = single
                yield record
                continue
            member = _GzipMember(source, pos)
            yield from _RecordFramer(member, limit, source.size).records()
            if member.state == OK and member.compressed_end is not None:
                pos = member.compressed_end
            else:  # the damaged member may have been inflated into the next ones: search from its start
                pos = _next_member(source, pos + 1)
        else:  # an uncompressed WARC, or bytes that are not a gzip member
            plain = _Plain(source, pos, source.size)
            yield from _RecordFramer(plain, limit, source.size).records()
            pos = plain.end


def seekable(stream: BinaryIO) -> BinaryIO:
    """``stream`` itself if it can seek, else a temporary file holding the rest of it."""
    if stream.seekable():
        return stream
    spooled = tempfile.TemporaryFile(prefix="dataplatform-warc-")  # noqa: SIM115 - the caller closes it
    shutil.copyfileobj(stream, spooled, READ_BLOCK)
    spooled.seek(0)
    return spooled  # type: ignore[return-value]
