"""Every data-quality check of the graph: declared on every asset, passing on the bundled sample,
failing on a planted bad dataset, and runnable on its own (as the UI's "Execute" and the
``data_quality_checks`` job run it: a run with no partition, checking the committed data)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow as pa
import pytest

from dataplatform import names
from dataplatform.checks import synthesis_rules
from dataplatform.core.eval_splits import hash_split
from dataplatform.definitions import all_asset_checks, all_assets, defs
from dataplatform.io.datasets import DatasetStore
from dataplatform.resources.settings import resources_from_env
from dataplatform.sample_data import SAMPLE_CRAWL_ROOT, SAMPLE_SNAPSHOTS

OLD, NEW = SAMPLE_SNAPSHOTS
U = names.UNPARTITIONED
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# WARNs on the sample on purpose: the CPU demo rewrites 2 documents per snapshot, so the rewrite
# classifier holds out ~1 rewrite and its AUC is no evidence either way.
WARNS_ON_SAMPLE = {("rewrite_classifier", "min_heldout_auc")}


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def run_checks(
    instance, data_root: Path, selection: dg.AssetSelection, run_config: dict | None = None, crawl_root: Path | None = None
) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """Run checks on their own (no partition, no materialization) against ``data_root``."""
    env = {"DATAPLATFORM_DATA_ROOT": str(data_root), "DATAPLATFORM_MAX_WORKERS": "1"}
    if crawl_root is not None:
        env["DATAPLATFORM_CRAWL_ROOT"] = str(crawl_root)
    result = dg.materialize(
        [*all_assets, *all_asset_checks],
        selection=selection,
        instance=instance,
        resources=resources_from_env(env),
        raise_on_error=False,
        run_config={**QUIET, **(run_config or {})},
    )
    assert not result.get_asset_materialization_events(), "a check run must not materialize anything"
    crashes = [
        e.event_specific_data.error.message
        for e in result.all_events
        if e.is_step_failure and e.event_specific_data.error.cls_name != "DagsterAssetCheckFailedError"
    ]  # a failed blocking check is no crash
    assert not crashes, crashes
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def copy_store(store: DatasetStore, dest: Path) -> DatasetStore:
    """A copy to plant bad data in: hard links, since committed files are never modified in place."""
    shutil.copytree(store.object_store.root, dest, copy_function=os.link)
    return DatasetStore.local(dest)


def replant(
    store: DatasetStore,
    asset: str,
    partition: str,
    tables: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] | None = None,
    metadata: dict | None = None,
) -> None:
    """Commit a new version of ``asset``/``partition``: ``tables`` transformed, the rest (files,
    metadata, schema metadata) as committed, ``metadata`` merged into the manifest's."""
    manifest = store.require_manifest(asset, partition)
    with store.write_partition(asset, partition) as writer:
        for table in manifest["tables"]:
            if not store.shards(asset, partition, table):
                continue
            original = store.read_table(asset, partition, table)
            data = original
            if table in (tables or {}):
                data = tables[table](pl.from_arrow(original)).to_arrow()
                data = data.cast(
                    pa.schema(
                        [
                            original.schema.field(n) if n in original.schema.names else data.schema.field(n)
                            for n in data.schema.names
                        ]
                    )
                ).replace_schema_metadata(original.schema.metadata)
            writer.write_table(table, data)
        for name, entry in manifest.get("files", {}).items():
            with store.object_store.readable_path(f"{asset}/{partition}/{entry['path']}") as path:
                writer.add_file(path, name)
        writer.commit({**manifest["metadata"], **(metadata or {})})


def add_rows(frame: pl.DataFrame, rows: list[dict]) -> pl.DataFrame:
    return pl.concat([frame, pl.DataFrame(rows, schema=frame.schema)])


def set_where(column: str, value, where: pl.Expr) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda f: f.with_columns(
        pl.when(where).then(pl.lit(value)).otherwise(pl.col(column)).cast(f.schema[column]).alias(column)
    )


def first(store: DatasetStore, asset: str, partition: str, table: str, column: str):
    return store.read_frame(asset, partition, table)[column][0]


# ------------------------------------------------------------------------------ the definitions
def test_every_asset_in_the_graph_has_a_check_that_says_what_it_verifies():
    graph = defs.resolve_asset_graph()
    checked = {key.asset_key for key in graph.asset_check_keys}
    assert graph.get_all_asset_keys() - checked == set()
    for checks in all_asset_checks:
        for spec in checks.check_specs:
            assert spec.description and len(spec.description) > 60, spec.key


