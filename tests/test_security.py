"""Security: no path traversal through keys or prefixes, and credentials never reach logs or metadata."""

import json

import boto3
import dagster as dg
import pytest
from warc_factory import build_snapshot_warcs

from dataplatform.assets import ingest
from dataplatform.assets.partitions import crawl_snapshots
from dataplatform.core.snapshot_keys import InvalidSnapshotKey, validate_snapshot_key
from dataplatform.io.datasets import DatasetStore
from dataplatform.io.object_store import LocalObjectStore, StorageKeyError
from dataplatform.resources.storage import CrawlSourceResource, DatasetStorageResource, ShardExecutionResource

SECRET = "planted-Secret-9f8e7d6c5b4a"


@pytest.mark.parametrize("key", ["../x", "..", "a/b", "/etc", "a\\b", "", " x", "x" * 200, ".hidden", "a..b"])
def test_bad_snapshot_keys_are_refused(key):
    with pytest.raises(InvalidSnapshotKey):
        validate_snapshot_key(key)


def test_storage_keys_cannot_escape_the_root(tmp_path):
    store = LocalObjectStore(tmp_path / "root")
    for key in ("../outside", "a/../../outside", "/abs/path"):
        with pytest.raises(StorageKeyError):
            store.put_bytes(key, b"x")
    assert not (tmp_path / "outside").exists()
    with pytest.raises(ValueError):
        DatasetStore.local(tmp_path / "root").manifest("documents", "../../etc")


def test_s3_prefix_traversal_is_refused():
    with pytest.raises(dg.DagsterInvalidConfigError, match="s3_prefix"):
        DatasetStorageResource(backend="s3", s3_bucket="b", s3_prefix="data/../other").location()


def test_planted_secret_never_reaches_logs_or_metadata(s3_env, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    client = boto3.client("s3", endpoint_url=s3_env.endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="data")
    build_snapshot_warcs(tmp_path / "crawl", "CC-SEC-2026-01", n_files=1)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(crawl_snapshots.name, ["CC-SEC-2026-01"])
        result = dg.materialize(
            [ingest.crawl_warc_files, ingest.raw_pages, ingest.documents],
            partition_key="CC-SEC-2026-01",
            instance=instance,
            resources={
                "crawl_source": CrawlSourceResource(local_root=str(tmp_path / "crawl")),
                "dataset_storage": DatasetStorageResource(backend="s3", s3_bucket="data", s3_endpoint_url=s3_env.endpoint),
                "shard_execution": ShardExecutionResource(engine="process", max_workers=2),
            },
        )
        assert result.success
        records = instance.get_event_records(dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION))
        everything = [str(e) for e in instance.all_logs(result.run_id)]
        everything += [repr(r.event_log_entry.asset_materialization.metadata) for r in records]
        run = instance.get_run_by_id(result.run_id)
        everything.append(json.dumps(run.run_config, default=str))
    manifests = [
        client.get_object(Bucket="data", Key=o["Key"])["Body"].read().decode()
        for o in client.list_objects_v2(Bucket="data")["Contents"]
        if o["Key"].endswith("_manifest.json")
    ]
    out, err = capfd.readouterr()
    haystack = "\n".join(everything + manifests + [out, err])
    assert "CC-SEC-2026-01" in haystack  # the search covers real content
    assert SECRET not in haystack
