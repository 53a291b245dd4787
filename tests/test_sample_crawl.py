"""The committed sample crawl: reproducible, consistent with its ground truth, and as designed."""

from __future__ import annotations

import collections
import filecmp
import gzip
import html
import json
from pathlib import Path

import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType

from dataplatform.sample_data import (
    SAMPLE_BENCHMARKS_DIR,
    SAMPLE_CRAWL_ROOT,
    SAMPLE_DATA_DIR,
    SAMPLE_SNAPSHOTS,
    load_ground_truth,
)
from dataplatform.sample_data.generate_sample_crawl import generate, word_5gram_jaccard

QUARANTINE_REASONS = {
    "quarantine:non_http",
    "quarantine:revisit",
    "quarantine:empty_payload",
    "quarantine:http_status",
    "quarantine:non_html",
    "quarantine:undecodable_charset",
    "quarantine:truncated_warc",
    "quarantine:digest_mismatch",
}
GENERATED = ["crawl", "ground_truth.jsonl", "benchmarks"]


def _files(root: Path) -> list[Path]:
    found = []
    for name in GENERATED:
        path = root / name
        found += [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sorted(p.relative_to(root) for p in found)


@pytest.fixture(scope="module")
def truth() -> list[dict]:
    return load_ground_truth()


@pytest.fixture(scope="module")
def warc_records() -> dict[str, dict]:
    """record id -> {type, file, headers, block digest ok} for every response/revisit record."""
    out: dict[str, dict] = {}
    for path in sorted(SAMPLE_CRAWL_ROOT.rglob("*.warc.gz")):
        rel = path.relative_to(SAMPLE_CRAWL_ROOT).as_posix()
        types = WarcRecordType.response | WarcRecordType.revisit
        for rec in ArchiveIterator(str(path), record_types=types, parse_http=False):
            digest_ok = rec.verify_block_digest(consume=False)
            rec.parse_http()
            body = rec.reader.read() if rec.reader is not None else b""
            out[rec.record_id] = {
                "type": str(rec.record_type),
                "file": rel,
                "url": rec.headers.get("WARC-Target-URI"),
                "content_length": int(rec.headers["Content-Length"]),
                "digest_ok": digest_ok,
                "body": body,
            }
    return out


def test_regeneration_is_byte_identical(tmp_path: Path) -> None:
    generate(tmp_path)
    committed, fresh = _files(SAMPLE_DATA_DIR), _files(tmp_path)
    assert committed == fresh
    match, mismatch, errors = filecmp.cmpfiles(SAMPLE_DATA_DIR, tmp_path, [str(p) for p in committed], shallow=False)
    assert not mismatch and not errors, (mismatch, errors)


def test_layout_and_paths_listing() -> None:
    for snap in SAMPLE_SNAPSHOTS:
        listing = gzip.decompress((SAMPLE_CRAWL_ROOT / "crawl-data" / snap / "warc.paths.gz").read_bytes()).decode()
        paths = listing.splitlines()
        assert len(paths) == 4 and sum(p.endswith("-truncated.warc.gz") for p in paths) == 1
        for p in paths:
            assert p.startswith(f"crawl-data/{snap}/segments/") and "/warc/" in p
            assert (SAMPLE_CRAWL_ROOT / p).is_file()
    total = sum(p.stat().st_size for p in SAMPLE_DATA_DIR.rglob("*") if p.is_file())
    assert total < 3_000_000


def test_every_file_starts_with_warcinfo_and_requests_precede_responses() -> None:
    for path in sorted(SAMPLE_CRAWL_ROOT.rglob("*.warc.gz")):
        types = [str(r.record_type) for r in ArchiveIterator(str(path), parse_http=False)]
        assert types[0] == "warcinfo"
        for i, t in enumerate(types):
            if t in ("response", "revisit"):
                assert types[i - 1] == "request"


def test_ground_truth_matches_warc_records(truth: list[dict], warc_records: dict[str, dict]) -> None:
    ids = [r["warc_record_id"] for r in truth]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(warc_records)
    for row in truth:
        rec = warc_records[row["warc_record_id"]]
        assert rec["file"] == row["warc_file"]
        assert rec["url"] == row["url"]
        assert rec["type"] == row["warc_type"]
        assert row["snapshot"] in SAMPLE_SNAPSHOTS and row["warc_file"].startswith(f"crawl-data/{row['snapshot']}/")


def test_digests_are_valid_except_where_designed(truth: list[dict], warc_records: dict[str, dict]) -> None:
    for row in truth:
        rec = warc_records[row["warc_record_id"]]
        broken = row["expected_quarantine"] in ("quarantine:digest_mismatch", "quarantine:truncated_warc")
        assert rec["digest_ok"] is (not broken), row


def test_truncated_record_is_short(truth: list[dict], warc_records: dict[str, dict]) -> None:
    rows = [r for r in truth if r["expected_quarantine"] == "quarantine:truncated_warc"]
    assert {r["snapshot"] for r in rows} == set(SAMPLE_SNAPSHOTS)
    for row in rows:
        assert row["warc_file"].endswith("-truncated.warc.gz")
        rec = warc_records[row["warc_record_id"]]
        assert len(rec["body"]) < rec["content_length"]
        raw = (SAMPLE_CRAWL_ROOT / row["warc_file"]).read_bytes()
        with pytest.raises(EOFError):
            gzip.decompress(raw)


def test_category_counts(truth: list[dict]) -> None:
    cats = collections.Counter(r["category"] for r in truth)
    assert cats["article"] >= 150
    assert cats["non_english"] >= 15
    assert cats["exact_duplicate"] >= 5 and cats["near_duplicate"] >= 5
    assert cats["benchmark_leak"] >= 1
    assert cats["boilerplate"] >= 10 and cats["spam"] >= 10
    per_snapshot = collections.Counter(r["snapshot"] for r in truth)
    assert all(150 <= per_snapshot[s] <= 260 for s in SAMPLE_SNAPSHOTS), per_snapshot
    reasons = collections.Counter(r["expected_quarantine"] for r in truth if r["expected_quarantine"])
    assert set(reasons) == QUARANTINE_REASONS
    assert all(n >= 2 for n in reasons.values()), reasons
    assert all(r["category"] == "malformed" for r in truth if r["expected_quarantine"])
    langs = {r["language"] for r in truth if r["category"] == "non_english"}
    assert langs == {"de", "fr", "es", "it", "pt", "nl"}


def test_duplicates(truth: list[dict], warc_records: dict[str, dict]) -> None:
    by_url: dict[tuple[str, str], dict] = {}
    for r in truth:
        if r["category"] in ("article",):
            by_url[(r["snapshot"], r["url"])] = r
    kinds = collections.Counter()
    for r in truth:
        if r["category"] not in ("exact_duplicate", "near_duplicate"):
            assert r["duplicate_of"] is None and r["near_duplicate_jaccard"] is None
            continue
        same = (r["snapshot"], r["duplicate_of"]) in by_url
        other = [s for s in SAMPLE_SNAPSHOTS if s < r["snapshot"] and (s, r["duplicate_of"]) in by_url]
        assert same or other, r
        original = by_url[(r["snapshot"], r["duplicate_of"]) if same else (other[0], r["duplicate_of"])]
        kinds[(r["category"], "within" if same else "cross")] += 1
        dup_body = warc_records[r["warc_record_id"]]["body"]
        orig_body = warc_records[original["warc_record_id"]]["body"]
        if r["category"] == "exact_duplicate":
            assert dup_body == orig_body
        else:
            assert dup_body != orig_body
            assert 0.5 <= r["near_duplicate_jaccard"] < 1.0
    assert all(kinds[(c, k)] >= 2 for c in ("exact_duplicate", "near_duplicate") for k in ("within", "cross")), kinds
    jac = [r["near_duplicate_jaccard"] for r in truth if r["category"] == "near_duplicate"]
    assert sum(j >= 0.8 for j in jac) > len(jac) / 2 and any(j < 0.8 for j in jac)


def test_benchmark_and_leak(truth: list[dict], warc_records: dict[str, dict]) -> None:
    items = {
        d["id"]: d for d in map(json.loads, (SAMPLE_BENCHMARKS_DIR / "sample_qa.jsonl").read_text(encoding="utf-8").splitlines())
    }
    assert len(items) >= 20
    for item in items.values():
        assert len(item["question"].split()) >= 20 and item["answer"] in item["choices"]
    leaks = [r for r in truth if r["category"] == "benchmark_leak"]
    assert leaks
    for r in leaks:
        assert r["benchmark"] == "sample_qa" and r["benchmark_item_id"] in items
        item = items[r["benchmark_item_id"]]
        text = html.unescape(warc_records[r["warc_record_id"]]["body"].decode("utf-8"))
        assert item["question"] in text
        assert all(c in text for c in item["choices"])
    # no other page quotes a benchmark question
    for r in truth:
        if r["category"] != "benchmark_leak" and r["warc_type"] == "response":
            body = warc_records[r["warc_record_id"]]["body"].decode("utf-8", "replace")
            assert not any(i["question"] in body for i in items.values()), r["url"]


def test_jaccard_helper() -> None:
    a = "one two three four five six seven"
    assert word_5gram_jaccard(a, a) == 1.0
    assert word_5gram_jaccard(a, "eight nine ten eleven twelve") == 0.0


def test_non_english_pages_identified_by_lid176(truth: list[dict], warc_records: dict[str, dict]) -> None:
    import fasttext
    from resiliparse.extract.html2text import extract_plain_text

    from dataplatform.core.language_id import default_language_model_path

    model = fasttext.load_model(str(default_language_model_path()))
    for r in truth:
        if r["category"] in ("non_english", "article"):
            text = extract_plain_text(warc_records[r["warc_record_id"]]["body"].decode("utf-8"), main_content=True)
            labels, _ = model.predict(text.replace("\n", " "))
            assert labels[0] == f"__label__{r['language']}", r["url"]
