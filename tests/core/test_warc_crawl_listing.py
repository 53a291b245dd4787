"""Listing a crawl's WARC files: bounded work on hostile listings, no traceback on symlink loops.

Issue 11, item 8 (a 1.5 MB ``warc.paths.gz`` took 2.3 GB and 95 s) and item 12 (a symlink loop
under the crawl root gave a traceback).
"""

from __future__ import annotations

import gzip
import os
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from dataplatform.io.crawl_sources import PATHS_LISTING, CrawlListingError, CrawlSource
from dataplatform.io.object_store import LocalLocation

SNAPSHOT = "CC-MAIN-2024-10"


def crawl_root(tmp_path: Path) -> tuple[Path, Path]:
    snapshot_dir = tmp_path / "crawl-data" / SNAPSHOT
    warc_dir = snapshot_dir / "segments" / "0001" / "warc"
    warc_dir.mkdir(parents=True)
    (warc_dir / "a.warc.gz").write_bytes(b"")
    return tmp_path, snapshot_dir


def paths_listing_bomb(lines: int) -> bytes:
    """A gzip listing of ``lines`` copies of one path, compressed in steps (about 1000:1)."""
    line = f"crawl-data/{SNAPSHOT}/segments/0001/warc/a.warc.gz\n".encode()
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = line * 20_000
    parts = [compressor.compress(chunk) for _ in range(lines // 20_000)]
    return b"".join(parts) + compressor.flush()


def test_a_normal_listing_is_read(tmp_path):
    root, snapshot_dir = crawl_root(tmp_path)
    keys = [f"crawl-data/{SNAPSHOT}/segments/0001/warc/f-{i:05d}.warc.gz" for i in range(3)]
    (snapshot_dir / PATHS_LISTING).write_bytes(gzip.compress(("\n".join(reversed(keys)) + "\n").encode()))
    assert [f.key for f in CrawlSource(LocalLocation(str(root))).list_warc_files(SNAPSHOT)] == keys


@pytest.mark.parametrize("limit", [1024 * 1024, None])
def test_listing_that_inflates_past_the_limit_fails_fast_naming_the_file(tmp_path, limit):
    root, snapshot_dir = crawl_root(tmp_path)
    bomb = paths_listing_bomb(2_000_000)  # about 100 MB of text from well under 1 MB of gzip
    assert len(bomb) < 1024 * 1024
    (snapshot_dir / PATHS_LISTING).write_bytes(bomb)
    source = CrawlSource(LocalLocation(str(root)), **({"max_listing_bytes": limit} if limit else {}))
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(CrawlListingError, match=PATHS_LISTING) as err:
        source.list_warc_files(SNAPSHOT)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "max_listing_bytes" in str(err.value)
    assert isinstance(err.value, ValueError)  # the CLI reports ValueErrors as bad input, no traceback
    assert peak < 3 * (limit or CrawlSource.DEFAULT_MAX_LISTING_BYTES) + 16 * 1024 * 1024
    assert seconds < 30


def test_corrupt_listing_is_a_clear_error(tmp_path):
    root, snapshot_dir = crawl_root(tmp_path)
    (snapshot_dir / PATHS_LISTING).write_bytes(gzip.compress(b"crawl-data/x.warc.gz\n")[:-12] + b"\xff" * 12)
    with pytest.raises(CrawlListingError, match=PATHS_LISTING):
        CrawlSource(LocalLocation(str(root))).list_warc_files(SNAPSHOT)


def test_symlink_loops_under_the_crawl_root_do_not_break_listing(tmp_path):
    root, snapshot_dir = crawl_root(tmp_path)
    segment = snapshot_dir / "segments" / "0001"
    os.symlink("..", segment / "loop-to-parent")
    os.symlink("b", segment / "a")
    os.symlink("a", segment / "b")
    os.symlink("self.warc.gz", segment / "warc" / "self.warc.gz")
    os.symlink("CC-MAIN-2024-18", root / "crawl-data" / "CC-MAIN-2024-18")
    source = CrawlSource(LocalLocation(str(root)))
    snapshots, _ = source.list_snapshots()
    assert SNAPSHOT in snapshots and "CC-MAIN-2024-18" not in snapshots
    assert [f.key for f in source.list_warc_files(SNAPSHOT)] == [f"crawl-data/{SNAPSHOT}/segments/0001/warc/a.warc.gz"]


def test_paths_listing_that_is_a_symlink_loop_is_a_clear_error(tmp_path):
    root, snapshot_dir = crawl_root(tmp_path)
    os.symlink(PATHS_LISTING, snapshot_dir / PATHS_LISTING)
    with pytest.raises(CrawlListingError, match=PATHS_LISTING):
        CrawlSource(LocalLocation(str(root))).list_warc_files(SNAPSHOT)
