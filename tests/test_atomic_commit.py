"""A materialization killed mid-write (SIGKILL) leaves the previous version intact and readable."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from warc_factory import build_snapshot_warcs

from dataplatform.io.datasets import DatasetStore

SNAPSHOT = "CC-KILL-2026-01"
WRITER = (
    """
import sys
from dataplatform.execution.shard_executor import InlineExecutor
from dataplatform.io.crawl_sources import CrawlSource
from dataplatform.io.datasets import DatasetStore
from dataplatform.io.object_store import LocalLocation
from dataplatform.stages.ingest import materialize_raw_pages
crawl_root, data_root = sys.argv[1], sys.argv[2]
materialize_raw_pages(CrawlSource(LocalLocation(crawl_root)), DatasetStore.local(data_root), "%s", InlineExecutor())
"""
    % SNAPSHOT
)


def run_writer(crawl_root, data_root, kill_after_shards=None, rebuild=False):
    env = {**os.environ, "DATAPLATFORM_REBUILD": "1" if rebuild else ""}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(crawl_root), str(data_root)], env=env)
    if kill_after_shards is None:
        assert proc.wait(120) == 0
        return
    partition = Path(data_root) / "raw_pages" / SNAPSHOT
    old_versions = {p.name for p in partition.iterdir()} if partition.exists() else set()
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        new_shards = [p for p in partition.glob("v*/data/part-*.parquet") if p.parts[-3] not in old_versions]
        if len(new_shards) >= kill_after_shards:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "writer finished before it could be killed"


def partition_digest(store):
    manifest = store.require_manifest("raw_pages", SNAPSHOT)
    table = store.read_table("raw_pages", SNAPSHOT)
    return manifest, hashlib.sha256(table.sort_by("warc_record_id").to_pandas().to_csv().encode()).hexdigest()


def test_kill_mid_write_keeps_previous_version(tmp_path):
    crawl_root, data_root = tmp_path / "crawl", tmp_path / "data"
    build_snapshot_warcs(crawl_root, SNAPSHOT, n_files=40, pages_per_file=40, broken=False)
    store = DatasetStore.local(data_root)
    run_writer(crawl_root, data_root)
    before_manifest, before_digest = partition_digest(store)

    # Re-materialize (rebuild: the committed version is up to date) and kill it part-way.
    run_writer(crawl_root, data_root, kill_after_shards=3, rebuild=True)
    after_manifest, after_digest = partition_digest(store)
    assert after_manifest == before_manifest
    assert after_digest == before_digest
    # The killed run's shards exist on disk but are invisible: nothing references them.
    versions = sorted(p.name for p in (data_root / "raw_pages" / SNAPSHOT).iterdir() if p.is_dir())
    assert len(versions) == 2 and f"v{before_manifest['version']}" in versions
    killed = next(v for v in versions if v != f"v{before_manifest['version']}")

    # The next run resumes the killed attempt (same inputs and configuration): it reuses the shards
    # that were recorded as finished, computes the rest, and commits that version.
    run_writer(crawl_root, data_root, rebuild=True)
    final_manifest, final_digest = partition_digest(store)
    assert final_digest == before_digest
    assert f"v{final_manifest['version']}" == killed
    assert final_manifest["metadata"]["shards_resumed"] >= 2
    # The superseded version stays readable for the grace period.
    assert sorted(p.name for p in (data_root / "raw_pages" / SNAPSHOT).iterdir() if p.is_dir()) == versions
