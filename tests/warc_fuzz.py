"""Seeded mutation fuzz of the WARC reader on real WARC files: the mutants and the oracle.

Used by ``tests/core/test_warc_fuzz.py`` (a few hundred mutants) and
``benchmarks/fuzz_warc_reader.py`` (thousands, with peak memory).

The oracle. Common Crawl's writers (and warcio's, wget's, ...) put one record in each gzip
member. A mutant changes the bytes of exactly one member ``k`` (or inserts bytes between two
members, or cuts the file inside member ``k``); every other member is *intact*, byte for byte.
For every intact member the reader must behave exactly as on the unmutated file:

* the framing layer yields the same record (WARC header bytes and block) at the member's offset,
  shifted by the mutant's change in length for the members after the damage; skipped record types
  (request, warcinfo, metadata) are checked here too;
* the reader yields the same ``raw_pages`` / quarantine rows for it (every column but the offset).

An intact member that does not come out so is *lost* (missing) or *changed*; output at an offset
that is neither an intact member's nor inside the damaged span is *spurious*. One exception: when
the damaged bytes end with a partial gzip header that the next member's header completes (a member
cut after 4 bytes that set FNAME, so that the next header becomes the file name), the next member
is read, unchanged, as a gzip member that starts inside the damaged span; it counts as intact at
that offset, and the damaged bytes, now part of a valid gzip header, need no row of their own.

The damaged span itself must be accounted for: at least one page, quarantine row with a reason, or
counted skip (a damaged request record) must come from it, unless its bytes still inflate to the
original record (then it is intact and checked as above) or it only inserts an empty gzip member
or line breaks. Otherwise it is *silent damage*. When the file is cut, the members after the cut
are gone and are not expected. Exceptions are *crashes*; a mutant that takes longer than the time
limit is a *hang*.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import random
import re
import signal
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator

from dataplatform.core import drop_reasons as R
from dataplatform.core.warc_framing import Damage, iter_framed_records
from dataplatform.core.warc_records import WarcReadOptions, iter_raw_page_batches

# Rows for damage carry offsets and file sizes in their detail; those change with the mutant.
_POSITIONAL_REASONS = {R.TRUNCATED_WARC, R.CORRUPT_WARC, R.CORRUPT_RECORD, R.BAD_CONTENT_LENGTH}


def split_members(data: bytes) -> list[bytes]:
    """The gzip members of a WARC file, in order (a member cut off by the end of the file included)."""
    out, pos = [], 0
    while pos < len(data):
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            inflater.decompress(data[pos:])
        except zlib.error:
            out.append(data[pos:])
            break
        end = len(data) - len(inflater.unused_data) if inflater.eof else len(data)
        out.append(data[pos:end])
        pos = end
    return out


def inflate(member: bytes, max_length: int = 0) -> bytes | None:
    """The content of a complete, valid gzip member (of at most ``max_length`` bytes if given), else None."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        out = inflater.decompress(member, max_length)
    except zlib.error:
        return None
    return out if inflater.eof and not inflater.unused_data else None


# ------------------------------------------------------------------------------------- mutations
@dataclasses.dataclass(frozen=True)
class Mutant:
    label: str
    members: list[bytes]  # the unmutated window of members
    k: int  # the member that is damaged (or before which bytes are inserted)
    span: bytes  # what replaces members[k] (for an insertion: the inserted bytes + members[k])
    inserted: bool = False  # span = new bytes + members[k]; members[k] stays intact
    cut: bool = False  # the file ends inside the span

    @property
    def data(self) -> bytes:
        tail = b"" if self.cut else b"".join(self.members[self.k + 1 :])
        return b"".join(self.members[: self.k]) + self.span + tail


def _recompress(content: bytes) -> bytes:
    return gzip.compress(content, compresslevel=6, mtime=0)


def _set_content_length(content: bytes, value: str | None) -> bytes:
    """``content`` with its Content-Length header line replaced by ``value`` (removed if None)."""
    header_end = content.find(b"\r\n\r\n")
    if header_end < 0:
        return content
    head, rest = content[: header_end + 2], content[header_end + 2 :]
    line = b"" if value is None else f"Content-Length: {value}\r\n".encode()
    return re.sub(rb"(?im)^content-length:[^\r\n]*\r\n", lambda _: line, head, count=1) + rest