def _job_checks(name: str) -> tuple[set[str], set[str]]:
    """(assets whose checks the job runs, assets it materializes)."""
    graph = defs.resolve_job_def(name).asset_layer.asset_graph
    return (
        {k.asset_key.to_user_string() for k in graph.asset_check_keys},
        {k.to_user_string() for k in graph.executable_asset_keys},
    )


def test_checks_run_with_their_assets_in_every_job():
    for job in ("snapshot_pipeline", "training_mix_job", "corpus_refresh", "ingest_job", "dedup_job"):
        checked, materialized = _job_checks(job)
        assert materialized and materialized == checked, job  # every asset a job builds is checked in that run
    checked, materialized = _job_checks("data_quality_checks")
    assert checked == {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()} and not materialized


def test_blocking_is_declared_where_downstream_would_be_wrong():
    specs = {(s.asset_key.to_user_string(), s.name): s for c in all_asset_checks for s in c.check_specs}
    for key in [
        ("raw_pages", "great_expectations_suite"),
        ("deduplicated", "duplicate_of_resolves"),
        ("dedup_signature_index", "signature_matches_config"),
        ("decontaminated", "no_benchmark_overlap"),
        ("eval_splits", "splits_disjoint"),
        ("eval_splits", "no_document_moved_split"),
        ("training_mix", "no_benchmark_overlap"),
        ("training_mix", "no_heldout_documents"),
        ("rewire_outputs", "sources_in_pool"),
        ("rewire_outputs", "provenance_recorded"),
        ("rewrite_classifier", "min_heldout_auc"),
        ("rewritten", "sources_exist_upstream"),
        ("rewritten", "kept_top_by_rank"),
        ("instruction_pairs", "pairs_grounded"),
        ("instruction_pairs", "pairs_traceable"),
    ]:
        assert specs[key].blocking, key
    for key in [
        ("raw_pages", "quarantine_share_in_band"),
        ("eval_splits", "fractions_match_config"),
        ("eval_splits", "every_split_non_empty"),
        ("contamination_audit", "benchmarks_not_likely_seen"),
        ("rewire_outputs", "acceptance_rate_in_band"),
    ]:
        assert not specs[key].blocking, key


# ------------------------------------------------------------------------------ on the sample
@pytest.fixture(scope="module")
def sample_results(sample, instance):
    store, _, _ = sample
    return run_checks(instance, store.object_store.root, dg.AssetSelection.all_asset_checks(), crawl_root=SAMPLE_CRAWL_ROOT)


def test_every_check_passes_on_the_sample(sample_results):
    declared = {(s.asset_key.to_user_string(), s.name) for c in all_asset_checks for s in c.check_specs}
    assert set(sample_results) == declared
    failing = {key: e.description for key, e in sample_results.items() if not e.passed}
    assert set(failing) == WARNS_ON_SAMPLE, failing
    warned = sample_results[("rewrite_classifier", "min_heldout_auc")]
    assert warned.severity == dg.AssetCheckSeverity.WARN and "not evidence" in warned.description
    # the default model's rewrites and pairs pass their blocking checks (a WARN does not block the graph)
    for key in [
        ("rewire_outputs", "sources_in_pool"),
        ("rewritten", "kept_top_by_rank"),
        ("instruction_pairs", "pairs_traceable"),
    ]:
        assert sample_results[key].passed and sample_results[key].description == "all 2 snapshots pass", key


def test_per_snapshot_checks_cover_every_snapshot_when_run_alone(sample_results):
    result = sample_results[("deduplicated", "duplicate_of_resolves")]
    table = result.metadata["snapshots"].value
    assert OLD in table and NEW in table and result.description == "all 2 snapshots pass"


def test_contamination_audit_reports_auc_with_its_interval(sample_results):
    metadata = sample_results[("contamination_audit", "audit_complete")].metadata
    low, high = metadata["auc_ci"].value
    assert 0 <= low <= metadata["auc"].value <= high <= 1
    assert metadata["per_benchmark"].value["sample_qa"]["items"] == 20
    # SmolLM2 never saw the sample crawl: no membership signal, so no benchmark is judged
    seen = sample_results[("contamination_audit", "benchmarks_not_likely_seen")]
    assert seen.passed and seen.description.startswith("not judged: audit no_membership_signal")


