"""CoLoR-Filter on a real dataset store with the tiny local test model: the conditional model as a
versioned asset, color_scores selecting the top fraction (the rest set aside with its reason),
resume after a crash, the Dagster assets with their checks, the mix source and the CLI."""

from __future__ import annotations

import dataclasses

import dagster as dg
import numpy as np
import polars as pl
import pytest

from dataplatform import names
from dataplatform.core import color_filter as cf
from dataplatform.core.quality_classifier import default_positives
from dataplatform.core.schemas import DECONTAMINATED, conform
from dataplatform.io.datasets import DatasetStore
from dataplatform.stages.color_filter import (
    BELOW_CUT,
    ColorScoringOptions,
    ConditionalModelOptions,
    materialize_color_conditional_model,
    materialize_color_scores,
)

SNAPSHOT = "CC-COLOR-2026-01"
FINE_TUNE = cf.FineTuneConfig(epochs=3, lr=3e-3, batch_size=4, max_seq_tokens=64)
OFF_DOMAIN = [
    "Shares in the retailer fell four percent after the company cut its profit forecast for the year.",
    "To install the tool, unpack the archive into a folder on your PATH and run the setup command.",
    "The tenant agrees to pay the rent on the first day of each month and to give sixty days notice.",
    "The home side took the lead after twelve minutes and a late penalty settled the match two to one.",
    "Click the settings icon, choose Account, then Security, and enable two-factor authentication.",
    "",  # nothing to score: set aside, no score
]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from dataplatform.llm.tiny_model import build_tiny_causal_lm

    corpus = default_positives() + cf.default_target_texts() + OFF_DOMAIN[:-1]
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"), corpus, seed=0, vocab_size=600)


def _candidates() -> pl.DataFrame:
    texts = cf.default_target_texts()[20:26] + OFF_DOMAIN
    return pl.DataFrame(
        {
            "doc_id": [f"doc-{i:02d}" for i in range(len(texts))],
            "url": [f"https://c.example/{i}" for i in range(len(texts))],
            "snapshot": SNAPSHOT,
            "warc_record_id": [f"<urn:{i}>" for i in range(len(texts))],
            "warc_file": "a.warc.gz",
            "text": texts,
            "n_chars": [len(t) for t in texts],
            "quality_score": pl.Series([0.5] * len(texts), dtype=pl.Float32),
        }
    )


def _decontaminated(store: DatasetStore) -> pl.DataFrame:
    """Two shard indices, each with a kept table and a REWIRE pool, as decontamination writes them."""
    frame = _candidates()
    parts = {
        (0, names.DATA): frame[0:3],
        (0, names.REWRITE_POOL): frame[3:6],
        (1, names.DATA): frame[6:9],
        (1, names.REWRITE_POOL): frame[9:12],
    }
    with store.write_partition(names.DECONTAMINATED, SNAPSHOT) as writer:
        for (index, table), part in parts.items():
            writer.write_table(table, conform(part.to_arrow(), DECONTAMINATED), index)
        writer.write_table(names.DROPPED, conform(frame.head(0).to_arrow(), DECONTAMINATED), 0)
        writer.commit({"rows_in": frame.height})
    return frame


@pytest.fixture
def store(tmp_path, tiny_lm):
    store = DatasetStore.local(tmp_path / "data")
    _decontaminated(store)
    materialize_color_conditional_model(store, ConditionalModelOptions(str(tiny_lm), None, FINE_TUNE, num_threads=1))
    return store


def _options(tmp_path, **kwargs) -> ColorScoringOptions:
    engine = dataclasses.replace(
        ColorScoringOptions().engine, cache_dir=str(tmp_path / "models"), settings=(("max_batch_size", 4), ("num_threads", 1))
    )
    return ColorScoringOptions(**{"top_fraction": 0.25, "max_tokens": 32, "unit_docs": 2, "engine": engine, **kwargs})