def _flip_bits(rng: random.Random, data: bytes, count: int) -> bytes:
    out = bytearray(data)
    for _ in range(count):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def _content_mutations(rng: random.Random, content: bytes) -> tuple[str, bytes]:
    """Damage the record inside the member and compress it again (a writer bug, not bit rot)."""
    declared = re.search(rb"(?im)^content-length:\s*(\d+)", content)
    length = int(declared.group(1)) if declared else len(content)
    choice = rng.randrange(11)
    if choice == 0:
        delta = rng.choice([rng.randint(-300, -1), rng.randint(5, 300), 10_000, 1_000_000])
        return f"content_length{delta:+d}", _set_content_length(content, str(max(0, length + delta)))
    if choice == 1:
        value = rng.choice([2**31, 2**32 + 7, 2**63 - 1, 2**63, 2**64 - 1, 10**30])
        return f"content_length={value}", _set_content_length(content, str(value))
    if choice == 2:
        value = rng.choice(["", "abc", "-1", " 12 34", "0x10", "9" * 40])
        return f"content_length={value!r}", _set_content_length(content, value)
    if choice == 3:
        return "content_length_removed", _set_content_length(content, None)
    if choice == 4:
        return "version_line_damaged", content.replace(b"WARC/1.", rng.choice([b"WARX/1.", b"W\x00RC/1.", b"warc/1."]), 1)
    if choice == 5:
        return "blank_line_after_header_removed", content.replace(b"\r\n\r\n", b"\r\n", 1)
    if choice == 6:
        body_start = content.find(b"\r\n\r\n") + 4
        cut = rng.randrange(body_start, len(content)) if body_start < len(content) else len(content)
        return "block_cut", content[:cut]
    if choice == 7:
        return "garbage_appended", content + rng.randbytes(rng.randint(1, 400))
    if choice == 8:
        return "two_records_in_member", content + content
    if choice == 9:
        return "block_byte_flipped", _flip_bits(rng, content, 1) if content else content
    size, filler = rng.choice([1000, 70_000, 2_000_000]), rng.choice([b"\x00", b"\r\n"])
    return f"padding_appended_{filler!r}", content + (filler * size)[:size]


def mutate(rng: random.Random, members: list[bytes], k: int) -> Mutant:
    member = members[k]
    choice = rng.randrange(12)
    if choice == 0:
        return Mutant(f"flip_{(n := rng.randint(1, 8))}_bits", members, k, _flip_bits(rng, member, n))
    if choice == 1:
        start, size = rng.randrange(len(member)), rng.randint(1, 64)
        return Mutant("zero_run", members, k, member[:start] + bytes(len(member[start : start + size])) + member[start + size :])
    if choice == 2:
        return Mutant("member_truncated", members, k, member[: rng.randrange(1, max(2, len(member)))])
    if choice == 3:
        return Mutant("file_cut", members, k, member[: rng.randrange(1, max(2, len(member)))], cut=True)
    if choice == 4:
        garbage = rng.choice(
            [
                rng.randbytes(rng.randint(1, 300)),
                b"\x1f\x8b\x08" + rng.randbytes(40),
                b"WARC/1.0\r\nContent-Length: 99999\r\n\r\n",
                b"\r\n" * 7,
                bytes(rng.randint(1, 100)),
            ]
        )
        return Mutant("garbage_inserted", members, k, garbage + member, inserted=True)
    if choice == 5:
        return Mutant("empty_member_inserted", members, k, gzip.compress(b"", mtime=0) + member, inserted=True)
    if choice == 6:
        other = members[rng.randrange(len(members))]
        return Mutant("spliced", members, k, member[: rng.randrange(len(member))] + other[rng.randrange(len(other)) :])
    if choice == 7:
        header = bytearray(member)
        header[3] ^= 1 << rng.randrange(5)  # FTEXT/FHCRC/FEXTRA/FNAME/FCOMMENT
        return Mutant("gzip_flags_flipped", members, k, bytes(header))
    if choice == 8:
        return Mutant("member_duplicated", members, k, member + member)
    content = inflate(member)
    if content is None:  # a member that was already cut off: damage its bytes instead
        return Mutant("flip_1_bits", members, k, _flip_bits(rng, member, 1))
    label, mutated = _content_mutations(rng, content)
    return Mutant(label, members, k, _recompress(mutated))


# ---------------------------------------------------------------------------------------- oracle
def _framing_by_offset(data: bytes, limit: int) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = defaultdict(list)
    for item in iter_framed_records(io.BytesIO(data), limit):
        if isinstance(item, Damage):
            out[item.offset].append(("damage", item.reason, item.header.raw if item.header else None))
        else:
            out[item.offset].append(("record", item.header.raw, item.block, item.block_length))
    return out


def _rows_by_offset(data: bytes, options: WarcReadOptions) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = defaultdict(list)
    for kind, batch in iter_raw_page_batches(io.BytesIO(data), snapshot="S", warc_file="f.warc.gz", options=options):
        for row in batch.to_pylist():
            offset = row.pop("warc_offset")
            if row.get("reason") in _POSITIONAL_REASONS:
                row.pop("detail")
            out[offset].append((kind, tuple(sorted(row.items()))))
    return out


@dataclasses.dataclass
class Verdict:
    label: str
    lost: int = 0  # intact members missing or changed
    spurious: int = 0  # rows at no intact member and outside the damaged span
    silent_damage: int = 0  # a damaged span that yielded no row at all
    crash: str | None = None
    hang: bool = False
    seconds: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list)


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


