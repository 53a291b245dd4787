"""The training mix computed shard by shard equals the whole-frame definition (``plan_mix`` over
``mix_sources``), whatever the number of ranges the mix order is cut into: the same rows in the
same order, the same per-source counts and doc_id digests, held-out text left out the same way.
And a killed mix resumes from the shards it had finished."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import polars as pl
import pytest

from dataplatform import names
from dataplatform.core.tokenizer_utils import count_tokens, load_tokenizer
from dataplatform.core.training_mix import plan_mix
from dataplatform.execution.shard_executor import ProcessPoolShardExecutor
from dataplatform.io.datasets import DatasetStore, PartitionWriter
from dataplatform.sample_data import SAMPLE_BENCHMARKS_DIR
from dataplatform.stages.color_filter import COLOR_SCORES_SCHEMA
from dataplatform.stages.decontamination import materialize_eval_benchmarks
from dataplatform.stages.mix import (
    SPLIT_SCHEMA,
    MixOptions,
    color_selected_source,
    default_tokenizer_path,
    materialize_training_mix,
    mix_sources,
)
from dataplatform.stages.mix_selection import group_shards, range_bits, source_shards

SNAPSHOTS = ("CC-MIX-2026-01", "CC-MIX-2026-05")
WORDS = "river stone market signal garden engine winter letter harbor violin planet method copper lantern".split()


def _text(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, int(rng.integers(3, 60)))) + "."


def _write(store: DatasetStore, asset: str, partition: str, shards: list[pl.DataFrame], table: str = names.DATA) -> None:
    with store.write_partition(asset, partition) as writer:
        for i, frame in enumerate(shards):
            writer.write_table(table, frame.to_arrow(), i)
        writer.commit({})


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Curated documents split train/validation/test (3 + 1 + 1 shards), rewrites and pairs of two
    snapshots from curated and from below-cut documents (some of held-out ones), CoLoR selections
    from both decontaminated tables, and the bundled benchmarks."""
    rng = np.random.default_rng(3)
    root = tmp_path_factory.mktemp("mix") / "data"
    store = DatasetStore.local(root)
    materialize_eval_benchmarks(store, str(SAMPLE_BENCHMARKS_DIR))
    curated = {s: [f"{s}-doc-{i:04d}" for i in range(150)] for s in SNAPSHOTS}
    split_of = {
        d: ("validation" if i % 17 == 3 else "test" if i % 23 == 5 else "train")
        for s in SNAPSHOTS
        for i, d in enumerate(curated[s])
    }
    with store.write_partition(names.EVAL_SPLITS, names.UNPARTITIONED) as writer:
        for split in names.SPLITS:
            ids = [d for d, sp in split_of.items() if sp == split]
            for i, chunk in enumerate(np.array_split(np.array(ids), 3 if split == "train" else 1)):
                frame = pl.DataFrame(
                    {"doc_id": chunk.tolist(), "snapshot": [d.split("-doc-")[0] for d in chunk], "url": "u", "split": split}
                ).with_columns(pl.Series("text", [_text(rng) for _ in chunk]))
                writer.write_table(split, frame.select(SPLIT_SCHEMA.names).to_arrow().cast(SPLIT_SCHEMA), i)
        writer.commit({})
    for s in SNAPSHOTS:
        below_cut = [f"{s}-low-{i:04d}" for i in range(60)]
        sources = curated[s][::2] + below_cut
        _write(
            store,
            names.REWRITTEN,
            s,
            [
                pl.DataFrame(
                    {
                        "doc_id": [f"rw-{d}" for d in part] + [f"rw-unknown-{s}-{i}"],
                        "source_doc_id": [*part.tolist(), None],  # a rewrite that cannot name its source is left out
                        "snapshot": s,
                        "text": [_text(rng) for _ in range(len(part) + 1)],
                    }
                )
                for i, part in enumerate(np.array_split(np.array(sources), 4))
            ],
        )
        pair_sources = curated[s][1::3] + below_cut[::4]
        _write(
            store,
            names.INSTRUCTION_PAIRS,
            s,
            [
                pl.DataFrame(
                    {
                        "pair_id": [f"pair-{d}" for d in pair_sources],
                        "source_doc_id": pair_sources,
                        "snapshot": s,
                        "instruction": [_text(rng) for _ in pair_sources],
                        "answer": [_text(rng) for _ in pair_sources],
                    }
                )
            ],
        )
        color = pl.DataFrame(
            {
                "doc_id": curated[s][::5] + below_cut[::3],
                "snapshot": s,
                "source_table": [names.DATA] * len(curated[s][::5]) + [names.REWRITE_POOL] * len(below_cut[::3]),
            }
        ).with_columns(pl.Series("text", [_text(rng) for _ in range(len(curated[s][::5]) + len(below_cut[::3]))]))
        _write(store, names.COLOR_SCORES, s, [color.select([f.name for f in COLOR_SCORES_SCHEMA if f.name in color.columns])])
    return root


def _copy(root, folder) -> DatasetStore:
    import shutil

    return DatasetStore.local(shutil.copytree(root, folder))


