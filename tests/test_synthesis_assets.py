"""GPU synthesis stages on CPU: lineage, malformed output accounting, resume after a crash, and
the vLLM backend refusing clearly where there is no vLLM or GPU."""

import re
import shutil

import dagster as dg
import pytest

from dataplatform.io.datasets import DatasetStore
from dataplatform.llm import Generation
from dataplatform.sample_data import SAMPLE_SNAPSHOTS
from dataplatform.stages.synthesis import (
    InstructionOptions,
    RewriteOptions,
    materialize_instruction_pairs,
    materialize_rewritten,
)

OLD = SAMPLE_SNAPSHOTS[0]


class ScriptedEngine:
    """Answers like a well-behaved instruction model, except every third prompt (malformed) and,
    for instruction pairs, every fifth (an answer not taken from the document)."""

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

    def prompt_logprobs(self, texts):
        import numpy as np

        return [np.full(max(len(t.split()) - 1, 1), -2.0, dtype=np.float32) for t in texts]

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]


@pytest.fixture
def store_copy(sample, tmp_path):
    store, _, _ = sample
    return DatasetStore.local(shutil.copytree(store.object_store.root, tmp_path / "copy"))


def test_graph_ran_synthesis_on_cpu_and_counted_every_tiny_model_failure(sample):
    store, rows, _ = sample
    for stage in ("rewritten", "instruction_pairs"):
        row = next(r for r in rows if r["stage"] == stage and r["snapshot"] == OLD)
        # The random tiny model writes gibberish: every document is accounted for as a failure.
        assert row["rows_in"] == row["rows_out"] + row["rows_dropped"]
        failures = store.read_frame(stage, OLD, "failures")
        assert failures.height == row["rows_dropped"] and failures["reason"].null_count() == 0
    audit = store.manifest("contamination_audit", "unpartitioned")["metadata"]
    assert audit["per_benchmark"]["sample_qa"]["items"] == 20
    assert 0.0 <= audit["per_benchmark"]["sample_qa"]["auc"] <= 1.0


def test_rewritten_keeps_lineage_and_counts_malformed(store_copy):
    engine = ScriptedEngine()
    report = materialize_rewritten(store_copy, OLD, engine, RewriteOptions(unit_docs=10, min_quality_score=0.0))
    pool = store_copy.read_frame("decontaminated", OLD, "rewrite_pool")
    data = store_copy.read_frame("rewritten", OLD)
    failures = store_copy.read_frame("rewritten", OLD, "failures")
    assert data.height + failures.height == pool.height
    assert set(data["source_doc_id"]) | set(failures["source_doc_id"]) == set(pool["doc_id"])
    assert data["doc_id"].n_unique() == data.height and not set(data["doc_id"]) & set(pool["doc_id"])
    assert set(failures["reason"]) == {"rewire:missing_start_marker"}
    assert data["quality_score"].is_between(0, 1).all()
    assert report.extra["tokens_generated"] > 0 and report.extra["mean_quality_before"] is not None


def test_rewritten_resumes_after_a_crash_without_redoing_or_duplicating(store_copy):
    pool = store_copy.read_frame("decontaminated", OLD, "rewrite_pool")
    units = -(-pool.height // 10)
    before = store_copy.manifest("rewritten", OLD)  # the tiny-model run of the sample graph
    with pytest.raises(RuntimeError, match="simulated"):
        materialize_rewritten(store_copy, OLD, ScriptedEngine(fail_on_call=3), RewriteOptions(unit_docs=10, min_quality_score=0.0))
    assert store_copy.manifest("rewritten", OLD) == before  # nothing half-committed
    resumed = ScriptedEngine()
    report = materialize_rewritten(store_copy, OLD, resumed, RewriteOptions(unit_docs=10, min_quality_score=0.0))
    assert report.extra["resumed_units"] == 2 and report.extra["computed_units"] == units - 2
    assert resumed.calls == units - 2
    data = store_copy.read_frame("rewritten", OLD)
    failures = store_copy.read_frame("rewritten", OLD, "failures")
    assert data.height + failures.height == pool.height
    assert data["source_doc_id"].n_unique() == data.height
    assert not any(p.name == "_work" for p in (store_copy.object_store.root / "rewritten" / OLD).iterdir())


def test_instruction_pairs_are_grounded_and_keep_template_and_source(store_copy):
    from dataplatform.core.synthesis.fineinstructions import HashingEmbedder

    materialize_instruction_pairs(store_copy, OLD, ScriptedEngine(), HashingEmbedder(), InstructionOptions(unit_docs=4))
    docs = store_copy.read_frame("decontaminated", OLD)
    pairs = store_copy.read_frame("instruction_pairs", OLD)
    failures = store_copy.read_frame("instruction_pairs", OLD, "failures")
    assert pairs.height > 0 and pairs.height + failures.height == docs.height
    assert set(pairs["source_doc_id"]) <= set(docs["doc_id"]) and pairs["template_id"].null_count() == 0
    assert (pairs["grounding_score"] >= 0.8).all()
    assert "fineinstructions:ungrounded" in set(failures["reason"])


def test_vllm_backend_is_selected_by_config_and_fails_clearly_without_gpu(sample, tmp_path):
    from dataplatform.assets.synthesis import rewritten
    from dataplatform.resources.llm import LLMResource
    from dataplatform.resources.storage import DatasetStorageResource

    store, _, _ = sample
    copy = shutil.copytree(store.object_store.root, tmp_path / "copy")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("crawl_snapshots", [OLD])
        result = dg.materialize([rewritten], partition_key=OLD, instance=instance, raise_on_error=False, resources={
            "dataset_storage": DatasetStorageResource(local_root=str(copy)),
            "llm": LLMResource(backend="vllm", tiny_model_dir=str(tmp_path / "model")),
        })
    assert not result.success
    message = [e for e in result.all_events if e.is_step_failure][0].event_specific_data.error.message
    assert "vllm" in message.lower() and "pip install" in message