def judge(
    mutant: Mutant, options: WarcReadOptions, baseline: Callable[[bytes], tuple[dict, dict]], time_limit: float = 60.0
) -> Verdict:
    """Read ``mutant`` and compare every intact member with the unmutated window (see module doc)."""
    verdict = Verdict(mutant.label)
    base_framing, base_rows = baseline(b"".join(mutant.members))
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    started = time.perf_counter()
    try:
        framing = _framing_by_offset(mutant.data, options.max_payload_bytes)
        rows = _rows_by_offset(mutant.data, options)
    except _Timeout:
        verdict.hang = True
        return verdict
    except Exception as exc:  # noqa: BLE001 - any exception is the finding
        verdict.crash = f"{type(exc).__name__}: {exc}"
        return verdict
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        verdict.seconds = time.perf_counter() - started
    _compare(mutant, verdict, base_framing, base_rows, framing, rows)
    return verdict


def _expected_offsets(mutant: Mutant) -> Iterator[tuple[int, int]]:
    """(offset in the unmutated window, offset in the mutant) of every intact member."""
    starts = [0]
    for member in mutant.members:
        starts.append(starts[-1] + len(member))
    shift = len(mutant.span) - len(mutant.members[mutant.k])
    for j in range(len(mutant.members)):
        if j < mutant.k:
            yield starts[j], starts[j]
        elif j == mutant.k and mutant.inserted:
            yield starts[j], starts[j] + shift
        elif j == mutant.k and _same_record(mutant.span, mutant.members[j]):
            yield starts[j], starts[j]  # damaged bytes that still inflate to the same record: intact
        elif j > mutant.k and not mutant.cut:
            yield starts[j], starts[j] + shift


def _same_record(span: bytes, member: bytes) -> bool:
    """Whether damaged bytes still inflate to the member's record (inflating no more than that)."""
    original = inflate(member)
    return original is not None and inflate(span, len(original) + 1) == original


def _compare(mutant: Mutant, verdict: Verdict, base_framing: dict, base_rows: dict, framing: dict, rows: dict) -> None:
    span_start = sum(len(m) for m in mutant.members[: mutant.k])
    span_end = span_start + len(mutant.span) - (len(mutant.members[mutant.k]) if mutant.inserted else 0)
    expected = dict(_expected_offsets(mutant))
    intact_here = set(expected.values())
    merged_into_span = False
    for before, after in expected.items():
        same = framing.get(after, []) == base_framing.get(before, []) and rows.get(after, []) == base_rows.get(before, [])
        if not same and after >= span_end:
            # The damaged bytes may end with a partial gzip header that this member's header
            # completes (a cut member whose 4 bytes set FNAME: this member's header becomes the file
            # name); then its record is read, unchanged, from an offset inside the damaged span.
            merged = [
                o
                for o in framing
                if o is not None
                and span_start <= o < span_end
                and o not in intact_here
                and framing[o] == base_framing.get(before, [])
                and rows.get(o, []) == base_rows.get(before, [])
            ]
            if merged:
                intact_here.add(merged[0])
                merged_into_span = same = True
        if not same:
            verdict.lost += 1
            verdict.problems.append(f"intact member at {before} (now {after}): {base_rows.get(before)} -> {rows.get(after)}")
    for offset in set(rows) | set(framing):
        if offset not in intact_here and not (offset is not None and span_start <= offset < span_end):
            verdict.spurious += 1
            verdict.problems.append(f"output at unexpected offset {offset}: {rows.get(offset)} {framing.get(offset)}")
    # Every framed record in the damaged span is a page, a quarantine row or a counted skip; damage
    # is always a quarantine row. So the span is accounted for if framing found anything there.
    accounted = sum(
        len(items) for offset, items in framing.items() if span_start <= offset < span_end and offset not in intact_here
    )
    if (span_start in intact_here and not mutant.inserted) or merged_into_span:
        return  # the damaged bytes still inflate to the original record, or are part of a valid member
    if not accounted and not _inserted_nothing(mutant):
        verdict.silent_damage += 1
        verdict.problems.append(f"damaged span {span_start}-{span_end} yielded nothing")


def _inserted_nothing(mutant: Mutant) -> bool:
    """Inserted bytes that hold no data: an empty gzip member, or line breaks between members."""
    if not mutant.inserted:
        return False
    inserted = mutant.span[: len(mutant.span) - len(mutant.members[mutant.k])]
    return inserted == gzip.compress(b"", mtime=0) or not inserted.strip(b"\r\n \t")


def baseline_cache(options: WarcReadOptions) -> Callable[[bytes], tuple[dict, dict]]:
    cache: dict[bytes, tuple[dict, dict]] = {}

    def baseline(data: bytes) -> tuple[dict, dict]:
        if data not in cache:
            cache[data] = (_framing_by_offset(data, options.max_payload_bytes), _rows_by_offset(data, options))
        return cache[data]

    return baseline


def mutants(sources: dict[str, list[bytes]], count: int, seed: int, max_window: int = 16) -> Iterator[tuple[str, Mutant]]:
    """``count`` mutants over windows of up to ``max_window`` consecutive members of the sources."""
    rng = random.Random(seed)
    names = sorted(sources)
    for _ in range(count):
        name = rng.choice(names)
        members = sources[name]
        k = rng.randrange(len(members))
        first = max(0, k - rng.randint(0, max_window // 2))
        last = min(len(members), k + 1 + rng.randint(0, max_window // 2))
        yield name, mutate(rng, members[first:last], k - first)
