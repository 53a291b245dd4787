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
STAGE = (
    """
import sys
from dataplatform.execution.shard_executor import InlineExecutor
from dataplatform.io.datasets import DatasetStore
from dataplatform.stages.filtering import materialize_filtered
from dataplatform.stages.ingest import materialize_documents
store = DatasetStore.local(sys.argv[1])
{"documents": materialize_documents, "filtered": materialize_filtered}[sys.argv[2]](store, "%s", InlineExecutor())
"""
    % SNAPSHOT
)


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


# ---------------------------------------------------------------------------------------- dedup
DEDUP_SNAPSHOT, LATER_SNAPSHOT = "CC-RESUME-2026-05", "CC-RESUME-2026-10"
DEDUP_SHARDS = 8  # per scored table: 16 input shards
DEDUP_PARTITION_ROWS = 3000  # ~12 bucket partitions for the ~1,700 documents
DEDUP_STAGE = """
import sys
from dataplatform.core.dedup import DedupConfig
from dataplatform.execution.shard_executor import InlineExecutor
from dataplatform.io.datasets import DatasetStore
from dataplatform.stages.dedup import DedupRunOptions, materialize_deduplicated
materialize_deduplicated(DatasetStore.local(sys.argv[1]), sys.argv[2], InlineExecutor(), DedupConfig(),
                         DedupRunOptions(partition_rows=int(sys.argv[3]), batch_rows=50))
"""