def test_demo_table_adds_up_and_every_split_is_populated(sample):
    store, rows, _ = sample
    assert rows
    for row in rows:
        assert row["rows_in"] == row["rows_out"] + row["rows_dropped"] + sum(row["routed"].values()), row
        assert row["rows_dropped"] == sum(row["drop_counts"].values()), row
    for asset in (names.EVAL_SPLITS, names.TRAINING_MIX):
        meta = store.manifest(asset, U)["metadata"]
        assert meta["rows_in"] == meta["rows_out"] + meta["rows_dropped"] + sum(meta["rows_routed"].values()), asset
    counts = store.manifest(names.EVAL_SPLITS, U)["metadata"]["counts"]
    assert set(counts) == set(names.SPLITS) and all(counts.values()), counts


# ------------------------------------------------------------------------- planted bad datasets
def _benchmark_text(store: DatasetStore) -> str:
    return store.read_frame(names.EVAL_BENCHMARKS, U, names.ITEMS)["text"][0]


def _test_doc(store: DatasetStore) -> str:
    return store.read_frame(names.EVAL_SPLITS, U, "test")["doc_id"][0]


def _pool_id(store: DatasetStore) -> str:
    return first(store, names.DECONTAMINATED, OLD, names.REWRITE_POOL, "doc_id")


def _unattempted(store: DatasetStore, snapshot: str, n: int) -> list[str]:
    """``n`` documents of the snapshot's rewrite band that REWIRE did not attempt."""
    attempted = pl.concat(
        [store.read_frame(names.REWIRE_OUTPUTS, snapshot, t)["source_doc_id"] for t in (names.DATA, names.FAILURES)]
    )
    band = store.read_frame(names.DECONTAMINATED, snapshot, names.REWRITE_POOL)["doc_id"]
    return band.filter(~band.is_in(attempted.implode())).head(n).to_list()


def _rewire_rows(store: DatasetStore, snapshot: str, n: int) -> tuple[list[dict], list[dict]]:
    """``n`` more rewrites and ``n`` more failures, as the default model would record them."""
    meta = store.require_manifest(names.REWIRE_OUTPUTS, snapshot)["metadata"]
    docs = _unattempted(store, snapshot, 2 * n)
    common = {"prompt_version": meta["prompt_version"], "model": meta["model"], "n_generated_tokens": 40}
    rewrites = [
        {
            "doc_id": f"rw-{d}",
            "source_doc_id": d,
            "text": "a rewritten text",
            "band": "rewrite_band",
            "snapshot": snapshot,
            "n_prompt_tokens": 100,
            **common,
        }
        for d in docs[:n]
    ]
    failures = [{"source_doc_id": d, "reason": "rewire:truncated", "raw_output": "...", **common} for d in docs[n:]]
    return rewrites, failures


def plant_rewire_attempts(store: DatasetStore, snapshot: str, accepted: int, failed: int) -> None:
    """Commit ``rewire_outputs`` of ``snapshot`` with ``accepted`` more rewrites and ``failed`` more failures."""
    rewrites, failures = _rewire_rows(store, snapshot, max(accepted, failed))
    meta = store.require_manifest(names.REWIRE_OUTPUTS, snapshot)["metadata"]
    attempted = meta["attempted"] + accepted + failed
    drops = {**meta["drop_counts"], "rewire:truncated": meta["drop_counts"].get("rewire:truncated", 0) + failed}
    replant(
        store,
        names.REWIRE_OUTPUTS,
        snapshot,
        {names.DATA: lambda f: add_rows(f, rewrites[:accepted]), names.FAILURES: lambda f: add_rows(f, failures[:failed])},
        metadata={"attempted": attempted, "rows_in": attempted, "drop_counts": drops},
    )


def _pair(store: DatasetStore, template_id: str, grounding: float, rating: int = 4) -> list[dict]:
    doc = first(store, names.DECONTAMINATED, OLD, names.DATA, "doc_id")
    return [
        {
            "pair_id": "pair-1",
            "source_doc_id": doc,
            "template_id": template_id,
            "instruction": "What is it?",
            "answer": "It is a thing.",
            "grounding_score": grounding,
            "judge_rating": rating,
            "snapshot": OLD,
        }
    ]


def plant_moved_split(store: DatasetStore) -> None:
    train = store.read_frame(names.EVAL_SPLITS, U, "train")
    moved = train.tail(1)
    replant(
        store,
        names.EVAL_SPLITS,
        U,
        {
            "train": lambda f: f.head(f.height - 1),
            "validation": lambda f: pl.concat([f, moved.with_columns(pl.lit("validation").alias("split"))]),
        },
    )


