import pytest

from dataplatform.core.synthesis.common import derived_id
from dataplatform.core.synthesis.resume import (
    done_marker_name,
    done_shard_ids,
    output_shard_name,
    plan_resume,
    remaining_shards,
    shard_id,
    work_fingerprint,
)
from dataplatform.llm.engine import SamplingConfig


def test_remaining_skips_done_and_keeps_order():
    ids = ["part-00000", "part-00001", "part-00002", "part-00003"]
    assert remaining_shards(ids, {"part-00001", "part-00003"}) == ["part-00000", "part-00002"]
    assert remaining_shards(ids, set()) == ids
    assert remaining_shards(ids, ids) == []
    assert remaining_shards(["a", "a", "b"], []) == ["a", "b"]


def test_plan_resume_counts_only_marked_shards():
    inputs = [shard_id(f"rewrite_pool/CC-2024-10/v1/data/part-{i:05d}.parquet") for i in range(4)]
    assert inputs[0] == "part-00000"
    listing = [
        output_shard_name("part-00000"),
        output_shard_name("part-00000", "failures"),
        done_marker_name("part-00000"),
        output_shard_name("part-00002"),  # crashed before its marker: redo, same file names
        done_marker_name("part-00099"),  # from an older upstream version
    ]
    plan = plan_resume(inputs, listing)
    assert plan.done == ["part-00000"]
    assert plan.todo == ["part-00001", "part-00002", "part-00003"]
    assert plan.stale == ["part-00099"]
    assert not plan.complete and plan.metadata() == {"shards_todo": 3, "shards_done": 1, "shards_stale": 1}
    # after a full run every input shard is done exactly once
    full = listing + [done_marker_name(s) for s in plan.todo]
    final = plan_resume(inputs, full)
    assert final.complete and final.done == inputs
    assert done_shard_ids(["data/part-00000.parquet", "_done/part-00001"]) == {"part-00001"}
    with pytest.raises(ValueError, match="unique"):
        plan_resume(["a", "a"], [])


def test_work_fingerprint_changes_with_config_and_is_stable():
    a = work_fingerprint(stage="rewire", upstream="v1", model="m", sampling=SamplingConfig(max_tokens=8))
    b = work_fingerprint(sampling=SamplingConfig(max_tokens=8), model="m", upstream="v1", stage="rewire")
    c = work_fingerprint(stage="rewire", upstream="v1", model="m", sampling=SamplingConfig(max_tokens=9))
    assert a == b != c and len(a) == 16
    assert (
        derived_id("rewire", "v1", "m", "doc")
        == derived_id("rewire", "v1", "m", "doc")
        != derived_id("rewire", "v1", "m", "doc2")
    )
