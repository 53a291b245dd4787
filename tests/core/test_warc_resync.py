"""The WARC reader resumes at the next record after a damaged one (issue 11, items 5-7).

Every test reads real WARC bytes (gzip member per record, as Common Crawl writes them, or an
uncompressed ``.warc``) with one record broken in a way seen in the wild or in a mutation fuzz, and
asserts what a user of ``raw_pages`` depends on: every other record comes out as a page, and the
broken one is quarantined with a reason, never silently dropped and never a crash.
"""

from __future__ import annotations

import gzip
import io

import pyarrow as pa
import pytest
from warc_factory import ENGLISH, html_page, http_response, raw_warc_record, warc_record

from dataplatform.core import drop_reasons as R
from dataplatform.core.schemas import QUARANTINE
from dataplatform.core.warc_records import WarcReadOptions, WarcReadStats, iter_raw_page_batches

URLS = [f"https://a.example/page-{i}" for i in range(5)]
BAD_URL = "https://a.example/bad"


def read(data: bytes, **options):
    stats = WarcReadStats()
    out = list(
        iter_raw_page_batches(
            io.BytesIO(data), snapshot="S", warc_file="f.warc.gz", options=WarcReadOptions(**options), stats=stats
        )
    )
    pages = [row for kind, batch in out if kind == "pages" for row in batch.to_pylist()]
    quarantine = [row for kind, batch in out if kind == "quarantine" for row in batch.to_pylist()]
    return pages, quarantine, stats


def page_block(url: str) -> bytes:
    return http_response(html_page(url.rsplit("/", 1)[-1], [ENGLISH]))


def members(urls=URLS) -> list[bytes]:
    return [warc_record(url, page_block(url)) for url in urls]


def with_bad_record_after(first: int, bad: bytes, *, compressed: bool = True) -> bytes:
    """``URLS`` as one WARC file with ``bad`` inserted after the first ``first`` records."""
    make = warc_record if compressed else raw_warc_record
    good = [make(url, page_block(url)) for url in URLS]
    return b"".join(good[:first]) + bad + b"".join(good[first:])


@pytest.mark.parametrize("where", ["start", "middle", "end", "everywhere"])
def test_empty_gzip_member_does_not_end_the_file(where):
    # Item 5: an empty member (0 bytes of content, valid gzip) used to stop the reader: 1 page of 5.
    empty = gzip.compress(b"", mtime=0)
    parts = members()
    if where == "start":
        data = empty + b"".join(parts)
    elif where == "middle":
        data = b"".join(parts[:1]) + empty + b"".join(parts[1:])
    elif where == "end":
        data = b"".join(parts) + empty
    else:
        data = empty + empty.join(parts) + empty
    pages, quarantine, stats = read(data)
    assert [p["url"] for p in pages] == URLS
    assert quarantine == []  # an empty member holds no record: nothing was lost, nothing to report
    assert stats.pages == 5


@pytest.mark.parametrize("extra", [5, 10_000, 1_000_000, 2**40, 2**63 - 1])
def test_overlong_content_length_in_a_member_is_quarantined_and_the_rest_kept(extra):
    # Item 6: the over-long record used to swallow every record after it.
    block = page_block(BAD_URL)
    bad = gzip.compress(raw_warc_record(BAD_URL, block, content_length=len(block) + extra), mtime=0)
    pages, quarantine, stats = read(with_bad_record_after(2, bad))
    assert [p["url"] for p in pages] == URLS
    assert [(q["url"], q["reason"]) for q in quarantine] == [(BAD_URL, R.BAD_CONTENT_LENGTH)]
    assert str(len(block) + extra) in quarantine[0]["detail"]
    assert quarantine[0]["warc_record_id"] is not None
    assert stats.quarantined == {R.BAD_CONTENT_LENGTH: 1}


@pytest.mark.parametrize("extra", [5, 10_000, 2**40, 2**63 - 1])
def test_overlong_content_length_in_an_uncompressed_warc_resyncs_at_the_next_warc_line(extra):
    block = page_block(BAD_URL)
    bad = raw_warc_record(BAD_URL, block, content_length=len(block) + extra)
    pages, quarantine, _ = read(with_bad_record_after(2, bad, compressed=False))
    assert [p["url"] for p in pages] == URLS
    assert [(q["url"], q["reason"]) for q in quarantine] == [(BAD_URL, R.BAD_CONTENT_LENGTH)]


@pytest.mark.parametrize("compressed", [True, False])
@pytest.mark.parametrize("shorter", [1, 40, 300])
def test_short_content_length_is_quarantined_not_kept_as_half_a_page(compressed, shorter):
    block = page_block(BAD_URL)
    raw = raw_warc_record(BAD_URL, block, content_length=len(block) - shorter, digest=False)
    bad = gzip.compress(raw, mtime=0) if compressed else raw
    pages, quarantine, _ = read(with_bad_record_after(3, bad, compressed=compressed))
    assert [p["url"] for p in pages] == URLS
    assert [(q["url"], q["reason"]) for q in quarantine] == [(BAD_URL, R.BAD_CONTENT_LENGTH)]