def plant_resalted_splits(store: DatasetStore) -> None:
    """A deliberate reshuffle: new salt, every document re-assigned with it."""
    meta = store.require_manifest(names.EVAL_SPLITS, U)["metadata"]
    docs = pl.concat([store.read_frame(names.EVAL_SPLITS, U, s) for s in names.SPLITS])
    docs = docs.with_columns(hash_split(docs["doc_id"], meta["fractions"], salt="resalted"))
    replant(
        store,
        names.EVAL_SPLITS,
        U,
        {s: (lambda f, s=s: docs.filter(pl.col("split") == s)) for s in names.SPLITS},
        metadata={"salt": "resalted"},
    )


def plant_bad_crawl(store: DatasetStore, tmp: Path) -> Path:
    crawl = tmp / "crawl"
    shutil.copytree(SAMPLE_CRAWL_ROOT, crawl)
    victim = sorted((crawl / "crawl-data" / OLD).rglob("*.warc.gz"))[0]
    victim.write_bytes(b"<html>not a WARC file</html>")
    return crawl


def plant_bad_benchmark_file(tmp: Path) -> dict:
    folder = tmp / "benchmarks"
    folder.mkdir()
    (folder / "good.jsonl").write_text(json.dumps({"question": "What colour is the sky on a clear day at noon?"}) + "\n")
    (folder / "blank.jsonl").write_text(json.dumps({"question": "", "answer": ""}) + "\n")
    return {"ops": {"benchmark_files_benchmark_files_valid": {"config": {"benchmarks_path": str(folder)}}}}


