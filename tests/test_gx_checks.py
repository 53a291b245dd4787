"""great-expectations 1.x validation of Polars frames: declarative rules, sampling, dataset suites."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl
import pytest

from dataplatform.checks import (
    DOCUMENTS_COLUMNS,
    between,
    documents_expectations,
    drop_fraction_of,
    filtered_expectations,
    not_null,
    row_count_between,
    sample_frame,
    scored_expectations,
    unique,
    validate,
    value_in_set,
)
from dataplatform.core.schemas import DOCUMENTS


def _documents(n: int = 40) -> pl.DataFrame:
    """A valid documents frame: every 4th row dropped (null text allowed there)."""
    dropped = [i % 4 == 3 for i in range(n)]
    return pl.from_arrow(
        DOCUMENTS.empty_table().from_pylist(
            [
                {
                    "doc_id": f"d{i:05d}",
                    "url": f"https://example.com/{i}",
                    "snapshot": "CC-MAIN-2024-10",
                    "warc_record_id": f"<urn:uuid:{i}>",
                    "warc_file": "a.warc.gz",
                    "fetch_time": datetime(2024, 3, 1, tzinfo=UTC),
                    "text": None if dropped[i] else f"document number {i} " * 5,
                    "title": f"t{i}",
                    "language": "en",
                    "language_score": 0.5 + (i % 50) / 100,
                    "n_chars": 0 if dropped[i] else 100 + i,
                    "drop_reason": "too_short" if dropped[i] else None,
                }
                for i in range(n)
            ],
            schema=DOCUMENTS,
        )
    )


def _scored(n: int = 40) -> pl.DataFrame:
    df = _documents(n)
    return df.with_columns(
        pl.when(pl.col("drop_reason").is_null()).then(pl.lit(0.7)).otherwise(None).cast(pl.Float32).alias("quality_score"),
        pl.lit(0, pl.Int32).alias("pii_count"),
    )


def _failed(outcome) -> dict[str, object]:
    return {r.name: r.observed for r in outcome.failed}


# ------------------------------------------------------------------------------------ documents


def test_good_documents_pass_and_every_rule_is_reported():
    df = _documents()
    rules = documents_expectations(min_rows=1)
    out = validate(df, rules, suite_name="documents")
    assert out.success, out.summary()
    assert [r.name for r in out.results] == [r.label for r in rules]
    assert out.rows_total == out.rows_validated == 40 and not out.sampled and out.seed == 0
    assert out.result("row_count_between").observed == 40
    assert sorted(out.result("columns_match").observed) == sorted(DOCUMENTS.names)
    json.dumps(out.to_dict())  # plain values only: usable as Dagster metadata


def test_duplicate_doc_id_fails_and_reports_it():
    df = _documents()
    df = df.with_columns(pl.when(pl.col("doc_id") == "d00005").then(pl.lit("d00001")).otherwise(pl.col("doc_id")).alias("doc_id"))
    out = validate(df, documents_expectations(), suite_name="documents")
    assert not out.success
    assert _failed(out) == {"unique(doc_id)": 2}
    assert out.result("unique(doc_id)").details["partial_unexpected_list"] == ["d00001", "d00001"]


def test_null_text_in_kept_rows_fails_but_not_in_dropped_rows():
    df = _documents()
    assert df.filter(pl.col("drop_reason").is_not_null())["text"].null_count() > 0  # dropped rows: fine
    out = validate(df, documents_expectations(), suite_name="documents")
    assert out.success, out.summary()

    bad = df.with_columns(pl.when(pl.col("doc_id") == "d00002").then(None).otherwise(pl.col("text")).alias("text"))
    out = validate(bad, documents_expectations(), suite_name="documents")
    name = "not_null(text) where drop_reason is_null"
    assert _failed(out) == {name: 1}
    assert out.result(name).details["element_count"] == 30  # only the kept rows were checked


def test_language_score_out_of_range_fails():
    df = _documents().with_columns(
        pl.when(pl.col("doc_id") == "d00007")
        .then(1.5)
        .otherwise(pl.col("language_score"))
        .cast(pl.Float32)
        .alias("language_score")
    )
    out = validate(df, documents_expectations(), suite_name="documents")
    name = "between(language_score, 0, 1)"
    assert _failed(out) == {name: 1}
    assert out.result(name).details["partial_unexpected_list"] == [1.5]


def test_negative_n_chars_fails():
    df = _documents().with_columns(pl.when(pl.col("doc_id") == "d00000").then(-1).otherwise(pl.col("n_chars")).alias("n_chars"))
    out = validate(df, documents_expectations(), suite_name="documents")
    assert _failed(out) == {"between(n_chars, 0, None)": 1}


def test_missing_column_fails_columns_match_and_the_rules_on_it():
    df = _documents().drop("url")
    out = validate(df, documents_expectations(), suite_name="documents")
    failed = _failed(out)
    assert set(failed) == {"columns_match", "not_null(url)"}
    cm = out.result("columns_match")
    assert cm.details["details"]["mismatched"] == {"missing": ["url"]}
    assert "url" not in cm.observed
    assert out.result("not_null(url)").observed is None
    assert "url" in out.result("not_null(url)").details["exception"]


def test_extra_column_fails_exact_documents_match_only():
    df = _documents().with_columns(pl.lit(1).alias("extra"))
    assert _failed(validate(df, documents_expectations(), suite_name="d")) == {
        "columns_match": sorted([*DOCUMENTS.names, "extra"])
    }
    assert validate(df, documents_expectations(exact_columns=False), suite_name="d").success


def test_row_count_uses_the_whole_frame_not_the_sample():
    df = _documents(200)
    out = validate(df, [row_count_between(150, None)], suite_name="rows", max_rows=50)
    assert out.sampled and out.rows_validated == 50 and out.success
    assert out.result("row_count_between").observed == 200
    assert out.result("row_count_between").details["engine"] == "python"
    assert not validate(df, [row_count_between(None, 100)], suite_name="rows", max_rows=50).success


def test_value_in_set_and_lazy_input():
    df = _documents()
    out = validate(df.lazy(), [value_in_set("language", ["en", "de"]), value_in_set("drop_reason", ["x"])], suite_name="s")
    assert _failed(out) == {"value_in_set(drop_reason)": 10}


def test_duplicate_rule_names_are_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        validate(_documents(), [not_null("doc_id"), not_null("doc_id")], suite_name="s")
    out = validate(_documents(), [not_null("doc_id"), not_null("doc_id", name="again")], suite_name="s")
    assert [r.name for r in out.results] == ["not_null(doc_id)", "again"]


def test_empty_frame_passes_row_rules():
    df = _documents().head(0)
    out = validate(df, documents_expectations(), suite_name="documents")
    assert out.success, out.summary()
    assert out.rows_total == out.rows_validated == 0


# ------------------------------------------------------------------------------ filtered / scored


def test_filtered_passes_with_a_normal_drop_fraction():
    df = _documents()
    frac = drop_fraction_of(df)
    assert frac == pytest.approx(0.25)
    out = validate(df, filtered_expectations(frac), suite_name="filtered")
    assert out.success, out.summary()
    assert out.result("drop_fraction_between").observed == pytest.approx(0.25)


@pytest.mark.parametrize("fraction", [1.0, 0.0])
def test_filtered_fails_when_everything_or_nothing_is_dropped(fraction):
    out = validate(_documents(), filtered_expectations(fraction), suite_name="filtered")
    assert _failed(out) == {"drop_fraction_between": fraction}
    r = out.result("drop_fraction_between")
    assert r.details["min_value"] == 0.01 and r.details["max_value"] == 0.99


def test_filtered_fails_when_drop_fraction_was_not_measured():
    out = validate(_documents(), filtered_expectations(None), suite_name="filtered")
    assert _failed(out) == {"drop_fraction_between": None}
    assert "not provided" in out.result("drop_fraction_between").details["exception"]


def test_filtered_follows_required_columns():
    df = _documents().filter(pl.col("drop_reason").is_null()).select("doc_id", "text", "n_chars")
    rules = filtered_expectations(0.5, required_columns={"doc_id", "text", "n_chars"})
    names = [r.label for r in rules]
    assert "not_null(text)" in names and "not_null(url)" not in names  # no drop_reason: all rows
    assert validate(df, rules, suite_name="filtered").success
    out = validate(df.drop("n_chars"), rules, suite_name="filtered")
    assert set(_failed(out)) == {"columns_match", "between(n_chars, 0, None)"}


def test_scored_checks_quality_score():
    df = _scored()
    rules = scored_expectations(0.25)
    out = validate(df, rules, suite_name="scored")
    assert out.success, out.summary()
    assert "between(quality_score, 0, 1)" in [r.name for r in out.results]

    bad = df.with_columns(
        pl.when(pl.col("doc_id") == "d00001").then(3.0).otherwise(pl.col("quality_score")).cast(pl.Float32).alias("quality_score")
    )
    assert _failed(validate(bad, rules, suite_name="scored")) == {"between(quality_score, 0, 1)": 1}

    missing = df.drop("quality_score")
    failed = _failed(validate(missing, scored_expectations(0.25, required_columns=set(DOCUMENTS_COLUMNS)), suite_name="scored"))
    assert {"columns_match", "between(quality_score, 0, 1)"} <= set(failed)


# ------------------------------------------------------------------------------------- sampling


def test_sample_is_deterministic_and_reported():
    df = _documents(1_000)
    a, sampled_a = sample_frame(df, 100, seed=7)
    b, sampled_b = sample_frame(df, 100, seed=7)
    c, _ = sample_frame(df, 100, seed=8)
    assert sampled_a and sampled_b and a.height == 100
    assert a.equals(b)
    assert not a.equals(c)
    assert a["doc_id"].is_sorted()  # original row order kept
    lazy, sampled_lazy = sample_frame(df.lazy(), 100, seed=7)
    assert sampled_lazy and lazy.equals(a)

    whole, sampled = sample_frame(df, 1_000, seed=7)
    assert not sampled and whole.equals(df)

    out = validate(df, documents_expectations(), suite_name="documents", max_rows=100, seed=7)
    assert out.success and out.sampled and out.seed == 7
    assert out.rows_validated == 100 and out.rows_total == 1_000


def test_sampled_validation_still_finds_violations_in_the_sample():
    df = _documents(1_000)
    sample, _ = sample_frame(df, 100, seed=3)
    victim = sample["doc_id"][10]
    bad = df.with_columns(
        pl.when(pl.col("doc_id") == victim).then(2.0).otherwise(pl.col("language_score")).cast(pl.Float32).alias("language_score")
    )
    out = validate(bad, [between("language_score", 0, 1), unique("doc_id")], suite_name="s", max_rows=100, seed=3)
    assert out.sampled and _failed(out) == {"between(language_score, 0, 1)": 1}
