"""Synthesis stages and assets: the sample graph with the real default model (accepted rewrites and
instruction pairs, all three sources in the mix), REWIRE's pool, classifier and rank cut, resume
after a crash, templates from a query log, the Min-K% audit's calibration sets, and the vLLM
backend refusing clearly where there is no vLLM or GPU."""

import json
import re
import shutil

import dagster as dg
import numpy as np
import polars as pl
import pytest

from dataplatform.core.synthesis.fineinstructions import FineInstructionsConfig, HashingEmbedder
from dataplatform.io.datasets import DatasetStore
from dataplatform.llm import Generation
from dataplatform.sample_data import SAMPLE_SNAPSHOTS
from dataplatform.stages.synthesis import (
    AuditOptions,
    InstructionOptions,
    RewireOptions,
    materialize_contamination_audit,
    materialize_instruction_pairs,
    materialize_instruction_templates,
    materialize_rewire_outputs,
    materialize_rewrite_classifier,
    materialize_rewritten,
    rewire_pool,
)

OLD, NEW = SAMPLE_SNAPSHOTS[0], SAMPLE_SNAPSHOTS[-1]


class ScriptedEngine:
    """Answers like a well-behaved instruction model, except every third prompt (malformed) and,
    for instruction pairs, every fifth (an answer not taken from the document). The judge prefers 4;
    log-probs are high for texts containing "member"."""

    model_id = "scripted-test-engine"
    max_model_len = 100_000

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls = 0
        self.prompts = 0
        self.fail_on_call = fail_on_call

    def generate(self, prompts, sampling=None):
        self.calls += 1
        if self.fail_on_call is not None and self.calls == self.fail_on_call:
            raise RuntimeError("simulated GPU worker crash")
        out = []
        for prompt in prompts:
            self.prompts += 1
            doc = re.search(r"<<<\n(.*)\n>>>", prompt, re.S).group(1)
            sentences = " ".join(doc.split(". ")[:3])
            if self.prompts % 3 == 0:
                text = "I cannot help with that"  # no markers: malformed
            elif "[IMPROVED]" in prompt:
                text = f"The purpose is to inform.\n[IMPROVED]\n{doc}"
            elif self.prompts % 5 == 0:
                text = "[INSTRUCTION]Tell me about dragons[/INSTRUCTION][ANSWER]Dragons breathe fire and hoard gold in caves far away."
            else:
                text = f"[INSTRUCTION]Summarise this page[/INSTRUCTION][ANSWER]{sentences}"
            out.append(Generation(text, len(prompt) // 4, len(text) // 4, "stop"))
        return out

    def score_continuations(self, prompts, continuations, response_prefix=""):
        return np.array([[0.0 if c == "4" else -5.0 for c in continuations] for _ in prompts])

    def prompt_logprobs(self, texts):
        return [np.full(max(len(t.split()) - 1, 1), -0.5 if "member" in t else -4.0, dtype=np.float32) for t in texts]

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]


@pytest.fixture
def store_copy(sample, tmp_path):
    store, _, _ = sample
    return DatasetStore.local(shutil.copytree(store.object_store.root, tmp_path / "copy"))


# ------------------------------------------------------------------------------ the sample graph
def test_sample_graph_synthesised_with_the_default_model(sample):
    """`dataplatform demo`'s graph on CPU with the bundled SmolLM2-135M: every attempted document is
    accounted for, rewrites and instruction pairs are accepted, and the mix has all three sources."""
    store, rows, _ = sample
    for stage in ("rewire_outputs", "instruction_pairs"):
        for snapshot in SAMPLE_SNAPSHOTS:
            row = next(r for r in rows if r["stage"] == stage and r["snapshot"] == snapshot)
            assert row["rows_in"] == row["rows_out"] + row["rows_dropped"]
            assert store.read_frame(stage, snapshot, "failures").height == row["rows_dropped"]
            meta = store.manifest(stage, snapshot)["metadata"]
            assert (
                meta["model"] == "SmolLM2-135M-Instruct-Q4_1"
                and meta["max_docs"] == {"rewire_outputs": 2, "instruction_pairs": 4}[stage]
            )
            assert meta["tokens_per_s"] > 0
    rewire_meta = store.manifest("rewire_outputs", OLD)["metadata"]
    assert rewire_meta["prompt_version"] == "rewire_small_v1" and rewire_meta["pool"] == "filtered_and_deduplicated"
    assert (
        rewire_meta["pool_size"]
        == rewire_meta["pool_high_quality"] + rewire_meta["pool_rewrite_band"] + rewire_meta["pool_low_quality"]
    )
    rewrites = pl.concat([store.read_frame("rewire_outputs", s) for s in SAMPLE_SNAPSHOTS], how="diagonal_relaxed")
    kept = pl.concat([store.read_frame("rewritten", s) for s in SAMPLE_SNAPSHOTS], how="diagonal_relaxed")
    pairs = pl.concat([store.read_frame("instruction_pairs", s) for s in SAMPLE_SNAPSHOTS], how="diagonal_relaxed")
    assert rewrites.height >= 1 and kept.height >= 1 and pairs.height >= 1
    assert set(kept["doc_id"]) <= set(rewrites["doc_id"]) and kept["rewrite_score"].is_between(0, 1).all()
    assert (pairs["grounding_score"] >= 0.8).all() and (pairs["judge_rating"] >= 4).all()
    assert set(pairs["prompt_version"]) == {"fineinstructions_small_v1"}
    mix = store.manifest("training_mix", "unpartitioned")["metadata"]
    assert mix["redistributed"] == [] and all(
        mix["tokens_per_source"][s] > 0 for s in ("curated_raw", "rewritten", "instructions")
    )
    audit = store.manifest("contamination_audit", "unpartitioned")["metadata"]
    assert audit["status"] in ("calibrated", "no_membership_signal")
    assert audit["per_benchmark"]["sample_qa"]["items"] == 20 and audit["members"] > 0 and audit["non_members"] > 0
    assert audit["status"] != "not_calibrated" and audit["auc_ci"][0] <= audit["auc"] <= audit["auc_ci"][1]


# ------------------------------------------------------------------------------------ REWIRE
def test_rewire_pool_is_every_document_that_passed_filters_and_dedup(store_copy):
    pool, info = rewire_pool(store_copy, OLD, "filtered_and_deduplicated")
    kept = set(store_copy.read_frame("decontaminated", OLD)["doc_id"])
    band = set(store_copy.read_frame("decontaminated", OLD, "rewrite_pool")["doc_id"])
    low = store_copy.read_frame("scored", OLD, "dropped")
    assert (
        pool["doc_id"].n_unique()
        == pool.height
        == info["pool_high_quality"] + info["pool_rewrite_band"] + info["pool_low_quality"]
    )
    assert kept | band <= set(pool["doc_id"])
    low_in_pool = set(pool.filter(pl.col("band") == "low_quality")["doc_id"])
    assert low_in_pool <= set(low["doc_id"]) and len(low_in_pool) == info["pool_low_quality"] > 0
    # the low band met dedup here: what was set aside, and nothing of it is in the pool
    assert sum(info["low_quality_set_aside"].values()) == low.height - len(low_in_pool)
    dropped_elsewhere = set(store_copy.read_frame("decontaminated", OLD, "dropped")["doc_id"])
    assert not dropped_elsewhere & set(pool["doc_id"])
    assert set(rewire_pool(store_copy, OLD, "rewrite_band")[0]["doc_id"]) == band
    assert set(rewire_pool(store_copy, OLD, "below_quality_cut")[0]["doc_id"]) == band | low_in_pool
    with pytest.raises(ValueError, match="pool"):
        rewire_pool(store_copy, OLD, "everything")


def test_rewire_outputs_classifier_and_rank_cut(store_copy):
    report = materialize_rewire_outputs(store_copy, OLD, ScriptedEngine(), RewireOptions(max_docs=30, unit_docs=10))
    outputs = store_copy.read_frame("rewire_outputs", OLD)
    failures = store_copy.read_frame("rewire_outputs", OLD, "failures")
    assert report.rows_in == 30 == outputs.height + failures.height
    assert set(failures["reason"]) == {"rewire:missing_start_marker"}
    assert outputs["doc_id"].n_unique() == outputs.height and outputs["band"].null_count() == 0
    assert report.extra["tokens_generated"] > 0 and report.extra["examples"]
    again = materialize_rewire_outputs(store_copy, OLD, ScriptedEngine(), RewireOptions(max_docs=30, unit_docs=10))
    assert set(store_copy.read_frame("rewire_outputs", OLD)["source_doc_id"]) == set(outputs["source_doc_id"])  # stable sample
    assert again.rows_in == 30

    info = materialize_rewrite_classifier(store_copy)
    all_rewrites = sum(store_copy.read_frame("rewire_outputs", s).height for s in SAMPLE_SNAPSHOTS)
    assert info["negatives"] == all_rewrites and info["positives"] > 100 and info["model_file"].endswith(".bin")
    report = materialize_rewritten(store_copy, OLD, keep_fraction=0.10)
    kept = store_copy.read_frame("rewritten", OLD)
    dropped = store_copy.read_frame("rewritten", OLD, "dropped")
    assert kept.height == -(-outputs.height // 10) and kept.height + dropped.height == outputs.height
    assert kept["rewrite_score"].min() >= dropped["rewrite_score"].max()  # by rank
    assert set(dropped["drop_reason"]) == {"rewire:below_rank_cut"} and report.extra["score_cut"] is not None
    assert set(kept["source_doc_id"]) <= set(outputs["source_doc_id"])


def test_rewrite_classifier_needs_rewrites(store_copy):
    for snapshot in SAMPLE_SNAPSHOTS:
        store_copy.object_store.delete_prefix(f"rewire_outputs/{snapshot}")
    with pytest.raises(ValueError, match="needs rewrites"):
        materialize_rewrite_classifier(store_copy)


def test_rewire_outputs_resume_after_a_crash_without_redoing_or_duplicating(store_copy):
    options = RewireOptions(max_docs=40, unit_docs=10)
    before = store_copy.manifest("rewire_outputs", OLD)  # the default-model run of the sample graph
    with pytest.raises(RuntimeError, match="simulated"):
        materialize_rewire_outputs(store_copy, OLD, ScriptedEngine(fail_on_call=3), options)
    assert store_copy.manifest("rewire_outputs", OLD) == before  # nothing half-committed
    resumed = ScriptedEngine()
    report = materialize_rewire_outputs(store_copy, OLD, resumed, options)
    assert report.extra["resumed_units"] == 2 and report.extra["computed_units"] == 2 and resumed.calls == 2
    data = store_copy.read_frame("rewire_outputs", OLD)
    failures = store_copy.read_frame("rewire_outputs", OLD, "failures")
    assert data.height + failures.height == 40 and data["source_doc_id"].n_unique() == data.height
    assert not any(p.name == "_work" for p in (store_copy.object_store.root / "rewire_outputs" / OLD).iterdir())


# ---------------------------------------------------------------------------- FineInstructions
def test_instruction_pairs_are_grounded_judged_and_keep_template_and_source(store_copy):
    config = FineInstructionsConfig(top_k=1, min_match_score=None)
    report = materialize_instruction_pairs(
        store_copy, OLD, ScriptedEngine(), HashingEmbedder(), InstructionOptions(config, None, 4)
    )
    docs = pl.concat([store_copy.read_frame("decontaminated", OLD, t) for t in ("data", "rewrite_pool")])
    pairs = store_copy.read_frame("instruction_pairs", OLD)
    failures = store_copy.read_frame("instruction_pairs", OLD, "failures")
    assert pairs.height > 0 and pairs.height + failures.height == docs.height == report.rows_in
    assert set(pairs["source_doc_id"]) <= set(docs["doc_id"]) and pairs["template_id"].null_count() == 0
    assert (pairs["grounding_score"] >= 0.8).all() and (pairs["judge_rating"] == 4).all()
    assert {"fineinstructions:ungrounded", "fineinstructions:missing_instruction"} <= set(failures["reason"])
    assert report.extra["judge_ratings"] == {"4": pairs.height}
    capped = materialize_instruction_pairs(store_copy, OLD, ScriptedEngine(), HashingEmbedder(), InstructionOptions(config, 5, 4))
    assert capped.extra["documents_attempted"] == 5 and capped.rows_in == 5


def test_query_log_templates_reach_the_pairs(store_copy, tmp_path):
    log = tmp_path / "queries.jsonl"
    log.write_text("\n".join(json.dumps({"query": q}) for q in ("how do volunteers run a music festival", "bad query")) + "\n")

    class TemplateEngine(ScriptedEngine):
        def generate(self, prompts, sampling=None):
            return [
                Generation(
                    "[TEMPLATE]How do I organise {event}?[/TEMPLATE]\n[SLOTS]\nevent: event\n[/SLOTS]\n"
                    "[FITS]Guides to organising an event",
                    50,
                    20,
                    "stop",
                )
                if "festival" in p
                else Generation("no idea", 50, 2, "stop")
                for p in prompts
            ]

    info = materialize_instruction_templates(store_copy, query_logs=(str(log),), engine=TemplateEngine())
    assert (info["seed_templates"], info["query_templates"], info["queries"]) == (40, 1, 2)
    assert info["query_failures"] == {"query_templates:missing_template": 1}
    bank = store_copy.read_frame("instruction_templates", "unpartitioned")
    assert bank.filter(pl.col("origin") == "query_log")["template"].to_list() == ["How do I organise {event}?"]
    materialize_instruction_pairs(
        store_copy,
        OLD,
        ScriptedEngine(),
        HashingEmbedder(),
        InstructionOptions(FineInstructionsConfig(top_k=41, min_match_score=None), 2, 4),
    )
    attempted = pl.concat(
        [store_copy.read_frame("instruction_pairs", OLD, t).select("template_id") for t in ("data", "failures")]
    )
    assert attempted["template_id"].str.starts_with("query-").any()  # the generated template was instantiated


# ------------------------------------------------------------------------------------ Min-K%
def test_audit_calibrates_on_member_files_and_flags_benchmark_items(store_copy, tmp_path):
    members, non_members = tmp_path / "members.txt", tmp_path / "non_members.txt"
    members.write_text("\n".join(f"member text number {i} about the harbour" for i in range(30)) + "\n")
    non_members.write_text("\n".join(f"fresh text number {i} about the harbour" for i in range(30)) + "\n")
    options = AuditOptions(members_path=str(members), non_members_path=str(non_members), n_resamples=200)
    info = materialize_contamination_audit(store_copy, ScriptedEngine(), options)
    assert info["status"] == "calibrated" and info["auc"] == 1.0 and info["auc_ci"][0] > 0.5
    assert info["membership_sets"] == "files" and info["members"] == info["non_members"] == 30
    assert info["per_benchmark"]["sample_qa"]["flagged"] == 0  # benchmark items score like non-members here
    scores = store_copy.read_frame("contamination_audit", "unpartitioned")
    assert scores.height == 20 and scores["flagged"].sum() == 0
    calibration = store_copy.read_frame("contamination_audit", "unpartitioned", "calibration")
    assert calibration["role"].value_counts().sort("role")["count"].to_list() == [30, 30]
    with pytest.raises(ValueError, match="go together"):
        materialize_contamination_audit(store_copy, ScriptedEngine(), AuditOptions(members_path=str(members)))


def test_audit_default_sets_are_temporal(store_copy):
    class Indifferent(ScriptedEngine):  # every text equally likely: no membership signal
        def prompt_logprobs(self, texts):
            return [np.full(8, -2.0, dtype=np.float32) for _ in texts]

    info = materialize_contamination_audit(store_copy, Indifferent(), AuditOptions(n_resamples=50))
    train = store_copy.read_frame("eval_splits", "unpartitioned", "train")
    assert info["members"] == train.filter(pl.col("snapshot") < NEW).height > 0
    assert info["non_members"] == store_copy.read_frame("decontaminated", NEW).height
    assert NEW in info["membership_sets"] and info["status"] == "no_membership_signal" and info["auc"] == 0.5


def test_vllm_backend_is_selected_by_config_and_fails_clearly_without_gpu(sample, tmp_path):
    from dataplatform.assets.synthesis import rewire_outputs
    from dataplatform.resources.llm import LLMResource
    from dataplatform.resources.storage import DatasetStorageResource

    store, _, _ = sample
    copy = shutil.copytree(store.object_store.root, tmp_path / "copy")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("crawl_snapshots", [OLD])
        result = dg.materialize(
            [rewire_outputs],
            partition_key=OLD,
            instance=instance,
            raise_on_error=False,
            resources={
                "dataset_storage": DatasetStorageResource(local_root=str(copy)),
                "llm": LLMResource(backend="vllm", model_path=str(tmp_path)),
            },
        )
    assert not result.success
    message = [e for e in result.all_events if e.is_step_failure][0].event_specific_data.error.message
    assert "vllm" in message.lower() and "pip install" in message


def test_rewrite_classifier_negatives_are_sampled_shard_by_shard_as_from_one_frame(tmp_path):
    """The rewrite classifier's negatives (the rewrites with the smallest salted hashes) are chosen
    reading one batch at a time, yet are exactly the rows a whole-frame stable_sample picks."""
    from dataplatform.stages.synthesis import stable_sample, stable_sample_of_shards

    store = DatasetStore.local(tmp_path / "data")
    frames = []
    for s, snapshot in enumerate(("CC-RW-2026-01", "CC-RW-2026-05", "CC-RW-2026-10")):
        with store.write_partition("rewire_outputs", snapshot) as writer:
            for shard in range(3):
                frame = pl.DataFrame(
                    {"doc_id": [f"rw-{s}-{shard}-{i}" for i in range(40)], "text": [f"text {s} {shard} {i}" for i in range(40)]}
                )
                writer.write_table("data", frame.to_arrow(), shard)
                frames.append(frame)
            writer.commit({})
    whole = pl.concat(frames)
    schema = {"doc_id": pl.String, "text": pl.String}
    snapshots = store.partitions("rewire_outputs")
    for n in (1, 25, 200, 1000):
        streamed = stable_sample_of_shards(store, "rewire_outputs", snapshots, schema, n, "salt:3")
        assert streamed.sort("doc_id").equals(stable_sample(whole, n, "salt:3").sort("doc_id"))
    assert stable_sample_of_shards(store, "rewire_outputs", snapshots, schema, 25, "salt:3").height == 25