PLANTED = {
    ("raw_pages", "great_expectations_suite"): (
        lambda s: replant(s, "raw_pages", OLD, {"data": lambda f: pl.concat([f, f.head(1)])}),
        "warc_record_id",
    ),
    ("raw_pages", "quarantine_share_in_band"): (
        lambda s: replant(s, "raw_pages", OLD, {"quarantine": lambda f: pl.concat([f] * 10)}),
        "quarantine share",
    ),
    ("documents", "great_expectations_suite"): (
        lambda s: replant(s, "documents", NEW, {"data": lambda f: pl.concat([f, f.tail(1)])}),
        "unique(doc_id)",
    ),
    ("documents", "every_page_accounted_for"): (
        lambda s: replant(s, "documents", OLD, {"data": lambda f: f.slice(3)}),
        "3 raw page(s) have no documents row",
    ),
    ("filtered", "great_expectations_suite"): (
        lambda s: replant(s, "filtered", OLD, {"dropped": lambda f: f.head(0)}),
        "drop_fraction_between",
    ),
    ("filtered", "kept_rows_pass_every_rule"): (
        lambda s: replant(s, "filtered", NEW, {"data": set_where("passes_c4", False, pl.int_range(pl.len()) == 0)}),
        "1 kept row(s) failed a rule family",
    ),
    ("quality_classifier", "min_heldout_auc"): (
        lambda s: replant(s, "quality_classifier", U, metadata={"metrics": {"roc_auc": 0.55, "n_test": 85}}),
        "0.550 < 0.8",
    ),
    ("scored", "great_expectations_suite"): (
        lambda s: replant(s, "scored", OLD, {"data": set_where("quality_score", 1.5, pl.int_range(pl.len()) == 0)}),
        "between(quality_score",
    ),
    ("scored", "ranked_by_score"): (
        lambda s: replant(
            s, "scored", OLD, {"rewrite_candidates": set_where("quality_score", 0.99, pl.int_range(pl.len()) == 0)}
        ),
        "lowest data score",
    ),
    ("deduplicated", "no_duplicate_kept"): (
        lambda s: replant(
            s,
            "deduplicated",
            NEW,
            {
                "rewrite_pool": lambda f: pl.concat(
                    [f, f.head(1).with_columns(pl.lit("copy-of-first").alias("doc_id"), (pl.col("text") + " !!").alias("text"))]
                )
            },
        ),
        "repeat another's normalised text",
    ),
    ("deduplicated", "duplicate_of_resolves"): (
        lambda s: replant(
            s, "deduplicated", NEW, {"dropped": set_where("duplicate_of", "no-such-doc", pl.int_range(pl.len()) == 0)}
        ),
        "duplicate_of is not a kept document",
    ),
    ("deduplicated", "duplicate_rate_in_band"): (
        lambda s: replant(s, "deduplicated", OLD, {"dropped": lambda f: f.head(0)}),
        "duplicate rate 0 outside",
    ),
    ("dedup_signature_index", "signature_matches_config"): (
        lambda s: replant(
            s,
            "dedup_signature_index",
            NEW,
            metadata={
                "signature": {**s.require_manifest("dedup_signature_index", NEW)["metadata"]["signature"], "num_perm": 128}
            },
        ),
        "num_perm",
    ),
    ("dedup_signature_index", "covers_kept_documents"): (
        lambda s: replant(s, "dedup_signature_index", OLD, metadata={"documents": 3}),
        "index records 3 documents",
    ),
    ("eval_benchmarks", "items_complete"): (
        lambda s: replant(s, "eval_benchmarks", U, {"items": set_where("text", "  ", pl.int_range(pl.len()) == 2)}),
        "1 item(s) without text: sample_qa-0002",
    ),
    ("eval_benchmarks", "ngram_index_consistent"): (
        lambda s: replant(s, "eval_benchmarks", U, {"ngram_index": lambda f: f.head(f.height // 2)}),
        "rebuilding from the items",
    ),
    ("decontaminated", "great_expectations_suite"): (
        lambda s: replant(s, "decontaminated", OLD, {"data": set_where("text", None, pl.int_range(pl.len()) == 0)}),
        "not_null(text)",
    ),
    ("decontaminated", "no_benchmark_overlap"): (
        lambda s: replant(
            s, "decontaminated", NEW, {"rewrite_pool": set_where("text", _benchmark_text(s), pl.int_range(pl.len()) == 0)}
        ),
        "shared with sample_qa",
    ),
    ("eval_splits", "splits_disjoint"): (
        lambda s: replant(
            s,
            "eval_splits",
            U,
            {
                "test": lambda f: pl.concat(
                    [f, s.read_frame("eval_splits", U, "train").head(1).with_columns(pl.lit("test").alias("split"))]
                )
            },
        ),
        "in more than one split",
    ),
    ("eval_splits", "every_split_non_empty"): (
        lambda s: replant(s, "eval_splits", U, {"test": lambda f: f.head(0)}),
        "split 'test' is empty",
    ),
    ("eval_splits", "fractions_match_config"): (
        lambda s: replant(
            s,
            "eval_splits",
            U,
            {
                "train": lambda f: f.head(3),
                "test": lambda f: pl.concat(
                    [f, s.read_frame("eval_splits", U, "train").slice(3).with_columns(pl.lit("test").alias("split"))]
                ),
            },
        ),
        "test:",
    ),
    ("eval_splits", "no_document_moved_split"): (plant_moved_split, "1 document(s) moved split"),
    ("contamination_audit", "audit_complete"): (
        lambda s: replant(s, "contamination_audit", U, {"data": lambda f: f.head(5)}),
        "5 finite item scores for 20 items",
    ),
    ("contamination_audit", "benchmarks_not_likely_seen"): (  # a model that separates members: 15 of 20 items flagged, 1 expected
        lambda s: replant(
            s,
            "contamination_audit",
            U,
            metadata={
                "status": "calibrated",
                "auc": 0.9,
                "auc_ci": [0.8, 0.97],
                "false_positive_rate": 0.05,
                "per_benchmark": {"sample_qa": {"items": 20, "flagged": 15, "expected_false_flags": 1.0}},
            },
        ),
        "sample_qa likely seen",
    ),
    ("rewire_outputs", "sources_in_pool"): (
        lambda s: replant(
            s, "rewire_outputs", OLD, {"data": set_where("source_doc_id", "no-such-doc", pl.int_range(pl.len()) == 0)}
        ),
        "not in their band of the REWIRE pool",
    ),
    ("rewire_outputs", "provenance_recorded"): (
        lambda s: replant(
            s, "rewire_outputs", NEW, {"data": set_where("prompt_version", "rewire_v1", pl.int_range(pl.len()) == 0)}
        ),
        "1 rewrites without prompt_version 'rewire_small_v1': rewire_v1",
    ),
    ("rewire_outputs", "acceptance_rate_in_band"): (lambda s: plant_rewire_attempts(s, OLD, 0, 30), "acceptance rate 0.0625"),
    ("rewrite_classifier", "min_heldout_auc"): (
        lambda s: replant(
            s,
            "rewrite_classifier",
            U,
            metadata={"metrics": {"roc_auc": 0.55, "n_test": 85, "n_test_negative": 40, "n_test_positive": 45}},
        ),
        "0.550 < 0.8",
    ),
    ("rewritten", "sources_exist_upstream"): (
        lambda s: replant(
            s, "rewritten", OLD, {"dropped": set_where("source_doc_id", "no-such-doc", pl.int_range(pl.len()) == 0)}
        ),
        "not rewrites of rewire_outputs",
    ),
    ("rewritten", "kept_top_by_rank"): (
        lambda s: replant(s, "rewritten", NEW, {"data": set_where("rewrite_score", -1.0, pl.int_range(pl.len()) == 0)}),
        "score above the lowest kept score",
    ),
    ("instruction_templates", "templates_well_formed"): (
        lambda s: replant(
            s,
            "instruction_templates",
            U,
            {"data": set_where("template", "How do I {task} in {software?", pl.col("template_id") == "seed-001")},
        ),
        "seed-001",
    ),
    ("instruction_pairs", "pairs_grounded"): (
        lambda s: replant(s, "instruction_pairs", OLD, {"data": lambda f: add_rows(f, _pair(s, "seed-001", 0.5))}),
        "grounded below 0.8",
    ),
    ("instruction_pairs", "pairs_traceable"): (
        lambda s: replant(s, "instruction_pairs", OLD, {"data": lambda f: add_rows(f, _pair(s, "no-such-template", 0.9))}),
        "not in instruction_templates",
    ),
    ("training_mix", "no_benchmark_overlap"): (
        lambda s: replant(s, "training_mix", U, {"data": set_where("text", _benchmark_text(s), pl.int_range(pl.len()) == 0)}),
        "shared with sample_qa",
    ),
    ("training_mix", "great_expectations_suite"): (
        lambda s: replant(s, "training_mix", U, {"data": set_where("n_tokens", 0, pl.int_range(pl.len()) == 0)}),
        "between(n_tokens",
    ),
    ("toxicity", "great_expectations_suite"): (
        lambda s: replant(s, "toxicity", OLD, {"data": set_where("toxicity_score", 1.5, pl.int_range(pl.len()) == 0)}),
        "between(toxicity_score",
    ),
    ("color_conditional_model", "target_loss_reduced"): (
        lambda s: replant(
            s,
            "color_conditional_model",
            U,
            metadata={
                "result": {
                    **s.require_manifest("color_conditional_model", U)["metadata"]["result"],
                    "target_loss_before": 2.0,
                    "target_loss_after": 2.5,
                }
            },
        ),
        "did not lower it",
    ),
    ("color_scores", "great_expectations_suite"): (
        lambda s: replant(s, "color_scores", OLD, {"data": set_where("loss_prior", -1.0, pl.int_range(pl.len()) == 0)}),
        "between(loss_prior",
    ),
    ("training_mix", "no_heldout_documents"): (
        lambda s: replant(s, "training_mix", U, {"data": set_where("source_doc_id", _test_doc(s), pl.int_range(pl.len()) == 0)}),
        "held-out documents",
    ),
}
WARN_CHECKS = {
    ("raw_pages", "quarantine_share_in_band"),
    ("eval_splits", "every_split_non_empty"),
    ("eval_splits", "fractions_match_config"),
    ("contamination_audit", "benchmarks_not_likely_seen"),
    ("rewire_outputs", "acceptance_rate_in_band"),
}


def test_every_check_has_a_planted_failure():
    declared = {(s.asset_key.to_user_string(), s.name) for c in all_asset_checks for s in c.check_specs}
    external = {
        ("crawl_warc_files", "warc_files_readable"),
        ("benchmark_files", "benchmark_files_valid"),
        ("color_target_files", "color_target_readable"),
    }
    assert declared - external == set(PLANTED)


@pytest.mark.parametrize("key", sorted(PLANTED), ids=lambda k: ":".join(k))
def test_check_fails_on_planted_bad_data(sample, instance, tmp_path, key):
    store, _, _ = sample
    copy = copy_store(store, tmp_path / "store")
    plant, expected = PLANTED[key]
    plant(copy)
    result = run_checks(instance, tmp_path / "store", dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey(key[0]), key[1])))[
        key
    ]
    assert not result.passed
    assert result.severity == (dg.AssetCheckSeverity.WARN if key in WARN_CHECKS else dg.AssetCheckSeverity.ERROR)
    shown = result.description + json.dumps({k: str(v.value) for k, v in result.metadata.items()})
    assert expected in shown, shown


def test_reshuffled_splits_warn_instead_of_failing(sample, instance, tmp_path):
    store, _, _ = sample
    copy = copy_store(store, tmp_path / "store")
    plant_resalted_splits(copy)
    key = ("eval_splits", "no_document_moved_split")
    result = run_checks(instance, tmp_path / "store", dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey(key[0]), key[1])))[
        key
    ]
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "salt or fractions changed" in result.description


