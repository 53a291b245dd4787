"""Reliability: SIGKILL at random points never exposes a partial partition, and a re-run after a
kill is byte-identical to an uninterrupted run; the same inputs always give the same bytes."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from content_hash import shard_sha256s
from warc_factory import build_snapshot_warcs

from dataplatform.io.datasets import DatasetStore

SNAPSHOT = "CC-KILL-2026-02"
CHAIN = """
import sys
from dataplatform.execution.shard_executor import InlineExecutor
from dataplatform.io.crawl_sources import CrawlSource
from dataplatform.io.datasets import DatasetStore
from dataplatform.io.object_store import LocalLocation
from dataplatform.stages.ingest import materialize_documents, materialize_raw_pages
store = DatasetStore.local(sys.argv[2])
print("ready", flush=True)
materialize_raw_pages(CrawlSource(LocalLocation(sys.argv[1])), store, "%s", InlineExecutor())
print("raw_pages committed", flush=True)
materialize_documents(store, "%s", InlineExecutor())
""" % (SNAPSHOT, SNAPSHOT)


def shard_hashes(store, asset):
    return shard_sha256s(store, asset, SNAPSHOT)


@pytest.fixture(scope="module")
def crawl_and_reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("reliability")
    build_snapshot_warcs(base / "crawl", SNAPSHOT, n_files=12, pages_per_file=25)
    subprocess.run([sys.executable, "-c", CHAIN, str(base / "crawl"), str(base / "reference")], check=True)
    reference = DatasetStore.local(base / "reference")
    return base / "crawl", {a: shard_hashes(reference, a) for a in ("raw_pages", "documents")}


@pytest.mark.parametrize("seed", range(10))
def test_sigkill_at_random_point_then_rerun_is_identical(seed, crawl_and_reference, tmp_path):
    crawl, reference = crawl_and_reference
    data = tmp_path / "data"
    # Kill points spread over the writing window (measured from "ready", after imports): inside
    # raw_pages shards, at its commit, inside documents shards, after everything.
    delay = random.Random(seed).uniform(0.0, 1.5)
    proc = subprocess.Popen([sys.executable, "-c", CHAIN, str(crawl), str(data)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    store = DatasetStore.local(data)
    # Whatever is visible is complete: every manifest lists only shards that exist with their hashes.
    for asset in ("raw_pages", "documents"):
        visible = shard_hashes(store, asset)
        assert visible in (None, reference[asset]), f"{asset} partially visible after kill at {delay:.2f}s"
    subprocess.run([sys.executable, "-c", CHAIN, str(crawl), str(data)], check=True, stdout=subprocess.DEVNULL)
    for asset in ("raw_pages", "documents"):
        assert shard_hashes(store, asset) == reference[asset]
        # A killed attempt is resumed by the re-run, not left beside it. Only a kill before the attempt
        # recorded itself (``_attempt.json``: nothing to resume) leaves a folder, holding at most a temp
        # file, which garbage collection removes with the temp files.
        committed = f"v{store.manifest(asset, SNAPSHOT)['version']}"
        for leftover in [p for p in (data / asset / SNAPSHOT).iterdir() if p.is_dir() and p.name != committed]:
            assert not (leftover / "_attempt.json").exists(), f"{leftover.name} was not resumed"
            assert all(f.name.startswith(".tmp-") for f in leftover.rglob("*") if f.is_file()), list(leftover.rglob("*"))
            later = time.time() + store.retention.temp_after_seconds + 60
            assert leftover.name in store.collect_garbage(asset, SNAPSHOT, now=later)["deleted"]
