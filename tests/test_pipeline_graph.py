"""The whole asset graph materialized on the bundled sample crawl, checked against ground truth."""

import dagster as dg
import polars as pl
import pytest
from warc_factory import ENGLISH, build_snapshot_warcs, html_page, http_response, warc_record

from dataplatform.assets.partitions import crawl_snapshots
from dataplatform.definitions import all_asset_checks, all_assets
from dataplatform.execution.shard_executor import InlineExecutor
from dataplatform.io.datasets import DatasetStore
from dataplatform.resources.llm import LLMResource
from dataplatform.resources.storage import CrawlSourceResource, DatasetStorageResource, ShardExecutionResource
from dataplatform.sample_data import SAMPLE_SNAPSHOTS

OLD, NEW = SAMPLE_SNAPSHOTS


def test_every_stage_reports_both_snapshots(sample):
    _, rows, _ = sample
    stages = {(r["stage"], r["snapshot"]) for r in rows}
    for stage in ("raw_pages", "documents", "filtered", "scored", "deduplicated"):
        assert {(stage, OLD), (stage, NEW)} <= stages


def test_non_english_pages_are_routed_not_deleted(sample):
    store, _, truth = sample
    dropped = store.read_frame("filtered", OLD, "dropped")
    foreign = truth.filter((pl.col("snapshot") == OLD) & (pl.col("category") == "non_english"))
    routed = dropped.join(foreign.select("warc_record_id", "language"), on="warc_record_id", suffix="_truth")
    assert routed.height == foreign.height
    assert (routed["drop_reason"] == "language:" + routed["language_truth"]).all()
    # The dropped table keeps the original text for later stages (REWIRE, multilingual).
    assert routed["text"].null_count() == 0


def test_spam_and_boilerplate_do_not_survive_filters(sample):
    store, _, truth = sample
    kept = store.read_frame("filtered", OLD)
    junk = truth.filter((pl.col("snapshot") == OLD) & pl.col("category").is_in(["spam", "boilerplate"]))
    survivors = kept.join(junk.select("warc_record_id"), on="warc_record_id")
    assert survivors.height <= 0.2 * junk.height, survivors.select("url")


def test_scored_keeps_top_tenth_and_pools_the_band(sample):
    store, _, _ = sample
    manifest = store.manifest("scored", OLD)
    meta = manifest["metadata"]
    assert meta["rows_out"] == round(0.10 * meta["rows_in"])
    assert meta["rewrite_candidates"] == round(0.50 * meta["rows_in"]) - meta["rows_out"]
    high = store.read_frame("scored", OLD)
    pool = store.read_frame("scored", OLD, "rewrite_candidates")
    assert high["quality_score"].min() >= pool["quality_score"].max()
    classifier = store.manifest("quality_classifier", "unpartitioned")["metadata"]
    assert classifier["metrics"]["roc_auc"] >= 0.8


def test_cross_snapshot_duplicates_point_to_the_earlier_copy(sample):
    store, _, truth = sample
    dropped = store.read_frame("deduplicated", NEW, "dropped")
    old_ids = set(store.read_frame("deduplicated", OLD)["doc_id"]) | set(
        store.read_frame("deduplicated", OLD, "rewrite_pool")["doc_id"]
    )
    cross = dropped.filter(pl.col("duplicate_of").is_in(list(old_ids)))
    assert cross.height >= 3
    assert set(cross["drop_reason"]) <= {"duplicate:exact", "duplicate:minhash"}
    labelled = truth.filter((pl.col("snapshot") == NEW) & pl.col("category").is_in(["exact_duplicate", "near_duplicate"]))
    assert set(cross["warc_record_id"]) <= set(labelled["warc_record_id"])
    meta = store.manifest("deduplicated", NEW)["metadata"]
    assert meta["cross_snapshot_duplicates"] == cross.height
    assert meta["compared_with_snapshots"] == [OLD]


def test_blocking_check_stops_a_bad_shard(tmp_path):
    """A WARC that repeats the same record gives a repeated WARC record id: raw_pages' blocking check
    fails right after raw_pages is committed, and nothing downstream is materialized in that run."""
    crawl = tmp_path / "crawl"
    build_snapshot_warcs(crawl, "CC-BAD-2026-01", n_files=1, broken=False)
    warc = next(crawl.rglob("*.warc.gz"))
    record = warc_record("https://repeat.example/a", http_response(html_page("Repeat", [ENGLISH])))
    warc.write_bytes(warc.read_bytes() + record + record)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(crawl_snapshots.name, ["CC-BAD-2026-01"])
        result = dg.materialize(
            [*all_assets, *all_asset_checks],
            selection=["raw_pages", "documents", "filtered"],
            partition_key="CC-BAD-2026-01",
            instance=instance,
            raise_on_error=False,
            resources={
                "crawl_source": CrawlSourceResource(local_root=str(crawl)),
                "dataset_storage": DatasetStorageResource(local_root=str(tmp_path / "data")),
                "shard_execution": ShardExecutionResource(engine="inline"),
                "llm": LLMResource(),
            },
        )
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    [check] = failed
    assert (check.asset_key, check.check_name) == (dg.AssetKey("raw_pages"), "great_expectations_suite")
    assert check.severity == dg.AssetCheckSeverity.ERROR and check.metadata["snapshot"].value == "CC-BAD-2026-01"
    assert "unique(warc_record_id)" in str(check.metadata["failed_rules"].value)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"raw_pages"}