def _run_one(instance, root: Path, key: tuple[str, str]) -> dg.AssetCheckEvaluation:
    return run_checks(instance, root, dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey(key[0]), key[1])))[key]


# More planted failures of the synthesis checks: each is a way the data can be wrong that a user depends on.
MORE_PLANTED = {
    "a rewrite whose band is not its source's": (
        ("rewire_outputs", "sources_in_pool"),
        lambda s: replant(s, "rewire_outputs", NEW, {"data": set_where("band", "high_quality", pl.col("band") == "low_quality")}),
        "not in their band of the REWIRE pool",
    ),
    "a document rewritten twice": (
        ("rewire_outputs", "sources_in_pool"),
        lambda s: replant(
            s,
            "rewire_outputs",
            OLD,
            {
                "failures": lambda f: add_rows(
                    f, [{**s.read_frame("rewire_outputs", OLD).row(0, named=True), "reason": "rewire:truncated"}]
                )
            },
        ),
        "attempted more than once",
    ),
    "a failure without a known reason": (
        ("rewire_outputs", "provenance_recorded"),
        lambda s: (
            plant_rewire_attempts(s, OLD, 0, 1)
            or replant(s, "rewire_outputs", OLD, {"failures": set_where("reason", "model said no", pl.int_range(pl.len()) == 0)})
        ),
        "unknown reasons",
    ),
    "the classifier's model file gone": (
        ("rewrite_classifier", "min_heldout_auc"),
        lambda s: (
            s.object_store.root
            / "rewrite_classifier"
            / U
            / s.require_manifest("rewrite_classifier", U)["files"][first_model_file(s)]["path"]
        ).unlink(),
        "bytes in storage",
    ),
    "a rewrite neither kept nor set aside": (
        ("rewritten", "sources_exist_upstream"),
        lambda s: replant(s, "rewritten", OLD, {"dropped": lambda f: f.head(0)}),
        "neither kept nor set aside",
    ),
    "more kept than the keep fraction": (
        ("rewritten", "kept_top_by_rank"),
        lambda s: replant(
            s, "rewritten", OLD, {"data": lambda f: pl.concat([f, s.read_frame("rewritten", OLD, "dropped").drop("drop_reason")])}
        ),
        "2 of 3 rewrites kept, the top 0.1 by rank is 1",
    ),
    "a pair the judge rejected": (
        ("instruction_pairs", "pairs_grounded"),
        lambda s: replant(s, "instruction_pairs", OLD, {"data": lambda f: add_rows(f, _pair(s, "seed-001", 0.9, rating=2))}),
        "rated below 4",
    ),
    "a failure from a template not in the bank": (
        ("instruction_pairs", "pairs_traceable"),
        lambda s: replant(
            s, "instruction_pairs", NEW, {"failures": set_where("template_id", "gone-template", pl.int_range(pl.len()) == 0)}
        ),
        "gone-template",
    ),
}


