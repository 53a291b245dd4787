"""Crawl source and dataset storage against a real S3 API server on loopback (moto_server)."""

import gzip

import boto3
import dagster as dg
import pytest
from warc_factory import build_snapshot_warcs

from dataplatform.assets import ingest
from dataplatform.assets.partitions import crawl_snapshots
from dataplatform.definitions import defs
from dataplatform.io.datasets import DatasetStore
from dataplatform.io.object_store import S3Location
from dataplatform.resources.storage import CrawlSourceResource, DatasetStorageResource, ShardExecutionResource


def upload_tree(client, bucket, local_root, prefix):
    for path in sorted(local_root.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local_root).as_posix()}")


@pytest.fixture
def s3_crawl(s3_env, tmp_path):
    client = boto3.client("s3", endpoint_url=s3_env.endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="commoncrawl")
    client.create_bucket(Bucket="datasets")
    local = tmp_path / "crawl"
    build_snapshot_warcs(local, "CC-S3-2026-01")
    build_snapshot_warcs(local, "CC-S3-2026-02", n_files=1, broken=False)
    upload_tree(client, "commoncrawl", local, "mirror")
    # A snapshot published with a warc.paths.gz listing (paths relative to the bucket prefix).
    listing = "\n".join(f"crawl-data/CC-S3-2026-01/segments/0001/warc/file-{i:03d}.warc.gz" for i in (1,))
    client.put_object(
        Bucket="commoncrawl", Key="mirror/crawl-data/CC-S3-2026-01/warc.paths.gz", Body=gzip.compress(listing.encode())
    )
    return client


def s3_resources(endpoint):
    return {
        "crawl_source": CrawlSourceResource(backend="s3", s3_bucket="commoncrawl", s3_prefix="mirror", s3_endpoint_url=endpoint),
        "dataset_storage": DatasetStorageResource(
            backend="s3", s3_bucket="datasets", s3_prefix="prod/v1", s3_endpoint_url=endpoint
        ),
        "shard_execution": ShardExecutionResource(engine="process", max_workers=2),
    }


def test_sensor_discovers_s3_snapshots(s3_crawl, s3_env):
    sensor = defs.get_sensor_def("crawl_snapshot_sensor")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"crawl_source": s3_resources(s3_env.endpoint)["crawl_source"]}
        )
        result = sensor(context)
    assert sorted(r.partition_key for r in result.run_requests) == ["CC-S3-2026-01", "CC-S3-2026-02"]


def test_materialize_from_s3_to_s3(s3_crawl, s3_env):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(crawl_snapshots.name, ["CC-S3-2026-01"])
        result = dg.materialize(
            [ingest.crawl_warc_files, ingest.raw_pages, ingest.documents],
            partition_key="CC-S3-2026-01",
            instance=instance,
            resources=s3_resources(s3_env.endpoint),
        )
    assert result.success
    keys = [o["Key"] for o in s3_crawl.list_objects_v2(Bucket="datasets", Prefix="prod/v1/")["Contents"]]
    assert "prod/v1/documents/CC-S3-2026-01/_manifest.json" in keys
    assert any(k.startswith("prod/v1/documents/CC-S3-2026-01/v") and k.endswith("part-00000.parquet") for k in keys)
    store = DatasetStore(S3Location("datasets", "prod/v1", s3_env.endpoint))
    docs = store.read_frame("documents", "CC-S3-2026-01")
    # The warc.paths.gz listing names only file-001: its 7 pages, not file-000's.
    assert docs.height == 7
    assert set(docs["warc_file"]) == {"crawl-data/CC-S3-2026-01/segments/0001/warc/file-001.warc.gz"}
    assert store.scan("documents", "CC-S3-2026-01").select("doc_id").collect().height == 7
    assert sorted(store.partitions("documents")) == ["CC-S3-2026-01"]


def test_s3_server_down_gives_clear_error_and_no_manifest(s3_crawl, s3_env, tmp_path, monkeypatch):
    """The storage server going away mid-run fails the run loudly and commits nothing."""
    from dataplatform.io.object_store import S3ObjectStore

    manifest_puts = []
    real_put = S3ObjectStore.put_bytes

    def spy_put(self, key, data):
        if key.endswith("_manifest.json"):
            manifest_puts.append(key)
        return real_put(self, key, data)

    monkeypatch.setattr(S3ObjectStore, "put_bytes", spy_put)
    from dataplatform.execution.shard_executor import InlineExecutor
    from dataplatform.io.crawl_sources import CrawlSource
    from dataplatform.io.object_store import LocalLocation
    from dataplatform.stages.ingest import materialize_raw_pages

    local = tmp_path / "local-crawl"
    build_snapshot_warcs(local, "CC-S3-2026-09", n_files=3, broken=False)
    store = DatasetStore(S3Location("datasets", "down", s3_env.endpoint))
    crawl = CrawlSource(LocalLocation(str(local)))

    class StopsServerAfterFirstShard(InlineExecutor):
        def map(self, fn, tasks):
            for i, task in enumerate(tasks):
                if i == 1:
                    s3_env.stop()
                yield fn(task)

    try:
        with pytest.raises(Exception) as info:
            materialize_raw_pages(crawl, store, "CC-S3-2026-09", StopsServerAfterFirstShard())
    finally:
        s3_env.start()
    # botocore names the endpoint it could not reach.
    assert "127.0.0.1" in str(info.value) and "connect" in str(info.value).lower()
    assert manifest_puts == []
