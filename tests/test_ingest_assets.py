"""Materializes the ingest assets with a real Dagster instance on WARC files built by the test."""

import json

import dagster as dg
import polars as pl
import pytest
from warc_factory import build_snapshot_warcs, record_id_for

from dataplatform.assets import ingest
from dataplatform.assets.partitions import crawl_snapshots
from dataplatform.definitions import defs, snapshot_pipeline_job
from dataplatform.io.datasets import DatasetStore
from dataplatform.resources.storage import CrawlSourceResource, DatasetStorageResource, ShardExecutionResource

ASSETS = [ingest.crawl_warc_files, ingest.raw_pages, ingest.documents]


@pytest.fixture
def crawl_root(tmp_path):
    root = tmp_path / "crawl"
    build_snapshot_warcs(root, "CC-TEST-2026-01")
    build_snapshot_warcs(root, "CC-TEST-2026-02", n_files=1)
    return root


def resources_for(crawl_root, data_root, engine="inline"):
    return {
        "crawl_source": CrawlSourceResource(local_root=str(crawl_root)),
        "dataset_storage": DatasetStorageResource(local_root=str(data_root)),
        "shard_execution": ShardExecutionResource(engine=engine, max_workers=2),
    }


def materialize(snapshot, crawl_root, data_root, instance, engine="inline", raise_on_error=True):
    instance.add_dynamic_partitions(crawl_snapshots.name, [snapshot])
    return dg.materialize(
        ASSETS,
        partition_key=snapshot,
        instance=instance,
        resources=resources_for(crawl_root, data_root, engine),
        raise_on_error=raise_on_error,
    )


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"crawl_warc_files", "raw_pages", "documents"} <= keys
    assert defs.get_sensor_def("crawl_snapshot_sensor") is not None


def test_materialize_partition_writes_documents_and_quarantine(crawl_root, tmp_path):
    data_root = tmp_path / "data"
    with dg.instance_for_test() as instance:
        result = materialize("CC-TEST-2026-01", crawl_root, data_root, instance, engine="process")
        assert result.success
        events = {
            e.asset_key.to_user_string(): e
            for e in result.get_asset_materialization_events()
            for e in [e.event_specific_data.materialization]
        }
    store = DatasetStore.local(data_root)
    docs = store.read_frame("documents", "CC-TEST-2026-01")
    # 2 files x (6 English + 1 German) pages become documents; all kept at this stage.
    assert docs.height == 14
    assert docs["drop_reason"].null_count() == 14
    assert docs.filter(pl.col("url").str.ends_with("/de"))["language"].to_list() == ["de", "de"]
    assert set(docs.filter(~pl.col("url").str.ends_with("/de"))["language"]) == {"en"}
    assert docs["doc_id"].n_unique() == 14
    assert (docs["language_score"] > 0.5).all() and (docs["language_score"] <= 1).all()
    assert docs.filter(pl.col("url").str.contains("article-0"))["title"].to_list()[0].startswith("Article ")
    # Every broken record is quarantined with its reason, none lost.
    quarantine = store.read_frame("raw_pages", "CC-TEST-2026-01", "quarantine")
    assert sorted(quarantine["reason"].value_counts().rows()) == [
        ("quarantine:digest_mismatch", 2),
        ("quarantine:http_status", 2),
        ("quarantine:non_html", 2),
        ("quarantine:revisit", 2),
    ]
    assert record_id_for("https://site0.example/CC-TEST-2026-01/missing") in quarantine["warc_record_id"].to_list()
    # Metadata tells the story without opening a notebook.
    raw_md = events["raw_pages"].metadata
    assert raw_md["rows_out"].value == 14 and raw_md["rows_dropped"].value == 8
    assert json.loads(json.dumps(raw_md["drop_counts"].value))["quarantine:revisit"] == 2
    assert raw_md["skipped_records"].value == {"warcinfo": 2}
    doc_md = events["documents"].metadata
    assert doc_md["language_counts"].value == {"en": 12, "de": 2}
    assert doc_md["dagster/row_count"].value == 14
    assert "wall_seconds" in doc_md and "bytes_out" in doc_md


