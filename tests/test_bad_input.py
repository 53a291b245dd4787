"""Bad input is counted and quarantined with a reason; it never kills the run."""

import gzip
import io

import pytest
from warc_factory import ENGLISH, html_page, http_response, warc_record

from dataplatform.core import drop_reasons as R
from dataplatform.core.html_extraction import extract_document
from dataplatform.core.warc_records import WarcReadOptions, WarcReadStats, iter_raw_page_batches


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


def page(url: str) -> bytes:
    return warc_record(url, http_response(html_page("T", [ENGLISH])))


def test_truncated_gzip_keeps_records_before_the_cut():
    data = b"".join(page(f"https://a.example/{i}") for i in range(4))
    pages, quarantine, _ = read(data[:-40])
    assert [p["url"] for p in pages] == [f"https://a.example/{i}" for i in range(3)]
    assert [q["reason"] for q in quarantine] == [R.TRUNCATED_WARC]
    assert "cut off" in quarantine[0]["detail"]


@pytest.mark.parametrize("cut", [10, 100, 300])
def test_cut_inside_first_record(cut):
    pages, quarantine, _ = read(page("https://a.example/x")[:cut])
    assert pages == []
    assert [q["reason"] for q in quarantine] == [R.TRUNCATED_WARC]


def test_binary_garbage_and_empty_files_are_corrupt_not_fatal():
    for data in (b"\x00\x01garbage" * 50, b"", gzip.compress(b"not a warc at all", mtime=0)[:5] + b"\xff" * 20):
        pages, quarantine, _ = read(data)
        assert pages == []
        assert [q["reason"] for q in quarantine] in ([R.CORRUPT_WARC], [R.TRUNCATED_WARC])


def test_fifty_megabyte_payload_is_quarantined_without_reading_it():
    huge = warc_record("https://a.example/huge", http_response(b"<p>" + b"a" * (50 * 1024 * 1024) + b"</p>"), digest=False)
    pages, quarantine, stats = read(page("https://a.example/ok") + huge + page("https://a.example/after"))
    assert [p["url"] for p in pages] == ["https://a.example/ok", "https://a.example/after"]
    assert [(q["url"], q["reason"]) for q in quarantine] == [("https://a.example/huge", R.OVERSIZED_PAYLOAD)]
    assert quarantine[0]["payload_bytes"] > 50 * 1024 * 1024


def test_non_http_empty_and_status_records():
    records = [
        warc_record("https://a.example/plain", b"just some bytes, no status line"),
        warc_record("https://a.example/empty", http_response(b"")),
        warc_record("https://a.example/moved", http_response(b"", status="301 Moved Permanently")),
        warc_record("https://a.example/pdf", http_response(b"%PDF-1.4", content_type="application/pdf")),
        warc_record(
            "https://a.example/req",
            b"GET / HTTP/1.1\r\n\r\n",
            warc_type="request",
            content_type="application/http; msgtype=request",
        ),
    ]
    pages, quarantine, stats = read(b"".join(records))
    assert pages == []
    assert {q["url"]: q["reason"] for q in quarantine} == {
        "https://a.example/plain": R.NON_HTTP,
        "https://a.example/empty": R.EMPTY_PAYLOAD,
        "https://a.example/moved": R.HTTP_STATUS,
        "https://a.example/pdf": R.NON_HTML,
    }
    assert stats.skipped == {"request": 1}


def test_undecodable_charsets():
    bogus = extract_document(b"\xff\xfe\xfa\xfb" * 50 + b"<p>hello</p>", "text/html; charset=x-klingon")
    assert bogus.drop_reason == R.UNDECODABLE_CHARSET and "x-klingon" in bogus.detail
    broken_utf8 = extract_document(b"<p>" + b"\xc3\x28\xa0\xa1" * 100 + b"</p>", "text/html; charset=utf-8")
    assert broken_utf8.drop_reason == R.UNDECODABLE_CHARSET
    # A correctly declared legacy charset decodes.
    latin = extract_document(
        "<title>Café</title><p>Le café est très bon aujourd'hui.</p>".encode("latin-1"), "text/html; charset=iso-8859-1"
    )
    assert latin.drop_reason is None and latin.title == "Café" and "très" in latin.text
    # Nothing declared: the meta tag decides, as in a browser.
    meta = extract_document('<meta charset="windows-1251"><p>Привет, мир. Это тест.</p>'.encode("cp1251"), "text/html")
    assert meta.drop_reason is None and "Привет" in meta.text


def test_page_without_text():
    empty = extract_document(b"<html><body><script>var a=1;</script></body></html>", "text/html")
    assert empty.drop_reason == R.EMPTY_TEXT