def test_conditional_model_is_stored_and_versioned_by_its_training_hash(store, tiny_lm, tmp_path):
    manifest = store.require_manifest(names.COLOR_CONDITIONAL_MODEL, names.UNPARTITIONED)
    meta = manifest["metadata"]
    assert "model.safetensors" in manifest["files"] and "config.json" in meta["model_files"]
    assert meta["result"]["target_loss_after"] < meta["result"]["target_loss_before"]
    assert meta["target_documents"] == 30 and meta["base_model"] == tiny_lm.name
    again = materialize_color_conditional_model(store, ConditionalModelOptions(str(tiny_lm), None, FINE_TUNE))
    assert (
        again.extra.get("up_to_date")
        and store.require_manifest(names.COLOR_CONDITIONAL_MODEL, names.UNPARTITIONED)["version"] == manifest["version"]
    )
    target = tmp_path / "target.txt"
    target.write_text("\n\n".join(cf.default_target_texts()[:10]))
    materialize_color_conditional_model(store, ConditionalModelOptions(str(tiny_lm), str(target), FINE_TUNE))
    assert (
        store.require_manifest(names.COLOR_CONDITIONAL_MODEL, names.UNPARTITIONED)["metadata"]["training_hash"]
        != meta["training_hash"]
    )


def test_color_scores_keep_the_top_fraction_and_set_the_rest_aside(store, tmp_path):
    report = materialize_color_scores(store, SNAPSHOT, _options(tmp_path))
    selected = store.read_frame(names.COLOR_SCORES, SNAPSHOT)
    rest = store.read_frame(names.COLOR_SCORES, SNAPSHOT, names.DROPPED)
    assert (report.rows_in, report.rows_out, report.drop_counts) == (12, 3, {BELOW_CUT: 9})
    assert selected.height == 3 and rest.height == 9 and selected["drop_reason"].null_count() == 3
    assert set(rest["drop_reason"]) == {BELOW_CUT}
    both = pl.concat([selected, rest])
    np.testing.assert_allclose(
        both["color_score"].to_numpy(), (both["loss_prior"] - both["loss_conditional"]).to_numpy(), atol=1e-6
    )
    assert selected["color_score"].min() >= rest["color_score"].drop_nulls().max()
    empty = both.filter(pl.col("text") == "")
    assert empty["color_score"].null_count() == 1 and empty["n_tokens_scored"].to_list() == [0]
    assert both.filter(pl.col("text") != "")["color_score"].null_count() == 0
    assert (both["n_tokens_scored"] <= 32).all()
    assert set(both["source_table"]) == {names.DATA, names.REWRITE_POOL}
    meta = store.manifest(names.COLOR_SCORES, SNAPSHOT)["metadata"]
    assert meta["selected"] == 3 and meta["unscored"] == 1 and meta["tokens_scored"] > 0 and meta["tokens_per_s"] > 0
    assert meta["cut_score"] == pytest.approx(float(selected["color_score"].min()), abs=1e-5)


def test_a_crashed_run_resumes_with_the_unfinished_units_only(store, tmp_path, monkeypatch):
    real = cf.document_losses
    calls = []

    def counting(engine, texts, max_tokens):
        calls.append(len(texts))
        if crash_at and len(calls) == crash_at:
            raise RuntimeError("simulated worker crash")
        return real(engine, texts, max_tokens)

    monkeypatch.setattr(cf, "document_losses", counting)
    crash_at = 5  # 4 input shards x 2 units per model: dies in the 3rd shard of the prior phase
    with pytest.raises(RuntimeError, match="simulated"):
        materialize_color_scores(store, SNAPSHOT, _options(tmp_path))
    assert store.manifest(names.COLOR_SCORES, SNAPSHOT) is None
    calls.clear()
    crash_at = None
    materialize_color_scores(store, SNAPSHOT, _options(tmp_path))
    assert len(calls) == 2 * 8 - 4  # the 4 finished units are not scored again
    resumed = store.read_frame(names.COLOR_SCORES, SNAPSHOT)

    fresh = DatasetStore.local(tmp_path / "fresh")
    _decontaminated(fresh)
    with fresh.write_partition(names.COLOR_CONDITIONAL_MODEL, names.UNPARTITIONED) as writer:  # same model files
        manifest = store.require_manifest(names.COLOR_CONDITIONAL_MODEL, names.UNPARTITIONED)
        for name in manifest["files"]:
            path = tmp_path / name
            path.write_bytes(
                store.object_store.get_bytes(store.file_key(names.COLOR_CONDITIONAL_MODEL, names.UNPARTITIONED, name))
            )
            writer.add_file(path)
        writer.commit(manifest["metadata"])
    materialize_color_scores(fresh, SNAPSHOT, _options(tmp_path))
    assert fresh.read_frame(names.COLOR_SCORES, SNAPSHOT).equals(resumed)