def test_rematerializing_unchanged_input_is_a_no_op_and_rebuild_replaces(crawl_root, tmp_path, monkeypatch):
    data_root = tmp_path / "data"
    store = DatasetStore.local(data_root)
    with dg.instance_for_test() as instance:
        materialize("CC-TEST-2026-02", crawl_root, data_root, instance)
        first = store.manifest("documents", "CC-TEST-2026-02")
        # Same WARCs, same configuration: the committed versions are up to date, nothing is redone.
        result = materialize("CC-TEST-2026-02", crawl_root, data_root, instance)
        assert store.manifest("documents", "CC-TEST-2026-02") == first
        events = result.get_asset_materialization_events()
        assert all(e.materialization.metadata["up_to_date"].value is True for e in events)
        monkeypatch.setenv("DATAPLATFORM_REBUILD", "1")
        materialize("CC-TEST-2026-02", crawl_root, data_root, instance)
        second = store.manifest("documents", "CC-TEST-2026-02")
    assert first["version"] != second["version"]
    # The superseded version stays readable for the grace period; the manifest names it in its history.
    versions = sorted(p.name for p in (data_root / "documents" / "CC-TEST-2026-02").iterdir() if p.is_dir())
    assert versions == sorted([f"v{first['version']}", f"v{second['version']}"])
    assert second["history"][0]["version"] == first["version"] and second["generation"] == first["generation"] + 1
    # Same input, same bytes: shard hashes do not depend on the run.
    assert [s.sha256 for s in store.shards("documents", "CC-TEST-2026-02", "data", first)] == [
        s.sha256 for s in store.shards("documents", "CC-TEST-2026-02", "data", second)
    ]


def test_invalid_partition_key_is_refused(crawl_root, tmp_path):
    with dg.instance_for_test() as instance:
        result = materialize("..", crawl_root, tmp_path / "data", instance, raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert "invalid snapshot key" in failure.event_specific_data.error.message
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("_manifest.json"))


def test_bad_storage_config_fails_naming_field(crawl_root):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(crawl_snapshots.name, ["CC-TEST-2026-01"])
        with pytest.raises(Exception, match="s3_bucket"):
            dg.materialize(
                ASSETS,
                partition_key="CC-TEST-2026-01",
                instance=instance,
                resources={
                    "crawl_source": CrawlSourceResource(local_root=str(crawl_root)),
                    "dataset_storage": DatasetStorageResource(backend="s3"),
                    "shard_execution": ShardExecutionResource(engine="inline"),
                },
            )


def test_env_config_fails_fast_naming_variable():
    from dataplatform.resources.settings import resources_from_env

    with pytest.raises(dg.DagsterInvalidConfigError, match="DATAPLATFORM_DATA_BACKEND"):
        resources_from_env({"DATAPLATFORM_DATA_BACKEND": "gcs"})
    with pytest.raises(dg.DagsterInvalidConfigError, match="s3_bucket"):
        resources_from_env({"DATAPLATFORM_DATA_BACKEND": "s3"})
    with pytest.raises(dg.DagsterInvalidConfigError, match="DATAPLATFORM_MAX_WORKERS"):
        resources_from_env({"DATAPLATFORM_MAX_WORKERS": "many"})


def test_sensor_adds_new_snapshots_and_requests_runs(crawl_root, tmp_path):
    sensor = defs.get_sensor_def("crawl_snapshot_sensor")
    (crawl_root / "crawl-data" / "not a key").mkdir()
    with dg.instance_for_test() as instance:
        resources = {"crawl_source": CrawlSourceResource(local_root=str(crawl_root))}
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert sorted(r.partition_key for r in result.run_requests) == ["CC-TEST-2026-01", "CC-TEST-2026-02"]
        [request] = result.dynamic_partitions_requests
        assert sorted(request.partition_keys) == ["CC-TEST-2026-01", "CC-TEST-2026-02"]
        assert all(r.job_name in (None, snapshot_pipeline_job.name) for r in result.run_requests)
        instance.add_dynamic_partitions(crawl_snapshots.name, list(request.partition_keys))
        # Nothing new: no runs. A new snapshot folder: exactly one run.
        assert sensor(dg.build_sensor_context(instance=instance, resources=resources)).run_requests == []
        build_snapshot_warcs(crawl_root, "CC-TEST-2026-03", n_files=1, broken=False)
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert [r.partition_key for r in result.run_requests] == ["CC-TEST-2026-03"]
