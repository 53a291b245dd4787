"""The Ray shard engine runs a real stage on a local Ray instance and writes the same bytes as inline.

Skipped when Ray is not installed, unless ``CI`` is set (CI installs the ``ray`` extra, so a
missing Ray there is a failure, not a skip).
"""

import os
import pathlib
import time

import pytest

try:
    import ray
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("ray is not installed (pip install 'dataplatform[ray]')", allow_module_level=True)

from content_hash import shard_sha256s
from warc_factory import build_snapshot_warcs

from dataplatform.execution.engines import make_executor
from dataplatform.execution.ray_executor import RayShardExecutor
from dataplatform.execution.shard_executor import InlineExecutor, ShardTaskError
from dataplatform.io.crawl_sources import CrawlSource, WarcFile
from dataplatform.io.datasets import DatasetStore
from dataplatform.io.object_store import LocalLocation
from dataplatform.resources.storage import ShardExecutionResource
from dataplatform.stages.ingest import materialize_documents, materialize_raw_pages

SNAPSHOT = "CC-RAY-2026-01"


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():  # pragma: no cover - another test left one running
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _run_ingest(crawl_root, data_root, executor):
    crawl = CrawlSource(LocalLocation(str(crawl_root)))
    store = DatasetStore.local(data_root)
    raw = materialize_raw_pages(crawl, store, SNAPSHOT, executor)
    docs = materialize_documents(store, SNAPSHOT, executor)
    return store, raw, docs


def _shard_hashes(store, asset):
    return shard_sha256s(store, asset, SNAPSHOT)


def test_ray_stage_output_is_identical_to_inline(local_ray, tmp_path):
    crawl_root = tmp_path / "crawl"
    build_snapshot_warcs(crawl_root, SNAPSHOT, n_files=3)

    inline_store, inline_raw, inline_docs = _run_ingest(crawl_root, tmp_path / "inline", InlineExecutor())
    # Window of 2 for 3 shards: the refill path (submit as the oldest completes) is exercised.
    ray_executor = RayShardExecutor(max_in_flight=2)
    ray_store, ray_raw, ray_docs = _run_ingest(crawl_root, tmp_path / "ray", ray_executor)

    for asset in ("raw_pages", "documents"):
        expected = _shard_hashes(inline_store, asset)
        got = _shard_hashes(ray_store, asset)
        assert got == expected, asset
        assert len(got["data"]) == 3
    assert (ray_raw.rows_out, ray_raw.drop_counts) == (inline_raw.rows_out, inline_raw.drop_counts)
    assert (ray_docs.rows_out, ray_docs.tallies["languages"]) == (inline_docs.rows_out, inline_docs.tallies["languages"])
    assert ray_docs.rows_out == 21
    assert ray_store.read_frame("documents", SNAPSHOT).equals(inline_store.read_frame("documents", SNAPSHOT))


def test_failing_shard_raises_shard_task_error_naming_it(local_ray, tmp_path):
    crawl_root = tmp_path / "crawl"
    build_snapshot_warcs(crawl_root, SNAPSHOT, n_files=1)
    crawl = CrawlSource(LocalLocation(str(crawl_root)))
    store = DatasetStore.local(tmp_path / "data")
    files = crawl.list_warc_files(SNAPSHOT) + [WarcFile(SNAPSHOT, "crawl-data/missing/file-404.warc.gz")]
    with pytest.raises(ShardTaskError, match="file-404.warc.gz"):
        materialize_raw_pages(crawl, store, SNAPSHOT, RayShardExecutor(), warc_files=files)
    # Nothing was committed: the partition is not half-visible.
    assert store.manifest("raw_pages", SNAPSHOT) is None


def test_results_in_input_order_and_bounded_in_flight(local_ray, tmp_path):
    executor = RayShardExecutor(max_in_flight=2)
    assert list(executor.map(abs, [-5, 3, -1, 0, -8, 2, -7])) == [5, 3, 1, 0, 8, 2, 7]
    assert list(executor.map(abs, [])) == []

    # Each task touches its own file: after the first result only the window has been started.
    paths = [tmp_path / f"started-{i}" for i in range(8)]
    results = executor.map(pathlib.Path.touch, paths)
    next(results)
    time.sleep(1.0)  # anything submitted beyond the window would have run by now
    started = sum(p.exists() for p in paths)
    assert 1 <= started <= 3, started  # 2 in flight + 1 refilled when the first was collected
    results.close()  # consumer stops early: the rest is cancelled, not left running


def test_resource_builds_ray_executor_with_address():
    executor = ShardExecutionResource(engine="ray", ray_address="ray://head:10001", max_workers=8).executor()
    assert isinstance(executor, RayShardExecutor)
    assert (executor.address, executor.num_cpus) == ("ray://head:10001", 8)
    assert executor.describe() == "ray (ray://head:10001, 8 CPUs)"
    assert isinstance(make_executor("ray"), RayShardExecutor)
    with pytest.raises(ValueError, match="num_cpus"):
        RayShardExecutor(num_cpus=0)
