"""Benchmark files: every bad line fails fast naming the file and line; validation runs before a chain."""

import json
import os
from pathlib import Path

import polars as pl
import pytest

from dataplatform.core.decontamination import (
    BenchmarkFileError,
    BenchmarkNgramIndex,
    find_benchmark_files,
    load_benchmark_items,
    validate_benchmark_files,
)

SAMPLE_BENCHMARKS = Path(__file__).parents[2] / "dataplatform" / "sample_data" / "benchmarks"
LONG_QUESTION = "Which gas do green plants release into the air as a by-product when they turn light into sugar?"


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _good_line(i: int = 0) -> str:
    return json.dumps({"id": f"q{i}", "question": LONG_QUESTION, "choices": ["Oxygen", "Argon"], "answer": "Oxygen"})


def test_a_line_nested_deeper_than_the_parser_allows_names_file_and_line(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    path = _write(tmp_path / "deep.jsonl", _good_line() + "\n" + '{"question": ' + deep + "}\n")
    with pytest.raises(BenchmarkFileError, match=r"deep\.jsonl: line 2 is nested too deeply"):
        load_benchmark_items([path])


def test_a_parseable_deeply_nested_field_is_flattened_without_recursion(tmp_path):
    # 500 levels parse, but flattening them recursively needed ~1000 Python frames.
    nested = "[" * 500 + '"Oxygen"' + "]" * 500
    path = _write(tmp_path / "nested.jsonl", '{"question": "Q?", "choices": ' + nested + "}\n")
    assert load_benchmark_items([path])["text"].to_list() == ["Q?\nOxygen"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"line 2 is not valid JSON"),
        ('["a", "list"]', r"line 2 is not a JSON object but a list"),
        ('"just a string"', r"line 2 is not a JSON object but a str"),
        ("42", r"line 2 is not a JSON object but a int"),
        ("null", r"line 2 is not a JSON object but a NoneType"),
        ('{"question": "cut off', r"line 2 is not valid JSON"),
    ],
)
def test_bad_lines_name_the_file_and_the_line(tmp_path, line, message):
    path = _write(tmp_path / "bad.jsonl", _good_line() + "\n" + line + "\n" + _good_line(1) + "\n")
    with pytest.raises(BenchmarkFileError, match=r"bad\.jsonl: " + message):
        load_benchmark_items([path])