@pytest.mark.parametrize("value", ["", "abc", "-5", "12 34", "0x10"])
def test_missing_or_unparseable_content_length(value):
    block = page_block(BAD_URL)
    raw = raw_warc_record(BAD_URL, block, content_length=value)
    if not value:
        raw = raw.replace(b"Content-Length: \r\n", b"")
    pages, quarantine, _ = read(with_bad_record_after(1, gzip.compress(raw, mtime=0)))
    assert [p["url"] for p in pages] == URLS
    assert [(q["url"], q["reason"]) for q in quarantine] == [(BAD_URL, R.BAD_CONTENT_LENGTH)]


@pytest.mark.parametrize("declared", [2**63, 2**63 + 12345, 2**64 - 1, 10**30])
@pytest.mark.parametrize("compressed", [True, False])
def test_content_length_beyond_int64_is_quarantined_not_a_crash(declared, compressed):
    # Item 7: 2**63 .. 2**64-1 raised OverflowError while writing the int64 payload_bytes column.
    bad_raw = raw_warc_record(BAD_URL, page_block(BAD_URL), content_length=declared)
    bad = gzip.compress(bad_raw, mtime=0) if compressed else bad_raw
    pages, quarantine, _ = read(with_bad_record_after(2, bad, compressed=compressed))
    assert [p["url"] for p in pages] == URLS
    assert [(q["url"], q["reason"]) for q in quarantine] == [(BAD_URL, R.BAD_CONTENT_LENGTH)]
    assert str(declared) in quarantine[0]["detail"]
    assert 0 <= quarantine[0]["payload_bytes"] < 2**63
    pa.Table.from_pylist(quarantine, schema=QUARANTINE)  # what the stage writes


def test_legitimately_large_record_is_still_oversized_and_skipped_without_reading():
    big = http_response(b"<p>" + b"a" * (3 * 1024 * 1024) + b"</p>")
    pages, quarantine, _ = read(with_bad_record_after(2, warc_record(BAD_URL, big, digest=False)), max_payload_bytes=1024 * 1024)
    assert [p["url"] for p in pages] == URLS
    assert [(q["url"], q["reason"], q["payload_bytes"]) for q in quarantine] == [(BAD_URL, R.OVERSIZED_PAYLOAD, len(big))]


@pytest.mark.parametrize("position", [2, 5])
@pytest.mark.parametrize("damage", ["bit_flip", "cut_member", "garbage_between", "lost_magic"])
def test_damaged_gzip_member_costs_only_its_own_record(damage, position):
    # Item 9 in miniature: one damaged member used to end the file (everything after it lost), and
    # the complete page read just before it was relabelled quarantine:truncated_warc.
    parts = members()
    bad = bytearray(warc_record(BAD_URL, page_block(BAD_URL)))
    if damage == "bit_flip":
        bad[len(bad) // 2] ^= 0x10
    elif damage == "cut_member":
        bad = bad[: len(bad) // 2]
    elif damage == "garbage_between":
        bad = bytearray(b"\x00garbage\xff" * 30) + bad
    else:
        bad[0] = 0x00
    pages, quarantine, _ = read(b"".join(parts[:position]) + bytes(bad) + b"".join(parts[position:]))
    expected = URLS + ([BAD_URL] if damage == "garbage_between" else [])
    assert sorted(p["url"] for p in pages) == sorted(expected)
    assert quarantine, "the damaged bytes must be counted, not silently skipped"
    assert {q["reason"] for q in quarantine} <= {R.CORRUPT_RECORD, R.CORRUPT_WARC, R.TRUNCATED_WARC}
    assert all(q["url"] in (None, BAD_URL) for q in quarantine)


def test_complete_pages_before_a_cut_are_not_relabelled_truncated():
    # Item 9: the last complete page before a cut-off member used to become quarantine:truncated_warc.
    data = b"".join(members())
    cut = data[: len(data) - 30]
    pages, quarantine, _ = read(cut)
    assert [p["url"] for p in pages] == URLS[:4]
    assert [(q["url"], q["reason"]) for q in quarantine] == [(URLS[4], R.TRUNCATED_WARC)]
    assert "cut off" in quarantine[0]["detail"]


def test_two_records_in_one_member_and_a_record_after_them():
    # Some writers compress several records (or a whole file) as one gzip member.
    good = [raw_warc_record(url, page_block(url)) for url in URLS]
    block = page_block(BAD_URL)
    bad = raw_warc_record(BAD_URL, block, content_length=len(block) + 5000)
    data = gzip.compress(good[0] + good[1] + bad + good[2] + good[3], mtime=0) + warc_record(URLS[4], page_block(URLS[4]))
    pages, quarantine, _ = read(data)
    assert [p["url"] for p in pages] == URLS
    assert [(q["url"], q["reason"]) for q in quarantine] == [(BAD_URL, R.BAD_CONTENT_LENGTH)]


def test_a_warc_path_that_cannot_be_opened_is_quarantined_not_a_crash(tmp_path):
    # Item 12: a symlink loop under the crawl root. The listing skips such entries; a path that
    # reaches the reader anyway (a warc.paths.gz naming it) costs that file, not the run.
    loop = tmp_path / "loop.warc.gz"
    loop.symlink_to(loop.name)
    stats = WarcReadStats()
    out = list(iter_raw_page_batches(str(loop), snapshot="S", warc_file="loop.warc.gz", stats=stats))
    rows = [row for _, batch in out for row in batch.to_pylist()]
    assert [(r["reason"], r["warc_offset"]) for r in rows] == [(R.CORRUPT_WARC, None)]
    assert "symbolic links" in rows[0]["detail"]
