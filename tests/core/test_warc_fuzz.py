"""Seeded mutation fuzz of the WARC reader on real WARC files (issue 11, item 9).

Inputs: the bundled sample crawl (Common-Crawl-shaped, one gzip member per record, including a
file cut off mid-record) and three real Common Crawl records (``tests/data``, from cdx_toolkit's
test fixtures on PyPI). Each mutant damages one gzip member of a window of up to 16 consecutive
members: bit flips, zeroed runs, a member cut short, the file cut, garbage or an empty member
inserted, members spliced or duplicated, gzip header flags flipped, or the record inside damaged and
compressed again (Content-Length off by -300..+1,000,000, beyond 2**63, not a number or missing;
the version line or the blank line after the header damaged; the block cut, extended with garbage
or up to 2 MB of zeros or line breaks, or doubled).

The oracle (explained in full in ``tests/warc_fuzz.py``): every member whose bytes the mutant did
not touch must come out exactly as in the unmutated file, from the framing (same header and block)
and from the reader (same page or quarantine row, every column but the offset, which shifts with the
mutant's change in length); the damaged span must yield at least one page, quarantine row or
counted skip; no exception; no mutant over the time limit. ``benchmarks/fuzz_warc_reader.py`` runs
the same fuzz longer, on whole files and pywb's sample WARCs too, and reports peak memory.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import warc_fuzz

from dataplatform.core.warc_records import WarcReadOptions, iter_raw_page_batches
from dataplatform.sample_data import SAMPLE_CRAWL_ROOT

COMMONCRAWL_RECORDS = Path(__file__).resolve().parents[1] / "data" / "commoncrawl-CC-MAIN-2025-33-records.warc.gz"
SEED = 20261201
MUTANTS = 200  # per option set; about 10 s in all on one core


def sources() -> dict[str, list[bytes]]:
    found = {p.name: warc_fuzz.split_members(p.read_bytes()) for p in sorted(SAMPLE_CRAWL_ROOT.rglob("*.warc.gz"))}
    found[COMMONCRAWL_RECORDS.name] = warc_fuzz.split_members(COMMONCRAWL_RECORDS.read_bytes())
    return found


def run_fuzz(options: WarcReadOptions, seed: int, count: int) -> tuple[list[warc_fuzz.Verdict], collections.Counter]:
    baseline = warc_fuzz.baseline_cache(options)
    verdicts = []
    for _, mutant in warc_fuzz.mutants(sources(), count, seed):
        verdicts.append(warc_fuzz.judge(mutant, options, baseline, time_limit=60))
    labels = collections.Counter(v.label.split("_")[0].split("=")[0].rstrip("+-0123456789") for v in verdicts)
    return verdicts, labels


def failures(verdicts: list[warc_fuzz.Verdict]) -> list[str]:
    return [
        f"{v.label}: lost={v.lost} spurious={v.spurious} silent={v.silent_damage} crash={v.crash} hang={v.hang} {v.problems[:2]}"
        for v in verdicts
        if v.lost or v.spurious or v.silent_damage or v.crash or v.hang
    ]


def test_real_commoncrawl_records_are_read():
    pages = [
        row["url"]
        for kind, batch in iter_raw_page_batches(str(COMMONCRAWL_RECORDS), snapshot="S", warc_file="f")
        if kind == "pages"
        for row in batch.to_pylist()
    ]
    assert pages == ["http://www.example.com/", "https://www.commoncrawl.org/"]


@pytest.mark.parametrize(
    "options",
    [WarcReadOptions(max_payload_bytes=16 * 1024), WarcReadOptions()],
    ids=["16KiB-limit-streams-large-records", "default-limit"],
)
def test_no_intact_record_is_lost_no_crash_no_hang(options):
    verdicts, labels = run_fuzz(options, SEED, MUTANTS)
    assert not failures(verdicts), "\n".join(failures(verdicts)[:10])
    # The seed covers every kind of damage, so this test cannot quietly shrink to easy mutants.
    assert {"flip", "zero", "member", "file", "garbage", "empty", "spliced", "gzip", "content"} <= set(labels), labels


def test_the_oracle_catches_a_reader_that_drops_records_after_damage(monkeypatch):
    """The fuzz is only as good as its oracle: a reader that stops at the first damage must fail it."""

    def stops_at_first_damage(stream, **kwargs):
        for kind, batch in iter_raw_page_batches(stream, **kwargs):
            if kind == "quarantine":
                yield kind, batch.slice(0, 1)
                return
            yield kind, batch

    monkeypatch.setattr(warc_fuzz, "iter_raw_page_batches", stops_at_first_damage)
    options = WarcReadOptions(batch_rows=1)
    verdicts, _ = run_fuzz(options, SEED, 60)
    assert sum(v.lost for v in verdicts) > 10
    assert all(v.crash is None for v in verdicts)


def test_mutants_are_reproducible_from_the_seed():
    first = [m.data for _, m in warc_fuzz.mutants(sources(), 20, SEED)]
    again = [m.data for _, m in warc_fuzz.mutants(sources(), 20, SEED)]
    assert first == again and len(set(first)) == 20
