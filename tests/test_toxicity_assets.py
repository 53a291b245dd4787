"""The toxicity step on a real dataset store, as a Dagster asset and through `dataplatform process`:
score-only leaves everything downstream as it was; a threshold sets exactly the documents above it
aside with their reason; the metadata shows what each threshold would remove."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest
from warc_factory import html_page, http_response, warc_record

from dataplatform import names
from dataplatform.core.default_quality_model import default_quality_model_path
from dataplatform.core.quality_classifier import default_positives
from dataplatform.core.schemas import FILTERED, conform
from dataplatform.core.toxicity import ScorerSpec, ToxicityPolicy
from dataplatform.execution.shard_executor import InlineExecutor
from dataplatform.io.datasets import DatasetStore
from dataplatform.stages.process_chain import install_quality_model
from dataplatform.stages.scoring import materialize_scored
from dataplatform.stages.toxicity import ToxicityOptions, materialize_toxicity

SNAPSHOT = "CC-TOX-2026-01"
CLEAN = [
    "Bees carry pollen from flower to flower, which lets the plants make seeds.",
    "Water expands when it freezes, so ice floats on the surface of a pond.",
    "The museum opens at nine and offers guided tours of the old harbour every afternoon.",
    "Knead the dough for ten minutes, then leave it covered in a warm place to rise.",
    "The library lends books, maps and recordings, and its reading room is open late on Thursdays.",
    "Copper conducts electricity well, which is why it is used in household wiring.",
]
TOXIC = [
    "You are a worthless idiot and everybody hates you, shut up.",
    "What a fucking moron, go to hell you stupid piece of shit.",
]


def _filtered_partition(store: DatasetStore) -> pl.DataFrame:
    """Two shards of kept documents, as the filtering stage writes them."""
    texts = CLEAN[:3] + TOXIC[:1] + CLEAN[3:] + TOXIC[1:]
    frame = pl.DataFrame(
        {
            "doc_id": [f"doc-{i:02d}" for i in range(len(texts))],
            "url": [f"https://tox.example/{i}" for i in range(len(texts))],
            "snapshot": SNAPSHOT,
            "warc_record_id": [f"<urn:uuid:{i}>" for i in range(len(texts))],
            "warc_file": "a.warc.gz",
            "text": texts,
            "language": "en",
            "n_chars": [len(t) for t in texts],
            "passes_gopher_quality": True,
        }
    )
    with store.write_partition(names.FILTERED, SNAPSHOT) as writer:
        writer.write_table(names.DATA, conform(frame.head(4).to_arrow(), FILTERED), 0)
        writer.write_table(names.DATA, conform(frame.tail(4).to_arrow(), FILTERED), 1)
        writer.write_table(names.DROPPED, conform(frame.head(0).to_arrow(), FILTERED), 0)
        writer.commit({"rows_in": frame.height})
    return frame


@pytest.fixture
def store(tmp_path):
    store = DatasetStore.local(tmp_path / "data")
    _filtered_partition(store)
    return store


def test_score_only_adds_scores_and_leaves_scored_output_unchanged(store):
    report = materialize_toxicity(store, SNAPSHOT, InlineExecutor())
    assert (report.rows_in, report.rows_out, report.dropped) == (8, 8, 0)
    toxic = store.read_frame(names.TOXICITY, SNAPSHOT)
    filtered = store.read_frame(names.FILTERED, SNAPSHOT)
    assert toxic.select(FILTERED.names).equals(filtered)  # same rows, same order, same values
    assert toxic["toxicity_profanity"].null_count() == 0 and toxic["toxicity_score"].is_between(0, 1).all()
    assert set(toxic.filter(pl.col("toxicity_profanity") > 0.5)["text"]) == set(TOXIC)
    assert len(store.shard_keys(names.TOXICITY, SNAPSHOT)) == 2  # shard i from filtered shard i

    meta = store.manifest(names.TOXICITY, SNAPSHOT)["metadata"]
    assert meta["policy"] == "score_only" and meta["dimensions"] == ["profanity"]
    assert sum(meta["score_histograms"]["profanity"].values()) == 8
    docs_above, tokens_above = meta["tradeoff"]["profanity"]["0.5"]
    assert docs_above == 2 and 0 < tokens_above < meta["tokens_scored"]
    assert "| > 0.5 | 2 (25.0%)" in meta["tradeoff_table"]

    install_quality_model(store, str(default_quality_model_path()))
    materialize_scored(store, SNAPSHOT, InlineExecutor(), source=names.FILTERED)
    before = {t: store.read_frame(names.SCORED, SNAPSHOT, t) for t in (names.DATA, names.REWRITE_CANDIDATES, names.DROPPED)}
    materialize_scored(store, SNAPSHOT, InlineExecutor(), source=names.TOXICITY)
    for table, frame in before.items():
        assert store.read_frame(names.SCORED, SNAPSHOT, table).equals(frame), table


def test_threshold_sets_aside_exactly_the_documents_above_it(store):
    options = ToxicityOptions(policy=ToxicityPolicy("drop_above_threshold", (("profanity", 0.5),)))
    report = materialize_toxicity(store, SNAPSHOT, InlineExecutor(), options)
    kept = store.read_frame(names.TOXICITY, SNAPSHOT)
    dropped = store.read_frame(names.TOXICITY, SNAPSHOT, names.DROPPED)
    assert sorted(dropped["text"]) == sorted(TOXIC)
    assert dropped["drop_reason"].to_list() == ["toxicity:profanity"] * 2
    assert (dropped["toxicity_profanity"] > 0.5).all() and (kept["toxicity_profanity"] <= 0.5).all()
    assert kept["drop_reason"].null_count() == kept.height == 6
    assert report.drop_counts == {"toxicity:profanity": 2}
    meta = store.manifest(names.TOXICITY, SNAPSHOT)["metadata"]
    assert meta["share_above_threshold"] == {"profanity": 0.25}
    assert meta["tokens_dropped"] == meta["tradeoff"]["profanity"]["0.5"][1]
    assert {e["url"] for e in meta["drop_examples"]["toxicity:profanity"]} == set(dropped["url"])


def test_policy_naming_an_unknown_dimension_fails_before_scoring(store):
    options = ToxicityOptions(policy=ToxicityPolicy("drop_above_threshold", (("violence", 0.5),)))
    with pytest.raises(ValueError, match=r"violence.*its dimensions: \['profanity'\]"):
        materialize_toxicity(store, SNAPSHOT, InlineExecutor(), options)
    assert store.manifest(names.TOXICITY, SNAPSHOT) is None
    with pytest.raises(FileNotFoundError, match="no fastText model"):
        materialize_toxicity(store, SNAPSHOT, InlineExecutor(), ToxicityOptions(ScorerSpec("fasttext", "/nonexistent.bin")))


def _materialize(store, config: dict) -> dg.ExecuteInProcessResult:
    from dataplatform.assets.checks.selection import toxicity_suite
    from dataplatform.assets.partitions import crawl_snapshots
    from dataplatform.assets.toxicity import toxicity
    from dataplatform.resources.storage import DatasetStorageResource, ShardExecutionResource

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(crawl_snapshots.name, [SNAPSHOT])
        return dg.materialize(
            [toxicity, toxicity_suite],
            partition_key=SNAPSHOT,
            instance=instance,
            raise_on_error=False,
            resources={
                "dataset_storage": DatasetStorageResource(local_root=str(store.object_store.root)),
                "shard_execution": ShardExecutionResource(engine="inline"),
            },
            run_config={"ops": {"toxicity": {"config": config}}},
        )


def test_asset_reports_tradeoff_and_passes_its_check(store):
    result = _materialize(store, {"policy": "drop_above_threshold", "thresholds": {"profanity": 0.5}})
    assert result.success
    check = result.get_asset_check_evaluations()[0]
    assert check.passed, check.metadata
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert "| > 0.5 | 2 (25.0%)" in metadata["tradeoff_table"].value
    assert metadata["dagster/row_count"].value == 6


def test_asset_fails_naming_the_config_on_an_unknown_dimension(store):
    result = _materialize(store, {"policy": "drop_above_threshold", "thresholds": {"race_origin": 0.5}})
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "ToxicityConfig" in failure and "race_origin" in failure


def test_process_command_sets_toxic_pages_aside_and_prints_the_tradeoff(tmp_path, capsys):
    from dataplatform.cli import main

    paragraphs = default_positives()
    extra = [*CLEAN[:3], "You are a worthless idiot and a fucking moron, shut up."]
    records = [
        warc_record(
            f"https://tox.example/{i}",
            http_response(html_page(f"Page {i}", [paragraphs[3 * i], paragraphs[3 * i + 1], paragraphs[3 * i + 2], text])),
        )
        for i, text in enumerate(extra)
    ]
    warc = tmp_path / "pages.warc.gz"
    warc.write_bytes(b"".join(records))
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
            "--toxicity-threshold",
            "profanity=0.5",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    rows = pl.read_parquet(out / f"{SNAPSHOT}.parquet")
    assert rows.filter(pl.col("url") == "https://tox.example/3")["drop_reason"].to_list() == ["toxicity:profanity"]
    assert rows.filter(pl.col("drop_reason") == "toxicity:profanity").height == 1
    assert "what each threshold would remove" in printed and "| > 0.5 | 1 (25.0%)" in printed
    assert main(["process", str(warc), "--output", str(out), "--toxicity-threshold", "x=high"]) == 2
