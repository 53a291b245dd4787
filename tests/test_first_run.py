"""A first run on any input succeeds: `dataplatform process` on a handful of pages, an empty WARC,
a WARC with no HTML and a WET file exits 0, writes its (possibly empty) output and says which
quality model scored the data."""

from __future__ import annotations

import gzip

import polars as pl
import pytest
from warc_factory import ENGLISH, html_page, http_response, warc_record

from dataplatform.cli import main
from dataplatform.io.datasets import DatasetStore


def _write(path, records: list[bytes]) -> str:
    path.write_bytes(b"".join(records))
    return str(path)


def _pages(n: int) -> list[bytes]:
    return [
        warc_record(f"https://first.example/{i}", http_response(html_page(f"Page {i}", [ENGLISH, f"Item number {i}."])))
        for i in range(n)
    ]


def _process(tmp_path, files: list[str], capsys, *extra: str) -> tuple[int, str, pl.DataFrame | None]:
    out = tmp_path / "out"
    code = main(["process", *files, "--output", str(out), "--snapshot", "CC-FIRST-01", "--workers", "1", *extra])
    printed = capsys.readouterr()
    parquet = out / "CC-FIRST-01.parquet"
    return code, printed.out + printed.err, pl.read_parquet(parquet) if parquet.exists() else None


def test_a_handful_of_pages_uses_the_shipped_classifier_and_says_so(tmp_path, capsys):
    code, output, rows = _process(tmp_path, [_write(tmp_path / "few.warc.gz", _pages(3))], capsys)
    assert code == 0, output
    assert rows is not None and rows.height == 3
    assert "quality scores from quality-default-" in output and "shipped default" in output
    scored = rows.filter(pl.col("quality_score").is_not_null())
    assert scored.height == rows.filter(pl.col("drop_reason").is_null() | pl.col("drop_reason").str.starts_with("quality")).height
    store = DatasetStore.local(tmp_path / "out")
    assert store.require_manifest("quality_classifier", "unpartitioned")["metadata"]["source"] == "default"


def test_empty_warc_gives_empty_output(tmp_path, capsys):
    empty = tmp_path / "empty.warc.gz"
    empty.write_bytes(b"")
    code, output, rows = _process(tmp_path, [str(empty)], capsys)
    assert code == 0, output
    assert rows is not None and rows.height == 0
    assert "quarantine:" in output  # the empty file is counted, not silently skipped


def test_warc_without_html_gives_empty_output_and_counts_every_record(tmp_path, capsys):
    records = [
        warc_record(f"https://img.example/{i}.png", http_response(b"\x89PNG" + bytes(50), content_type="image/png"))
        for i in range(4)
    ]
    code, output, rows = _process(tmp_path, [_write(tmp_path / "images.warc.gz", records)], capsys)
    assert code == 0, output
    assert rows is not None and rows.height == 0
    quarantine = DatasetStore.local(tmp_path / "out").read_frame("documents", "CC-FIRST-01", "quarantine")
    assert quarantine["reason"].to_list() == ["quarantine:non_html"] * 4


def test_wet_file_is_processed_without_error(tmp_path, capsys):
    text = (ENGLISH + "\n").encode()
    records = [warc_record(f"https://wet.example/{i}", text, warc_type="conversion", content_type="text/plain") for i in range(3)]
    wet = tmp_path / "CC-MAIN-x.warc.wet.gz"
    code, output, rows = _process(tmp_path, [_write(wet, records)], capsys)
    assert code == 0, output
    assert rows is not None
    quarantine = DatasetStore.local(tmp_path / "out").read_frame("documents", "CC-FIRST-01", "quarantine")
    assert quarantine.height == 3 and set(quarantine["reason"]) == {"quarantine:non_http"}


@pytest.mark.parametrize("bad", ["nested", "not-json"])
def test_bad_benchmark_file_fails_before_any_page_is_read(tmp_path, capsys, bad):
    bench = tmp_path / "bench.jsonl"
    line = "[" * 100_000 if bad == "nested" else "{not json"
    bench.write_text('{"question": "fine item"}\n' + line + "\n")
    code, output, rows = _process(tmp_path, [_write(tmp_path / "few.warc.gz", _pages(2))], capsys, "--benchmarks", str(bench))
    assert code == 2 and rows is None
    assert "bench.jsonl" in output and "line 2" in output
    assert not (tmp_path / "out" / "documents").exists()


def test_gzip_member_of_only_padding_is_not_a_crash(tmp_path, capsys):
    files = [_write(tmp_path / "a.warc.gz", _pages(2)), _write(tmp_path / "b.warc.gz", [gzip.compress(b"", mtime=0)])]
    code, output, rows = _process(tmp_path, files, capsys)
    assert code == 0, output
    assert rows is not None and rows.height == 2


def test_a_listed_warc_that_cannot_be_read_is_quarantined_not_fatal(tmp_path):
    """A key from a warc.paths.gz listing that is a symlink loop: one quarantine row, the run goes on."""
    from dataplatform.execution.shard_executor import InlineExecutor
    from dataplatform.io.crawl_sources import CrawlSource
    from dataplatform.io.object_store import LocalLocation
    from dataplatform.stages.ingest import materialize_documents_from_warcs

    _write(tmp_path / "a.warc.gz", _pages(2))
    (tmp_path / "loop.warc.gz").symlink_to(tmp_path / "loop.warc.gz")
    store = DatasetStore.local(tmp_path / "out")
    report = materialize_documents_from_warcs(
        CrawlSource(LocalLocation(str(tmp_path))), ["a.warc.gz", "loop.warc.gz"], store, "CC-FIRST-01", InlineExecutor()
    )
    assert report.rows_out == 2
    quarantine = store.read_frame("documents", "CC-FIRST-01", "quarantine")
    assert quarantine.filter(pl.col("warc_file") == "loop.warc.gz")["reason"].to_list() == ["quarantine:corrupt_warc"]