def _reference(store: DatasetStore, options: MixOptions) -> tuple[pl.DataFrame, dict]:
    """The whole-frame mix: every candidate in one frame, then plan_mix (what the stage did before)."""
    proportions = dict(options.proportions)
    candidates = {k: v for k, v in mix_sources(store).items() if k in proportions}  # sources not named have no share
    if names.COLOR_SELECTED in proportions:
        candidates[names.COLOR_SELECTED] = color_selected_source(store, proportions.get("curated_raw", 0) > 0)
    tokenizer = load_tokenizer(default_tokenizer_path())
    sources = {
        k: f.with_columns(pl.Series("n_tokens", count_tokens(f["text"], tokenizer), dtype=pl.Int64))
        for k, f in candidates.items()
    }
    plan = plan_mix(sources, proportions, total_tokens=options.total_tokens, seed=options.seed, on_missing=options.on_missing)
    return plan.to_frame(), plan.sources


def _sharded(store: DatasetStore, options: MixOptions, executor=None) -> tuple[pl.DataFrame, dict]:
    materialize_training_mix(store, options, executor)
    manifest = store.require_manifest(names.TRAINING_MIX, names.UNPARTITIONED)
    mix_manifest = json.loads(
        store.object_store.get_bytes(store.file_key(names.TRAINING_MIX, names.UNPARTITIONED, names.MIX_MANIFEST))
    )
    assert manifest["metadata"]["docs_per_source"] == {k: v["docs"] for k, v in mix_manifest["sources"].items()}
    return store.read_frame(names.TRAINING_MIX, names.UNPARTITIONED), mix_manifest["sources"]


CASES = [
    MixOptions(),  # curated / rewritten / instructions, the scarcest source bounds the total
    MixOptions(
        proportions=(("curated_raw", 0.3), ("rewritten", 0.3), ("instructions", 0.2), (names.COLOR_SELECTED, 0.2)), seed=5
    ),
    MixOptions(proportions=((names.COLOR_SELECTED, 1.0),)),  # without curated: curated CoLoR picks stay
    MixOptions(proportions=(("curated_raw", 0.5), ("rewritten", 0.5)), total_tokens=9_000, seed=11),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("range_rows", [7, 40, 100_000])
def test_sharded_mix_equals_the_whole_frame_mix(root, case, range_rows, tmp_path):
    options = CASES[case]
    copy = _copy(root, tmp_path / "data")
    expected, expected_sources = _reference(copy, options)
    got, got_sources = _sharded(copy, dataclasses.replace(options, range_rows=range_rows))

    columns = ["doc_id", "source_doc_id", "source", "snapshot", "text", "n_tokens"]
    assert got.select(columns).equals(expected.select(columns).cast(got.select(columns).schema))
    for name, selection in expected_sources.items():
        mine = got_sources[name]
        assert (mine["docs"], mine["tokens"], mine["available_docs"], mine["available_tokens"], mine["doc_ids_sha256"]) == (
            selection.docs,
            selection.tokens,
            selection.available_docs,
            selection.available_tokens,
            selection.doc_ids_sha256,
        )
    held_out = set(copy.read_frame(names.EVAL_SPLITS, names.UNPARTITIONED, "validation")["doc_id"])
    held_out |= set(copy.read_frame(names.EVAL_SPLITS, names.UNPARTITIONED, "test")["doc_id"])
    assert not set(got["source_doc_id"]) & held_out
    assert got["source_doc_id"].null_count() == 0
    assert got.height > 20


def test_the_order_is_cut_into_ranges_and_the_inputs_into_bounded_groups(root):
    shards = source_shards(DatasetStore.local(root), ["curated_raw", "rewritten", "instructions", names.COLOR_SELECTED])
    assert [s.source for s in shards].count("rewritten") == 8
    assert range_bits(sum(s.rows for s in shards), 40) >= 4  # ~700 candidates, ~40 a range
    groups = group_shards(shards, 100)
    assert all(len({s.source for s in g}) == 1 and (len(g) == 1 or sum(s.rows for s in g) <= 100) for g in groups)
    assert [s for g in groups for s in g] == shards  # order kept: ties in the mix order go by input row


def test_a_killed_mix_resumes_from_its_finished_shards(root, tmp_path, monkeypatch):
    from dataplatform.stages import mix_selection

    copy = _copy(root, tmp_path / "data")
    options = MixOptions(range_rows=40)
    expected, _ = _sharded(_copy(root, tmp_path / "ref"), options)

    calls = []
    real = mix_selection.run_candidate_task
    monkeypatch.setattr(mix_selection, "run_candidate_task", lambda task: calls.append(task.index) or real(task))
    commit = PartitionWriter.commit

    def dies(self, *args, **kwargs):
        raise RuntimeError("killed before the commit")

    monkeypatch.setattr(PartitionWriter, "commit", dies)
    with pytest.raises(RuntimeError, match="killed before"):
        materialize_training_mix(copy, options)
    first = len(calls)
    monkeypatch.setattr(PartitionWriter, "commit", commit)
    report = materialize_training_mix(copy, options)
    assert len(calls) == first  # every candidate task was recorded and reused
    assert report.tasks_resumed > 0
    assert copy.read_frame(names.TRAINING_MIX, names.UNPARTITIONED).equals(expected)


def test_a_process_pool_gives_the_same_mix(root, tmp_path):
    copy = _copy(root, tmp_path / "data")
    expected, _ = _reference(copy, MixOptions())
    got, _ = _sharded(copy, MixOptions(range_rows=50), ProcessPoolShardExecutor(2))
    assert got["doc_id"].to_list() == expected["doc_id"].to_list()