def first_model_file(store: DatasetStore) -> str:
    return store.require_manifest("rewrite_classifier", U)["metadata"]["model_file"]


@pytest.mark.parametrize("case", sorted(MORE_PLANTED))
def test_synthesis_checks_fail_on_more_planted_data(sample, instance, tmp_path, case):
    store, _, _ = sample
    key, plant, expected = MORE_PLANTED[case]
    copy = copy_store(store, tmp_path / "store")
    plant(copy)
    result = _run_one(instance, tmp_path / "store", key)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    shown = result.description + json.dumps({k: str(v.value) for k, v in result.metadata.items()})
    assert expected in shown, shown


def test_rewire_acceptance_in_band_passes_once_judged(sample, instance, tmp_path):
    store, _, _ = sample
    copy = copy_store(store, tmp_path / "store")
    for snapshot in (OLD, NEW):
        plant_rewire_attempts(copy, snapshot, 15, 5)
    result = _run_one(instance, tmp_path / "store", ("rewire_outputs", "acceptance_rate_in_band"))
    assert result.passed, result.description
    assert "22 attempted documents rewritten" not in result.description  # judged, not waved through
    for snapshot in (OLD, NEW):
        assert synthesis_rules.rewire_acceptance(copy, snapshot, 0.1, 1.0, 20).summary.endswith("attempted documents rewritten")
    # the same data, with the planted rewrites well formed, passes the blocking checks of rewire_outputs
    for name in ("sources_in_pool", "provenance_recorded"):
        assert _run_one(instance, tmp_path / "store", ("rewire_outputs", name)).passed, name


def test_rewrite_classifier_auc_is_judged_once_enough_rewrites_are_held_out(sample, instance, tmp_path):
    store, _, _ = sample
    copy = copy_store(store, tmp_path / "store")
    replant(copy, "rewrite_classifier", U, metadata={"metrics": {"roc_auc": 0.93, "n_test_negative": 40, "n_test_positive": 45}})
    result = _run_one(instance, tmp_path / "store", ("rewrite_classifier", "min_heldout_auc"))
    assert result.passed and "0.930 >= 0.8" in result.description


