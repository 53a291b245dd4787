import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dataplatform.core.decontamination import (
    BenchmarkNgramIndex,
    count_overlaps,
    decontaminate,
    find_contamination,
    load_benchmark_items,
)

QUESTION = (
    "A bread recipe asks the baker to let the dough rest in a warm place until it doubles in size; "
    "which living organism is mainly responsible for this rise?"
)
OTHER = (
    "Which instrument would a weather station use to measure atmospheric pressure, a reading that "
    "forecasters watch closely because falling values often signal an approaching storm?"
)
WORDS = [f"w{i}" for i in range(40)]  # distinct tokens for exact-length overlap tests


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def bench_files(tmp_path):
    a = _write_jsonl(
        tmp_path / "quiz_a.jsonl",
        [
            {"id": "a-0", "question": QUESTION, "choices": ["Yeast", "Mould"], "answer": "Yeast"},
            {"id": "a-1", "question": OTHER, "choices": ["Barometer", "Thermometer"], "answer": 2},
        ],
    )
    return [a]


def _index(texts: dict[str, list[str]], n: int = 13) -> BenchmarkNgramIndex:
    rows = [(b, str(i), t) for b, ts in texts.items() for i, t in enumerate(ts)]
    df = pl.DataFrame(rows, schema=["benchmark", "item_id", "text"], orient="row")
    return BenchmarkNgramIndex.build(df, n=n)


def test_load_benchmark_items_jsonl_and_parquet(tmp_path, bench_files):
    pq_path = tmp_path / "quiz_b.parquet"
    pl.DataFrame({"question": ["What is two plus two?"], "choices": [["3", "4"]]}).write_parquet(pq_path)
    items = load_benchmark_items(bench_files + [pq_path])
    assert items.columns == ["benchmark", "item_id", "text"]
    assert items["benchmark"].to_list() == ["quiz_a", "quiz_a", "quiz_b"]
    assert items["item_id"].to_list() == ["a-0", "a-1", "0"]  # id field, else row index
    assert items["text"][0] == f"{QUESTION}\nYeast Mould\nYeast"
    assert items["text"][1].endswith("Barometer Thermometer\n2")
    assert items["text"][2] == "What is two plus two?\n3 4"


def test_load_benchmark_items_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_benchmark_items([missing])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok"}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl.*line 2"):
        load_benchmark_items([bad])
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="corrupt.parquet"):
        load_benchmark_items([corrupt])
    nofields = _write_jsonl(tmp_path / "nofields.jsonl", [{"prompt": "x", "target": "y"}])
    with pytest.raises(ValueError, match=r"nofields\.jsonl.*question.*choices"):
        load_benchmark_items([nofields])


def test_verbatim_quote_inside_other_text_is_flagged(bench_files):
    index = BenchmarkNgramIndex.build(load_benchmark_items(bench_files))
    df = pl.DataFrame(
        {
            "doc_id": ["quote", "clean"],
            "text": [
                f"My grandmother's kitchen was always warm. She once read me a quiz: {QUESTION} I said yeast.",
                "A bread recipe usually needs flour, water, salt and yeast; the dough rises in a warm place.",
            ],
        }
    )
    out = find_contamination(df, index)
    assert out["doc_id"].to_list() == ["quote", "clean"]
    assert out["contaminated"].to_list() == [True, False]
    assert out["contamination_benchmark"].to_list() == ["quiz_a", None]
    n_words = len(QUESTION.replace(";", "").replace("?", "").split())
    assert out["overlap_ngrams"][0] == n_words - 13 + 1
    assert out["overlap_ngrams"][1] == 0


def test_overlap_length_threshold():
    bench = {"bench": [" ".join(WORDS[:30])]}
    doc = "unrelated prefix " + " ".join(WORDS[5:17]) + " unrelated suffix"  # 12 shared tokens
    df = pl.DataFrame({"text": [doc]})
    assert find_contamination(df, _index(bench, n=13))["contaminated"].to_list() == [False]
    out12 = find_contamination(df, _index(bench, n=12))
    assert out12["contaminated"].to_list() == [True]
    assert out12["overlap_ngrams"].to_list() == [1]
    doc13 = "unrelated prefix " + " ".join(WORDS[5:18]) + " unrelated suffix"
    assert find_contamination(pl.DataFrame({"text": [doc13]}), _index(bench, n=13))["contaminated"][0]


def test_case_punctuation_and_unicode_differences_still_match(bench_files):
    index = BenchmarkNgramIndex.build(load_benchmark_items(bench_files))
    shouted = QUESTION.upper().replace(" ", " -- ").replace(";", "!!!")
    fullwidth = QUESTION.replace("bread", "ｂｒｅａｄ")  # NFKC folds full-width letters
    df = pl.DataFrame({"text": [shouted, f"<p>{fullwidth}</p>"]})
    out = find_contamination(df, index)
    assert out["contaminated"].to_list() == [True, True]