def test_mix_takes_color_selection_as_its_own_source_only_when_asked(store, tmp_path):
    from dataplatform.execution.shard_executor import InlineExecutor
    from dataplatform.sample_data import SAMPLE_BENCHMARKS_DIR
    from dataplatform.stages.decontamination import materialize_eval_benchmarks
    from dataplatform.stages.mix import MixOptions, SplitOptions, materialize_eval_splits, materialize_training_mix

    materialize_color_scores(store, SNAPSHOT, _options(tmp_path, top_fraction=0.5))
    materialize_eval_benchmarks(store, str(SAMPLE_BENCHMARKS_DIR))
    materialize_eval_splits(store, InlineExecutor(), SplitOptions(fractions=(("train", 1.0), ("validation", 0.0), ("test", 0.0))))
    default = materialize_training_mix(store, MixOptions(proportions=(("curated_raw", 1.0),)))
    assert set(default.extra["docs_per_source"]) == {"curated_raw"}
    report = materialize_training_mix(store, MixOptions(proportions=(("curated_raw", 0.5), (names.COLOR_SELECTED, 0.5))))
    mix = store.read_frame(names.TRAINING_MIX, names.UNPARTITIONED)
    color = mix.filter(pl.col("source") == names.COLOR_SELECTED)
    assert color.height == report.extra["docs_per_source"][names.COLOR_SELECTED] > 0
    assert mix["doc_id"].is_unique().all()  # a document chosen by both is only in curated_raw
    selected = store.read_frame(names.COLOR_SCORES, SNAPSHOT)
    assert set(color["doc_id"]) <= set(selected.filter(pl.col("source_table") == names.REWRITE_POOL)["doc_id"])


def test_assets_materialize_with_the_llm_resource_model_and_pass_their_checks(tmp_path, tiny_lm):
    from dataplatform.assets.color_filter import color_conditional_model, color_scores
    from dataplatform.assets.partitions import crawl_snapshots
    from dataplatform.resources.llm import LLMResource
    from dataplatform.resources.storage import DatasetStorageResource

    store = DatasetStore.local(tmp_path / "data")
    _decontaminated(store)
    resources = {
        "dataset_storage": DatasetStorageResource(local_root=str(store.object_store.root)),
        "llm": LLMResource(model_path=str(tiny_lm), max_batch_size=4),
    }
    config = {
        "ops": {
            "color_conditional_model": {"config": {"epochs": 3, "lr": 3e-3, "batch_size": 4, "max_seq_tokens": 64}},
            "color_scores": {"config": {"top_fraction": 0.25, "max_tokens": 32, "unit_docs": 4}},
        }
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(crawl_snapshots.name, [SNAPSHOT])
        first = dg.materialize(
            [color_conditional_model],
            instance=instance,
            resources=resources,
            run_config={"ops": {"color_conditional_model": config["ops"]["color_conditional_model"]}},
        )
        second = dg.materialize(
            [color_conditional_model, color_scores],
            selection=[color_scores],
            partition_key=SNAPSHOT,
            instance=instance,
            resources=resources,
            run_config={"ops": {"color_scores": config["ops"]["color_scores"]}},
        )
    assert first.success and second.success
    assert all(c.passed for r in (first, second) for c in r.get_asset_check_evaluations())
    metadata = second.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["selected"].value == 3 and metadata["dagster/row_count"].value == 3


def test_process_command_runs_color_filter_on_the_kept_pages(tmp_path, tiny_lm, capsys):
    from warc_factory import html_page, http_response, warc_record

    from dataplatform.cli import corpus_summary, main

    paragraphs = default_positives()
    records = [
        warc_record(f"https://c.example/{i}", http_response(html_page(f"Page {i}", paragraphs[3 * i : 3 * i + 3])))
        for i in range(8)
    ]
    warc = tmp_path / "pages.warc.gz"
    warc.write_bytes(b"".join(records))
    target = tmp_path / "target"
    target.mkdir()
    (target / "science.txt").write_text("\n\n".join(cf.default_target_texts()[:6]))
    out = tmp_path / "out"
    code = main(
        [
            "process",
            str(warc),
            "--output",
            str(out),
            "--snapshot",
            SNAPSHOT,
            "--workers",
            "1",
            "--color-target",
            str(target),
            "--color-model",
            str(tiny_lm),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    scores = DatasetStore.local(out)
    meta = scores.require_manifest(names.COLOR_SCORES, SNAPSHOT)["metadata"]
    assert meta["source"] == "deduplicated/data+rewrite_pool" and meta["rows_in"] > 0
    assert f"color_scores: {meta['selected']} of {meta['rows_in']} documents selected" in printed
    assert any(line.startswith("color_filter") for line in corpus_summary(out))
