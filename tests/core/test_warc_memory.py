"""Memory stays bounded by the payload limit whatever a WARC inflates to (issue 11, item 8).

A gzip member of zeros inflates about 1000:1. Each case reads one such file in a fresh Python
process and compares that process's peak RSS after the read with its peak after reading a small
normal WARC, so the number is the reader's own growth, native buffers included.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from warc_factory import ENGLISH, gzip_bomb_record, html_page, http_response, warc_record

from dataplatform.core import drop_reasons as R

INFLATED = 128 * 1024 * 1024
LIMIT = 1024 * 1024
ALLOWED_GROWTH_MB = 48  # a few payload limits, read buffers and one Arrow batch; the old reader grew > 128

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from dataplatform.core.warc_records import WarcReadOptions, WarcReadStats, iter_raw_page_batches

    LIMIT = int(sys.argv[3])

    def read(path):
        stats = WarcReadStats()
        rows = []
        for kind, batch in iter_raw_page_batches(path, snapshot="S", warc_file="f",
                                                 options=WarcReadOptions(max_payload_bytes=LIMIT), stats=stats):
            rows += [(kind, r["url"], r.get("reason")) for r in batch.select(
                [c for c in ("url", "reason") if c in batch.schema.names]).to_pylist()]
        return rows

    read(sys.argv[1])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = read(sys.argv[2])
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_mb": (after - before) / 1024, "rows": rows}))
    """
)


def page(url: str) -> bytes:
    return warc_record(url, http_response(html_page("T", [ENGLISH])))


def run_child(tmp_path: Path, data: bytes) -> dict:
    small = tmp_path / "small.warc.gz"
    small.write_bytes(page("https://a.example/warm-up") * 3)
    bomb = tmp_path / "bomb.warc.gz"
    bomb.write_bytes(data)
    command = [sys.executable, "-c", CHILD, str(small), str(bomb), str(LIMIT)]
    out = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "case",
    [
        "declared_bomb_last",
        "declared_bomb_middle",
        "small_header_then_zeros",
        "small_header_then_line_breaks",
        "huge_content_length",
    ],
)
def test_gzip_bomb_does_not_grow_memory(tmp_path, case):
    before, after = page("https://a.example/before"), page("https://a.example/after")
    bomb_url, both = "https://a.example/bomb", ["https://a.example/before", "https://a.example/after"]
    if case == "declared_bomb_last":  # the old tail check inflated this last member in one call
        data = before + gzip_bomb_record(bomb_url, INFLATED)
        expected = (["https://a.example/before"], [(bomb_url, R.OVERSIZED_PAYLOAD)])
    elif case == "declared_bomb_middle":
        data = before + gzip_bomb_record(bomb_url, INFLATED) + after
        expected = (both, [(bomb_url, R.OVERSIZED_PAYLOAD)])
    elif case == "small_header_then_zeros":  # Content-Length says 100 bytes, the member holds 128 MiB
        data = before + gzip_bomb_record(bomb_url, INFLATED, content_length=100) + after
        expected = (both, [(bomb_url, R.BAD_CONTENT_LENGTH)])
    elif case == "small_header_then_line_breaks":  # a 100-byte record, then 128 MiB of padding to skip
        data = before + gzip_bomb_record(bomb_url, INFLATED, content_length=100, filler=b"\r\n") + after
        expected = (["https://a.example/before", bomb_url, "https://a.example/after"], [])
    else:
        data = before + gzip_bomb_record(bomb_url, INFLATED, content_length=2**64 - 1) + after
        expected = (both, [(bomb_url, R.BAD_CONTENT_LENGTH)])
    result = run_child(tmp_path, data)
    pages = [url for kind, url, _ in result["rows"] if kind == "pages"]
    quarantined = [(url, reason) for kind, url, reason in result["rows"] if kind == "quarantine"]
    assert (pages, quarantined) == expected
    assert result["growth_mb"] < ALLOWED_GROWTH_MB, result["growth_mb"]