def test_external_inputs_are_checked(sample, instance, tmp_path):
    store, _, _ = sample
    crawl = plant_bad_crawl(store, tmp_path)
    key = ("crawl_warc_files", "warc_files_readable")
    result = run_checks(
        instance,
        store.object_store.root,
        dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey(key[0]), key[1])),
        crawl_root=crawl,
    )[key]
    assert not result.passed and "not a WARC" in result.description
    key = ("benchmark_files", "benchmark_files_valid")
    result = run_checks(
        instance,
        store.object_store.root,
        dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey(key[0]), key[1])),
        run_config=plant_bad_benchmark_file(tmp_path),
    )[key]
    assert not result.passed and "blank.jsonl" in result.description
    key = ("color_target_files", "color_target_readable")
    (tmp_path / "target.txt").write_text("only one short document\n")
    config = {"ops": {"color_target_files_color_target_readable": {"config": {"target_path": str(tmp_path / "target.txt")}}}}
    result = run_checks(
        instance,
        store.object_store.root,
        dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey(key[0]), key[1])),
        run_config=config,
    )[key]
    assert not result.passed and "only 1 target documents" in result.description


# ---------------------------------------------------------------------------------- freshness
def _freshness(instance, key: str, now):
    """The freshness state Dagster's freshness daemon would record for ``key`` at ``now`` (and the UI show)."""
    import asyncio

    from dagster._core.definitions.freshness_evaluator import FRESHNESS_EVALUATORS_BY_POLICY_TYPE
    from dagster._core.loader import LoadingContextForTest
    from dagster._core.test_utils import freeze_time

    node = defs.resolve_asset_graph().get(dg.AssetKey(key))
    evaluator = FRESHNESS_EVALUATORS_BY_POLICY_TYPE[type(node.freshness_policy)]()
    with freeze_time(now):
        return asyncio.run(evaluator.evaluate_freshness(context=LoadingContextForTest(instance), node=node)).value


def test_freshness_flags_a_missed_weekly_refresh_and_a_stalled_snapshot_chain():
    import datetime as dt

    from dagster._core.test_utils import freeze_time

    graph = defs.resolve_asset_graph()
    partitioned = [k for k in graph.materializable_asset_keys if graph.get(k).partitions_def is not None]
    assert partitioned and all(graph.get(k).freshness_policy is not None for k in partitioned)
    monday = dt.datetime(2026, 11, 30, 5, 0, tzinfo=dt.UTC)  # the weekly schedule ticks at 04:00
    assert monday.weekday() == 0
    hour, day = dt.timedelta(hours=1), dt.timedelta(days=1)
    with dg.instance_for_test() as inst:
        assert _freshness(inst, "training_mix", monday) == "UNKNOWN"
        with freeze_time(monday):
            for key in ("training_mix", "eval_splits"):
                inst.report_runless_asset_event(dg.AssetMaterialization(key))
            inst.report_runless_asset_event(dg.AssetMaterialization("decontaminated", partition=OLD))
        for key in ("training_mix", "eval_splits"):
            assert _freshness(inst, key, monday + 8 * hour) == "PASS"
            assert _freshness(inst, key, monday + 6 * day) == "PASS"
            assert _freshness(inst, key, monday + 7 * day + 8 * hour) == "FAIL"  # next Monday's refresh did not happen
        assert [_freshness(inst, "decontaminated", monday + d * day) for d in (10, 40, 50)] == ["PASS", "WARN", "FAIL"]


# ------------------------------------------------------------------------------- pure helpers
def test_duplicate_ids_are_found_in_bounded_passes():
    from dataplatform.checks.frames import duplicate_values

    ids = pl.DataFrame({"doc_id": [f"d{i % 700}" for i in range(1000)] + [None, None]})
    one_pass = duplicate_values(ids, "doc_id")
    duplicates, nulls, examples = duplicate_values(ids.lazy(), "doc_id", rows_per_pass=64)  # 16 passes
    assert (duplicates, nulls) == one_pass[:2] == (300, 2)
    assert len(examples) == 5 and set(examples) <= {f"d{i}" for i in range(300)}


def test_binomial_tail_matches_scipy():
    from scipy.stats import binom

    from dataplatform.checks.eval_rules import binomial_tail

    for k, n, p in [(8, 20, 0.05), (2, 20, 0.05), (150, 1000, 0.1), (0, 5, 0.1), (6, 5, 0.1)]:
        assert binomial_tail(k, n, p) == pytest.approx(binom.sf(k - 1, n, p), rel=1e-9, abs=1e-15), (k, n, p)
