"""Resume inside a partition: a stage killed part-way redoes only the shards it had not finished,
and its output is byte-identical to an uninterrupted run; a changed configuration starts over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from warc_factory import build_snapshot_warcs

from dataplatform.execution.shard_executor import InlineExecutor
from dataplatform.io.crawl_sources import CrawlSource
from dataplatform.io.datasets import DatasetStore
from dataplatform.io.object_store import LocalLocation
from dataplatform.stages.filtering import FilterOptions, materialize_filtered
from dataplatform.stages.ingest import materialize_documents, materialize_raw_pages

SNAPSHOT = "CC-RESUME-2026-01"
N_FILES = 10
STAGE = """
import sys
from dataplatform.execution.shard_executor import InlineExecutor
from dataplatform.io.datasets import DatasetStore
from dataplatform.stages.filtering import materialize_filtered
from dataplatform.stages.ingest import materialize_documents
store = DatasetStore.local(sys.argv[1])
{"documents": materialize_documents, "filtered": materialize_filtered}[sys.argv[2]](store, "%s", InlineExecutor())
""" % SNAPSHOT


def shard_hashes(store: DatasetStore, asset: str) -> dict[str, list[str]]:
    manifest = store.require_manifest(asset, SNAPSHOT)
    return {table: [s.sha256 for s in store.shards(asset, SNAPSHOT, table, manifest)] for table in manifest["tables"]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """raw_pages committed, and the uninterrupted documents/filtered outputs to compare with."""
    base = tmp_path_factory.mktemp("resume")
    build_snapshot_warcs(base / "crawl", SNAPSHOT, n_files=N_FILES, pages_per_file=30)
    store = DatasetStore.local(base / "ref")
    materialize_raw_pages(CrawlSource(LocalLocation(str(base / "crawl"))), store, SNAPSHOT, InlineExecutor())
    materialize_documents(store, SNAPSHOT, InlineExecutor())
    materialize_filtered(store, SNAPSHOT, InlineExecutor())
    return base, {asset: shard_hashes(store, asset) for asset in ("documents", "filtered")}


def _kill_after_records(data_root: Path, asset: str, records: int) -> None:
    proc = subprocess.Popen([sys.executable, "-c", STAGE, str(data_root), asset])
    partition = data_root / asset / SNAPSHOT
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if len(list(partition.glob("v*/_progress/*/*.json"))) >= records:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, f"{asset} finished before it could be killed"


@pytest.mark.slow
@pytest.mark.parametrize("asset", ["documents", "filtered"])
def test_killed_stage_resumes_with_the_unfinished_shards_only(asset, reference, tmp_path):
    base, expected = reference
    import shutil

    data = tmp_path / "data"
    shutil.copytree(base / "ref", data)
    if asset == "filtered":  # documents stays committed; only filtered is re-run
        shutil.rmtree(data / "filtered")
    else:
        shutil.rmtree(data / "documents")
        shutil.rmtree(data / "filtered")
    store = DatasetStore.local(data)
    _kill_after_records(data, asset, records=7)  # ~70% of the 10 shard tasks
    assert store.manifest(asset, SNAPSHOT) is None  # nothing half-visible

    run = {"documents": materialize_documents, "filtered": materialize_filtered}[asset]
    report = run(store, SNAPSHOT, InlineExecutor())
    assert report.tasks_resumed >= 7 and report.shards == N_FILES
    assert store.require_manifest(asset, SNAPSHOT)["metadata"]["shards_resumed"] == report.tasks_resumed
    assert shard_hashes(store, asset) == expected[asset]


def test_changed_configuration_starts_a_fresh_version(reference, tmp_path):
    base, expected = reference
    import shutil

    data = tmp_path / "data"
    shutil.copytree(base / "ref", data)
    shutil.rmtree(data / "filtered")
    store = DatasetStore.local(data)
    _kill_after_records(data, "filtered", records=5)
    attempts = {p.name for p in (data / "filtered" / SNAPSHOT).iterdir() if p.is_dir()}

    report = materialize_filtered(store, SNAPSHOT, InlineExecutor(), FilterOptions(pii=None))
    assert report.tasks_resumed == 0
    committed = f"v{store.require_manifest('filtered', SNAPSHOT)['version']}"
    assert committed not in attempts  # the other configuration's attempt was not reused

    # Back to the first configuration: its unfinished attempt is still there and is resumed.
    report = materialize_filtered(store, SNAPSHOT, InlineExecutor())
    assert report.tasks_resumed >= 5
    assert f"v{store.require_manifest('filtered', SNAPSHOT)['version']}" in attempts
    assert shard_hashes(store, "filtered") == expected["filtered"]
