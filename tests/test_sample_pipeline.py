"""The bundled sample crawl through the CLI chain, checked against its ground-truth sidecar."""

import polars as pl
import pytest

from dataplatform.cli import main
from dataplatform.io.datasets import DatasetStore
from dataplatform.sample_data import SAMPLE_CRAWL_ROOT, SAMPLE_SNAPSHOTS, load_ground_truth


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    out = tmp_path_factory.mktemp("processed")
    snapshot = SAMPLE_SNAPSHOTS[0]
    files = sorted((SAMPLE_CRAWL_ROOT / "crawl-data" / snapshot).rglob("*.warc.gz"))
    assert main(["process", *map(str, files), "--output", str(out), "--snapshot", snapshot, "--workers", "2"]) == 0
    store = DatasetStore.local(out)
    truth = pl.DataFrame([r for r in load_ground_truth() if r["snapshot"] == snapshot], infer_schema_length=None)
    processed = pl.read_parquet(out / f"{snapshot}.parquet")
    return store.read_frame("documents", snapshot), store.read_frame("documents", snapshot, "quarantine"), truth, processed


def test_every_malformed_record_is_quarantined_with_its_reason(processed):
    docs, quarantine, truth, _ = processed
    reasons = pl.concat(
        [
            docs.select("warc_record_id", pl.col("drop_reason").alias("reason")),
            quarantine.filter(pl.col("warc_record_id").is_not_null()).select("warc_record_id", "reason"),
        ]
    )
    expected = truth.filter(pl.col("expected_quarantine").is_not_null()).select("warc_record_id", "expected_quarantine")
    joined = expected.join(reasons, on="warc_record_id", how="left")
    assert joined.filter(pl.col("reason") != pl.col("expected_quarantine")).height == 0, joined
    assert joined["reason"].null_count() == 0


def test_no_record_is_lost(processed):
    docs, quarantine, truth, _ = processed
    seen = set(docs["warc_record_id"]) | set(quarantine["warc_record_id"].drop_nulls())
    assert set(truth["warc_record_id"]) == seen


def test_languages_match_ground_truth(processed):
    docs, _, truth, _ = processed
    kept = docs.filter(pl.col("drop_reason").is_null()).join(
        truth.select("warc_record_id", "category", pl.col("language").alias("true_language")), on="warc_record_id"
    )
    non_english = kept.filter(pl.col("category") == "non_english")
    assert non_english.height >= 15
    assert (non_english["language"] == non_english["true_language"]).all()
    articles = kept.filter(pl.col("category") == "article")
    assert articles.height >= 100 and (articles["language"] == "en").all()


def test_lineage_columns(processed):
    docs, _, _, _ = processed
    assert docs["doc_id"].n_unique() == docs.height
    # `process` records each file relative to the folder the given files have in common.
    segments = SAMPLE_CRAWL_ROOT / "crawl-data" / SAMPLE_SNAPSHOTS[0] / "segments"
    assert all((segments / f).is_file() for f in docs["warc_file"].unique())
    assert docs.filter(pl.col("drop_reason").is_null())["fetch_time"].null_count() == 0


def test_processed_output_has_one_row_per_page_with_every_stage(processed):
    docs, _, truth, out = processed
    assert sorted(out["doc_id"]) == sorted(docs["doc_id"])
    for column in (
        "passes_gopher_repetition",
        "passes_gopher_quality",
        "passes_c4",
        "passes_fineweb",
        "pii_count",
        "quality_score",
        "quality_label",
        "duplicate_of",
        "drop_reason",
    ):
        assert column in out.columns
    kept = out.filter(pl.col("drop_reason").is_null())
    assert kept.height > 0 and kept["quality_score"].null_count() == 0
    assert set(kept["quality_label"]) <= {"high_quality", "rewrite_candidate"}
    # The stage that set a page aside is named by its reason's prefix.
    stages = set(out["drop_reason"].drop_nulls().str.split(":").list.first())
    assert {"quarantine", "language", "quality"} <= stages
    spam = out.join(truth.filter(pl.col("category") == "spam").select("warc_record_id"), on="warc_record_id")
    assert spam["drop_reason"].null_count() == 0


def test_bad_process_arguments_fail_with_a_message(tmp_path, capsys):
    assert main(["process", str(tmp_path / "missing.warc.gz"), "--output", str(tmp_path)]) == 2
    assert "not a file" in capsys.readouterr().err
    warc = next(SAMPLE_CRAWL_ROOT.rglob("*.warc.gz"))
    assert main(["process", str(warc), "--output", str(tmp_path), "--quality-model", str(tmp_path / "nope.bin")]) == 2
    assert "--quality-model" in capsys.readouterr().err


def test_process_with_benchmarks_drops_the_leak(tmp_path):
    from dataplatform.sample_data import SAMPLE_BENCHMARKS_DIR

    snapshot = SAMPLE_SNAPSHOTS[0]
    files = sorted((SAMPLE_CRAWL_ROOT / "crawl-data" / snapshot).rglob("*.warc.gz"))
    assert (
        main(
            [
                "process",
                *map(str, files),
                "--output",
                str(tmp_path),
                "--snapshot",
                snapshot,
                "--workers",
                "1",
                "--benchmarks",
                str(SAMPLE_BENCHMARKS_DIR),
            ]
        )
        == 0
    )
    out = pl.read_parquet(tmp_path / f"{snapshot}.parquet")
    truth = pl.DataFrame([r for r in load_ground_truth() if r["category"] == "benchmark_leak"], infer_schema_length=None)
    leak = out.join(truth.select("warc_record_id"), on="warc_record_id")
    assert leak.height == 1
    # It reached decontamination (kept by filters, scoring and dedup) and was dropped there, named.
    assert leak["drop_reason"].to_list() == ["contamination:sample_qa"]
    assert leak["contamination_benchmark"].to_list() == ["sample_qa"]