def test_invalid_utf8_names_the_line(tmp_path):
    path = _write(tmp_path / "latin1.jsonl", (_good_line() + "\n").encode() + '{"question": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(BenchmarkFileError, match=r"latin1\.jsonl: line 2 is not valid UTF-8"):
        load_benchmark_items([path])


def test_a_json_array_file_gets_a_hint(tmp_path):
    path = _write(tmp_path / "array.json", "[\n" + _good_line() + "\n]\n")
    with pytest.raises(BenchmarkFileError, match=r"array\.json: line 1 .*one object per line"):
        load_benchmark_items([path])


def test_byte_order_mark_blank_lines_and_crlf_are_accepted(tmp_path):
    path = _write(tmp_path / "bom.jsonl", ("\ufeff" + _good_line(0) + "\r\n\r\n   \n" + _good_line(1) + "\r\n").encode())
    items = load_benchmark_items([path])
    assert items["item_id"].to_list() == ["q0", "q1"]
    assert items["text"][0] == f"{LONG_QUESTION}\nOxygen Argon\nOxygen"


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_file_is_an_error(tmp_path, content):
    path = _write(tmp_path / "empty.jsonl", content)
    with pytest.raises(BenchmarkFileError, match=r"empty\.jsonl contains no items"):
        load_benchmark_items([path])


def test_non_string_scalars_are_text_and_binary_fields_are_refused(tmp_path):
    path = _write(
        tmp_path / "types.jsonl",
        json.dumps({"question": 12, "choices": [True, 2.5, None, {"a": "x"}], "answer": 0}) + "\n",
    )
    assert load_benchmark_items([path])["text"].to_list() == ["12\nTrue 2.5 x\n0"]
    parquet = tmp_path / "binary.parquet"
    pl.DataFrame({"question": ["fine", None], "context": [b"ok", b"\x00\x01"]}).write_parquet(parquet)
    with pytest.raises(BenchmarkFileError, match=r"binary\.parquet: row 1 has a text field with a binary value"):
        load_benchmark_items([parquet])


def test_items_without_text_are_kept_and_counted(tmp_path):
    path = _write(
        tmp_path / "partial.jsonl",
        _good_line() + "\n" + json.dumps({"id": "blank", "question": "", "other": "x"}) + "\n",
    )
    items = load_benchmark_items([path])
    assert items["item_id"].to_list() == ["q0", "blank"]
    assert items["text"][1] == ""
    [summary] = validate_benchmark_files(path).files
    assert (summary.items, summary.items_without_text, summary.short_items) == (2, 1, 1)


def test_a_file_without_any_text_field_is_an_error(tmp_path):
    path = _write(tmp_path / "fields.jsonl", json.dumps({"prompt": "x", "target": "y"}) + "\n")
    with pytest.raises(BenchmarkFileError, match=r"fields\.jsonl has none of the text fields"):
        validate_benchmark_files(path)


def test_validation_reads_the_folder_as_decontamination_will(tmp_path):
    folder = tmp_path / "benchmarks"
    (folder / "more").mkdir(parents=True)
    _write(folder / "quiz_a.jsonl", "\n".join(_good_line(i) for i in range(3)) + "\n")
    _write(folder / "more" / "quiz_b.jsonl", json.dumps({"question": "Too short to detect?"}) + "\n")
    _write(folder / "notes.txt", "not a benchmark")
    summary = validate_benchmark_files(folder)
    assert [(f.benchmark, f.items, f.short_items) for f in summary.files] == [("quiz_b", 1, 1), ("quiz_a", 3, 0)]
    assert (summary.items, summary.short_items, summary.n) == (4, 1, 13)
    assert "2 benchmark files, 4 items (1 shorter than 13 words" in summary.describe()
    assert summary.to_dict()["files"][1]["benchmark"] == "quiz_a"
    # the word count agrees with the n-gram index the stage builds
    items = load_benchmark_items(find_benchmark_files(folder))
    assert BenchmarkNgramIndex.build(items, n=13).short_items == {
        f.benchmark: f.short_items for f in summary.files if f.short_items
    }
    assert validate_benchmark_files(folder, n=4).short_items == 0


def test_one_bad_file_among_good_ones_fails_validation_naming_it(tmp_path):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    _write(folder / "good.jsonl", _good_line() + "\n")
    _write(folder / "zbad.jsonl", _good_line() + "\n" + _good_line(1) + "\n{oops\n")
    with pytest.raises(BenchmarkFileError, match=r"zbad\.jsonl: line 3"):
        validate_benchmark_files(folder)


def test_missing_paths_duplicate_names_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        validate_benchmark_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .jsonl"):
        validate_benchmark_files(tmp_path / "empty")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _write(tmp_path / "a" / "quiz.jsonl", _good_line() + "\n")
    _write(tmp_path / "b" / "quiz.jsonl", _good_line() + "\n")
    with pytest.raises(BenchmarkFileError, match="same name 'quiz'"):
        validate_benchmark_files(tmp_path)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        validate_benchmark_files(tmp_path / "a", n=0)


def test_a_symlink_loop_under_the_folder_is_not_followed(tmp_path):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    _write(folder / "quiz.jsonl", _good_line() + "\n")
    os.symlink(folder, folder / "loop")
    os.symlink(folder / "dangling.jsonl", folder / "dangling.jsonl")  # points at itself
    assert [f.benchmark for f in validate_benchmark_files(folder).files] == ["quiz"]


def test_the_bundled_sample_benchmark_validates():
    lines = [ln for ln in (SAMPLE_BENCHMARKS / "sample_qa.jsonl").read_text(encoding="utf-8").splitlines() if ln.strip()]
    summary = validate_benchmark_files(SAMPLE_BENCHMARKS)
    assert [(f.benchmark, f.items, f.items_without_text) for f in summary.files] == [("sample_qa", len(lines), 0)]