def test_cut_removes_span_and_keeps_the_rest(bench_files):
    index = BenchmarkNgramIndex.build(load_benchmark_items(bench_files))
    df = pl.DataFrame(
        {
            "doc_id": ["mixed", "only", "clean"],
            "text": [f"Before the quote. {QUESTION} After the quote.", QUESTION, "Nothing to see here."],
            "drop_reason": [None, None, None],
        },
        schema_overrides={"drop_reason": pl.String},
    )
    out = decontaminate(df, index, mode="cut")
    assert out["doc_id"].to_list() == ["mixed", "only", "clean"]
    # the span runs from the first to the last overlapping word; surrounding separators remain
    assert out["text"][0] == "Before the quote. ? After the quote."
    assert out["contamination_cut_chars"].to_list() == [len(QUESTION) - 1, len(QUESTION) - 1, 0]
    assert out["drop_reason"].to_list() == [None, "contamination:quiz_a", None]
    assert out["text"][2] == "Nothing to see here."
    # what is left no longer overlaps
    assert count_overlaps(out, index) == {"quiz_a": 0}


def test_drop_mode_and_existing_drop_reason_untouched(bench_files):
    index = BenchmarkNgramIndex.build(load_benchmark_items(bench_files))
    df = pl.DataFrame(
        {
            "doc_id": ["contam", "already", "clean"],
            "text": [f"x {QUESTION} y", f"x {QUESTION} y", "fine text"],
            "drop_reason": [None, "duplicate:exact", None],
        }
    )
    for mode in ("drop", "cut"):
        out = decontaminate(df, index, mode=mode)
        assert out["drop_reason"].to_list()[1] == "duplicate:exact"
        assert out["text"][1] == df["text"][1]
        assert out["contaminated"][1] is None and out["overlap_ngrams"][1] is None
    out = decontaminate(df, index, mode="drop")
    assert out["drop_reason"].to_list() == ["contamination:quiz_a", "duplicate:exact", None]
    assert out["text"].to_list() == df["text"].to_list()
    no_col = decontaminate(df.drop("drop_reason"), index)
    assert no_col["drop_reason"].to_list() == ["contamination:quiz_a", "contamination:quiz_a", None]
    with pytest.raises(ValueError, match="mode"):
        decontaminate(df, index, mode="trim")


def test_shared_text_across_benchmarks_is_deterministic():
    shared = " ".join(WORDS[:20])
    idx1 = _index({"zeta": [shared], "alpha": [shared], "mid": ["something else entirely"]})
    idx2 = _index({"mid": ["something else entirely"], "alpha": [shared], "zeta": [shared]})
    assert idx1.to_arrow().equals(idx2.to_arrow())
    df = pl.DataFrame({"text": [f"lead in {shared} trail"]})
    for idx in (idx1, idx2):
        out = decontaminate(df, idx)
        assert out["contamination_benchmark"].to_list() == ["alpha"]
        assert out["drop_reason"].to_list() == ["contamination:alpha"]
        assert count_overlaps(df, idx) == {"alpha": 8, "mid": 0, "zeta": 8}


def test_index_arrow_roundtrip(bench_files, tmp_path):
    import pyarrow.parquet as pq

    index = BenchmarkNgramIndex.build(load_benchmark_items(bench_files), n=8)
    pq.write_table(index.to_arrow(), tmp_path / "index.parquet")
    back = BenchmarkNgramIndex.from_arrow(pq.read_table(tmp_path / "index.parquet"))
    assert back.n == 8 and back.benchmarks == index.benchmarks
    assert np.array_equal(back.hashes, index.hashes)
    assert np.array_equal(back.benchmark_codes, index.benchmark_codes)
    assert np.all(index.hashes[:-1] <= index.hashes[1:])
    assert back.to_arrow().equals(index.to_arrow())


def test_hashes_are_pinned():
    """A persisted index is only useful if hashing never changes silently: golden values (bump
    HASH_VERSION if these ever have to change)."""
    from dataplatform.core.decontamination import word_hashes

    assert word_hashes(pl.Series(["hello", "world", "a"])).tolist() == [
        4438903624597780295,
        8986960059872958086,
        3111285952681286881,
    ]
    idx = _index({"b": [" ".join(WORDS[:13])]}, n=13)
    assert idx.hashes.tolist() == [15033454988328815027]
    # the same words however they are spelled
    assert _index({"b": [" ".join(WORDS[:13]).upper().replace(" ", ", ")]}, n=13).hashes.tolist() == idx.hashes.tolist()


def test_short_items_are_reported():
    idx = _index({"b": ["too short to index", " ".join(WORDS[:14])]}, n=13)
    assert idx.short_items == {"b": 1}
    assert len(idx) == 2


def test_empty_inputs(bench_files):
    index = BenchmarkNgramIndex.build(load_benchmark_items(bench_files))
    empty = pl.DataFrame({"doc_id": [], "text": []}, schema={"doc_id": pl.String, "text": pl.String})
    out = find_contamination(empty, index)
    assert out.height == 0 and {"contaminated", "contamination_benchmark", "overlap_ngrams"} <= set(out.columns)
    assert decontaminate(empty, index, mode="cut").height == 0
    assert count_overlaps(empty, index) == {"quiz_a": 0}
    texts = pl.DataFrame({"text": ["", None, "a b c"]})
    assert find_contamination(texts, index)["contaminated"].to_list() == [False, False, False]
    empty_index = BenchmarkNgramIndex.build(
        pl.DataFrame(
            {"benchmark": [], "item_id": [], "text": []}, schema={c: pl.String for c in ("benchmark", "item_id", "text")}
        )
    )
    assert len(empty_index) == 0
    out = decontaminate(texts, empty_index, mode="cut")
    assert out["contaminated"].to_list() == [False] * 3
    assert out["contamination_benchmark"].to_list() == [None] * 3
    assert count_overlaps(texts, empty_index) == {}
    assert load_benchmark_items([]).height == 0