def _scored_frame(snapshot: str, n: int, seed: int):
    """``n`` scored rows: fresh texts, exact copies (case changed) and near-duplicates (3 words
    replaced) of earlier rows, half of them REWIRE candidates."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    vocab = [f"w{i:04d}x" for i in range(4000)]
    texts: list[str] = []
    for i in range(n):
        kind = rng.random()
        if i < 10 or kind < 0.6:
            texts.append(" ".join(rng.choice(vocab, int(rng.integers(40, 160)))))
        elif kind < 0.75:
            texts.append(texts[int(rng.integers(i))].upper())
        else:
            words = texts[int(rng.integers(i))].split()
            for pos in rng.choice(len(words), 3, replace=False):
                words[pos] = "edited" + str(int(rng.integers(1000)))
            texts.append(" ".join(words))
    ids = [f"{snapshot}-{i:06d}" for i in range(n)]
    return pl.DataFrame(
        {
            "doc_id": ids,
            "url": [f"https://resume.example/{i}" for i in ids],
            "snapshot": [snapshot] * n,
            "warc_record_id": ids,
            "warc_file": ["resume.warc.gz"] * n,
            "n_chars": [len(t) for t in texts],
            "text": texts,
            "drop_reason": pl.Series([None] * n, dtype=pl.Utf8),
            "quality_label": rng.choice(["high_quality", "rewrite_candidate"], n).tolist(),
            "quality_score": rng.random(n).astype(np.float32),
        }
    )


def _commit_scored(store: DatasetStore, snapshot: str, n: int, seed: int) -> None:
    import numpy as np
    import polars as pl

    from dataplatform.core.schemas import SCORED, conform

    frame = _scored_frame(snapshot, n, seed)
    with store.write_partition("scored", snapshot) as writer:
        for table, label in (("data", "high_quality"), ("rewrite_candidates", "rewrite_candidate")):
            rows = frame.filter(pl.col("quality_label") == label)
            writer.declare_table(table, SCORED)
            for i, chunk in enumerate(np.array_split(np.arange(rows.height), DEDUP_SHARDS)):
                writer.write_table(table, conform(rows[chunk].to_arrow(), SCORED), index=i)
        writer.commit({})


def _dedup(store: DatasetStore, snapshot: str = DEDUP_SNAPSHOT):
    from dataplatform.core.dedup import DedupConfig
    from dataplatform.stages.dedup import DedupRunOptions, materialize_deduplicated

    return materialize_deduplicated(
        store, snapshot, InlineExecutor(), DedupConfig(), DedupRunOptions(partition_rows=DEDUP_PARTITION_ROWS, batch_rows=50)
    )


def _dedup_hashes(store: DatasetStore, snapshot: str = DEDUP_SNAPSHOT) -> dict[str, dict[str, list[str]]]:
    out = {}
    for asset in ("deduplicated", "dedup_signature_index"):
        manifest = store.require_manifest(asset, snapshot)
        out[asset] = {t: [s.sha256 for s in store.shards(asset, snapshot, t, manifest)] for t in manifest["tables"]}
    return out


def _work_files(root: Path) -> list[Path]:
    return [p for p in (root / "deduplicated").rglob("*") if "_work" in p.parts and p.is_file()]


@pytest.fixture(scope="module")
def dedup_reference(tmp_path_factory):
    """``scored`` committed (16 shards), and the outputs of an uninterrupted dedup run of a copy."""
    import shutil

    base = tmp_path_factory.mktemp("dedup-resume")
    _commit_scored(DatasetStore.local(base / "inputs"), DEDUP_SNAPSHOT, 1700, 5)
    shutil.copytree(base / "inputs", base / "ref")
    reference = DatasetStore.local(base / "ref")
    report, _ = _dedup(reference)
    assert report.drop_counts["duplicate:exact"] > 50 and report.drop_counts["duplicate:minhash"] > 50
    assert report.extra["bucket_partitions"] >= 8 and not report.extra.get("up_to_date")
    return base, _dedup_hashes(reference)


def _kill_dedup_when(data_root: Path, ready) -> None:
    """Run dedup in a subprocess and SIGKILL it as soon as ``ready(data_root)`` holds."""
    proc = subprocess.Popen([sys.executable, "-c", DEDUP_STAGE, str(data_root), DEDUP_SNAPSHOT, str(DEDUP_PARTITION_ROWS)])
    deadline = time.time() + 180
    while proc.poll() is None and time.time() < deadline:
        if ready(data_root):
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "dedup finished before it could be killed"


def _records(phase: str, at_least: int):
    def ready(root: Path) -> bool:
        return len(list((root / "deduplicated" / DEDUP_SNAPSHOT).glob(f"v*/_progress/{phase}/*.json"))) >= at_least

    return ready


@pytest.mark.slow
@pytest.mark.parametrize("phase, killed_after", [("signatures", 5), ("buckets", 3)])
def test_killed_dedup_resumes_inside_its_phases(phase, killed_after, dedup_reference, tmp_path):
    import shutil

    base, expected = dedup_reference
    data = shutil.copytree(base / "inputs", tmp_path / "data")
    _kill_dedup_when(data, _records(phase, killed_after))
    store = DatasetStore.local(data)
    assert store.manifest("deduplicated", DEDUP_SNAPSHOT) is None and _work_files(data)  # nothing visible, work kept

    lines: list[str] = []
    from dataplatform.core.dedup import DedupConfig
    from dataplatform.stages.dedup import DedupRunOptions, materialize_deduplicated

    report, _ = materialize_deduplicated(
        store,
        DEDUP_SNAPSHOT,
        InlineExecutor(),
        DedupConfig(),
        DedupRunOptions(partition_rows=DEDUP_PARTITION_ROWS, batch_rows=50),
        lines.append,
    )
    resumed = report.extra["phases_resumed"]
    assert resumed[phase] >= killed_after, resumed
    if phase == "buckets":  # every earlier phase was recorded as done: none of its tasks ran again
        assert resumed["signatures"] == 2 * DEDUP_SHARDS and resumed["exact"] == report.extra["bucket_partitions"]
    assert any("resuming" in line for line in lines), lines
    assert store.require_manifest("deduplicated", DEDUP_SNAPSHOT)["metadata"]["phases_resumed"] == resumed
    assert _dedup_hashes(store) == expected  # byte-identical to the uninterrupted run
    assert not _work_files(data)


@pytest.mark.slow
def test_dedup_killed_between_its_two_commits_builds_only_the_index(dedup_reference, tmp_path):
    import shutil

    from dataplatform.stages.dedup import StaleSignatureIndex

    base, expected = dedup_reference
    data = shutil.copytree(base / "inputs", tmp_path / "data")
    _kill_dedup_when(data, lambda root: (root / "deduplicated" / DEDUP_SNAPSHOT / "_manifest.json").exists())
    store = DatasetStore.local(data)
    version = store.require_manifest("deduplicated", DEDUP_SNAPSHOT)["version"]
    assert store.manifest("dedup_signature_index", DEDUP_SNAPSHOT) is None and _work_files(data)

    # A later snapshot must not dedup against a snapshot whose index does not describe it.
    _commit_scored(store, LATER_SNAPSHOT, 200, 6)
    with pytest.raises(StaleSignatureIndex, match=f"deduplicated/{DEDUP_SNAPSHOT} is committed without its index"):
        _dedup(store, LATER_SNAPSHOT)

    report, index_info = _dedup(store)
    assert report.extra["up_to_date"] is True  # deduplicated was not redone ...
    assert store.require_manifest("deduplicated", DEDUP_SNAPSHOT)["version"] == version
    assert index_info["deduplicated_version"] == version  # ... only its index was built, from its work files
    assert _dedup_hashes(store) == expected and not _work_files(data)
    later, _ = _dedup(store, LATER_SNAPSHOT)
    assert later.extra["compared_with_snapshots"] == [DEDUP_SNAPSHOT]


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


def test_dedup_with_unchanged_inputs_is_up_to_date_and_touches_nothing(dedup_reference, tmp_path):
    import shutil

    base, expected = dedup_reference
    data = shutil.copytree(base / "ref", tmp_path / "data")
    store = DatasetStore.local(data)
    before = _listing(data)
    lines: list[str] = []
    from dataplatform.core.dedup import DedupConfig
    from dataplatform.stages.dedup import DedupRunOptions, materialize_deduplicated

    report, index_info = materialize_deduplicated(
        store,
        DEDUP_SNAPSHOT,
        InlineExecutor(),
        DedupConfig(),
        DedupRunOptions(partition_rows=DEDUP_PARTITION_ROWS, batch_rows=50),
        lines.append,
    )
    assert report.extra["up_to_date"] is True and any("up to date" in line for line in lines), lines
    assert index_info == store.require_manifest("dedup_signature_index", DEDUP_SNAPSHOT)["metadata"]
    assert report.drop_counts == store.require_manifest("deduplicated", DEDUP_SNAPSHOT)["metadata"]["drop_counts"]
    assert _listing(data) == before  # not a file written, removed or touched
    assert _dedup_hashes(store) == expected


def test_dedup_whose_index_was_removed_after_a_finished_run_is_rebuilt(dedup_reference, tmp_path):
    """The work files of a finished run are gone, so the index cannot be built on its own:
    deduplicated is rebuilt (same bytes, new version) and the index with it."""
    import shutil

    base, expected = dedup_reference
    data = shutil.copytree(base / "ref", tmp_path / "data")
    store = DatasetStore.local(data)
    old_version = store.require_manifest("deduplicated", DEDUP_SNAPSHOT)["version"]
    shutil.rmtree(data / "dedup_signature_index")
    report, index_info = _dedup(store)
    assert not report.extra.get("up_to_date")
    new_version = store.require_manifest("deduplicated", DEDUP_SNAPSHOT)["version"]
    assert new_version != old_version and index_info["deduplicated_version"] == new_version
    assert _dedup_hashes(store) == expected and not _work_files(data)