def test_planted_benchmark_leak_is_removed_and_named(sample):
    store, _, truth = sample
    leaks = truth.filter(pl.col("category") == "benchmark_leak")
    dropped = pl.concat([store.read_frame("decontaminated", s, "dropped") for s in SAMPLE_SNAPSHOTS], how="diagonal_relaxed")
    # A leak page that survived filtering and dedup must be caught here, named by its benchmark.
    reached = pl.concat(
        [store.read_frame("deduplicated", s, t) for s in SAMPLE_SNAPSHOTS for t in ("data", "rewrite_pool")],
        how="diagonal_relaxed",
    ).join(leaks.select("warc_record_id"), on="warc_record_id")
    caught = dropped.join(leaks.select("warc_record_id", "benchmark"), on="warc_record_id")
    assert reached.height >= 1
    assert caught.height == reached.height
    assert (caught["drop_reason"] == "contamination:" + caught["benchmark"]).all()
    kept = pl.concat([store.read_frame("decontaminated", s) for s in SAMPLE_SNAPSHOTS])
    assert kept.join(leaks.select("warc_record_id"), on="warc_record_id").height == 0


def test_training_mix_is_clean_and_reproducible(sample, tmp_path):
    import shutil

    from dataplatform.stages.mix import materialize_training_mix

    store, _, _ = sample
    meta = store.manifest("training_mix", "unpartitioned")["metadata"]
    assert meta["benchmark_overlaps"] == {"sample_qa": 0}
    assert meta["tokens"] > 0 and meta["redistributed"] == []  # the default model synthesises all three sources
    first = store.object_store.get_bytes(store.file_key("training_mix", "unpartitioned", "mix_manifest.json"))
    copy = DatasetStore.local(shutil.copytree(store.object_store.root, tmp_path / "copy"))
    materialize_training_mix(copy)
    second = copy.object_store.get_bytes(copy.file_key("training_mix", "unpartitioned", "mix_manifest.json"))
    assert first == second
    # Only train-split documents are in the mix.
    mix_ids = set(copy.read_frame("training_mix", "unpartitioned")["doc_id"])
    held_out = set(copy.read_frame("eval_splits", "unpartitioned", "validation")["doc_id"]) | set(
        copy.read_frame("eval_splits", "unpartitioned", "test")["doc_id"]
    )
    assert mix_ids and not (mix_ids & held_out)


def test_splits_are_stable_when_a_snapshot_arrives(sample, tmp_path):
    import shutil

    from dataplatform.checks.eval_rules import no_document_moved_split
    from dataplatform.core.schemas import DECONTAMINATED
    from dataplatform.stages.mix import SplitOptions, materialize_eval_splits

    store, _, _ = sample
    copy = DatasetStore.local(shutil.copytree(store.object_store.root, tmp_path / "copy"))
    before = pl.concat([copy.read_frame("eval_splits", "unpartitioned", s) for s in ("train", "validation", "test")])
    new_docs = pl.DataFrame(
        {
            "doc_id": [f"new-{i:04d}" for i in range(500)],
            "snapshot": "CC-SAMPLE-2026-12",
            "url": [f"https://new.example/{i}" for i in range(500)],
            "text": "fresh text",
            "warc_record_id": [f"<urn:uuid:{i}>" for i in range(500)],
            "warc_file": "x.warc.gz",
            "n_chars": 10,
        }
    )
    from dataplatform.core.schemas import conform

    with copy.write_partition("decontaminated", "CC-SAMPLE-2026-12") as writer:
        writer.write_table("data", conform(new_docs.to_arrow(), DECONTAMINATED))
        writer.commit({})
    committed = copy.require_manifest("eval_splits", "unpartitioned")["metadata"]
    materialize_eval_splits(
        copy, InlineExecutor(), SplitOptions(fractions=tuple(committed["fractions"].items()), salt=committed["salt"])
    )
    after = pl.concat([copy.read_frame("eval_splits", "unpartitioned", s) for s in ("train", "validation", "test")])
    joined = before.select("doc_id", "split").join(after.select("doc_id", "split"), on="doc_id", suffix="_after")
    assert joined.height == before.height and (joined["split"] == joined["split_after"]).all()
    assert after.height == before.height + 500
    # The eval_splits check compares the new version with the one it superseded and agrees.
    check = no_document_moved_split(copy)
    assert check.passed and check.metadata["compared"] == before.height, check


def test_every_mix_row_traces_back_to_its_warc_record(sample):
    store, _, truth = sample
    mix = store.read_frame("training_mix", "unpartitioned")
    documents = pl.concat([store.read_frame("documents", s) for s in SAMPLE_SNAPSHOTS])
    traced = mix.join(
        documents.select(pl.col("doc_id").alias("source_doc_id"), "warc_file", "warc_record_id"), on="source_doc_id", how="left"
    )
    assert mix.height > 0 and traced["warc_record_id"].null_count() == 0
    assert set(traced["warc_record_id"]) <= set(truth["warc_record_id"])


def test_dedup_refuses_an_index_built_with_other_signature_settings(sample, tmp_path):
    import shutil

    from dataplatform.core.dedup import DedupConfig
    from dataplatform.stages.dedup import IncompatibleSignatureIndex, materialize_deduplicated

    store, _, _ = sample
    copy = DatasetStore.local(shutil.copytree(store.object_store.root, tmp_path / "copy"))
    with pytest.raises(IncompatibleSignatureIndex, match="num_perm"):
        materialize_deduplicated(copy, NEW, config=DedupConfig(num_perm=128, bands=16, rows=8))
    report, _ = materialize_deduplicated(copy, NEW)  # same settings as the index: fine
    assert report.extra["compared_with_snapshots"] == [OLD]
