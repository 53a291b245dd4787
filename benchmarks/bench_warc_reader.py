"""WARC reader throughput: ``iter_raw_page_batches`` vs fastwarc's bare ``ArchiveIterator``.

    python benchmarks/bench_warc_reader.py [--repeat 20] [--runs 3]

Our reader frames every record itself (gzip member by member, checking each ``Content-Length``) so
that it can resume after damage, hands the record to fastwarc, and builds the ``raw_pages`` and
quarantine Arrow batches. The peer is the floor under it: fastwarc iterating the same file with its
own framing (which stops at the first damage), verifying the block digest, parsing HTTP and reading
the payload of responses, building no rows. ``--before DIR`` also measures the reader of another
checkout (the code before a change) in the same run.
Inputs: the bundled sample crawl, the sample concatenated ``--repeat`` times into one file, pywb's
real ``iana.warc.gz`` and the three real Common Crawl records of ``tests/data`` repeated 3000 times
(a 26 kB page among them). Each measurement runs in its own process (best of ``--runs``), so peak
RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_corpus

ROOT = Path(__file__).resolve().parents[1]
COMMONCRAWL_RECORDS = ROOT / "tests" / "data" / "commoncrawl-CC-MAIN-2025-33-records.warc.gz"


def read_ours(files: list[str]) -> tuple[int, int]:
    from dataplatform.core.warc_records import WarcReadStats, iter_raw_page_batches

    records = pages = 0
    for path in files:
        stats = WarcReadStats()
        for _ in iter_raw_page_batches(path, snapshot="bench", warc_file=path, stats=stats):
            pass
        records += stats.records
        pages += stats.pages
    return records, pages


def read_fastwarc(files: list[str]) -> tuple[int, int]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    records = pages = 0
    for path in files:
        for record in ArchiveIterator(path, parse_http=False, fsspec_args=False):
            records += 1
            if record.record_type == WarcRecordType.response and record.verify_block_digest(consume=False):
                record.parse_http()
                pages += bool(record.reader.read())
    return records, pages


def child_main(reader: str, files: list[str]) -> dict:
    read = read_ours if reader == "ours" else read_fastwarc
    read(files[:1])  # imports and first-call costs stay out of the timing
    started, cpu_started = time.perf_counter(), time.process_time()
    records, pages = read(files)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    size = sum(Path(f).stat().st_size for f in files)
    # Rates by CPU time: on a shared machine wall time mostly measures the neighbours.
    return {
        "records": records,
        "pages": pages,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "records_per_s": records / cpu,
        "mb_per_s": size / 1e6 / cpu,
        "peak_rss_mb": real_corpus.peak_rss_mb(),
    }


def measure(reader: str, files: list[str], runs: int, checkout: str | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=checkout) if checkout else None
    best = None
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, __file__, "--child", reader, json.dumps(files)], check=True, capture_output=True, text=True, env=env
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        best = result if best is None or result["cpu_seconds"] < best["cpu_seconds"] else best
    return best


def inputs(folder: Path, repeat: int) -> list[tuple[str, list[str]]]:
    from dataplatform.sample_data import SAMPLE_CRAWL_ROOT

    sample = sorted(str(p) for p in SAMPLE_CRAWL_ROOT.rglob("*.warc.gz") if "truncated" not in p.name)
    joined = folder / f"sample-x{repeat}.warc.gz"
    joined.write_bytes(b"".join(Path(p).read_bytes() for p in sample) * repeat)
    commoncrawl = folder / "commoncrawl-x3000.warc.gz"
    commoncrawl.write_bytes(COMMONCRAWL_RECORDS.read_bytes() * 3000)
    iana = [str(p) for p in real_corpus.pywb_sample_warcs() if p.name == "iana.warc.gz"]
    return [
        ("bundled sample, 6 complete files", sample),
        (f"bundled sample x{repeat}, one file", [str(joined)]),
        ("pywb iana.warc.gz (real crawl)", iana),
        ("3 real Common Crawl records x3000", [str(commoncrawl)]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--before",
        help="another checkout whose reader to measure too, e.g. a "
        "`git worktree add /tmp/before <commit>` of the code before a change",
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_main(args.child[0], json.loads(args.child[1]))))
        return
    print(f"# WARC reader benchmark — {real_corpus.machine()} — {time.strftime('%Y-%m-%d %H:%M')}")
    before = f" --before {args.before}" if args.before else ""
    print(f"# command: python benchmarks/bench_warc_reader.py --repeat {args.repeat} --runs {args.runs}{before}\n")
    print("Rates per CPU second (process_time of the reading process), best of the runs.\n")
    print("| input | MB | reader | records | pages | records/s | MB/s | peak RSS MB | ours / fastwarc |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-warc-reader-") as tmp:
        for name, files in inputs(Path(tmp), args.repeat):
            size = sum(Path(f).stat().st_size for f in files) / 1e6
            ours, peer = measure("ours", files, args.runs), measure("fastwarc", files, args.runs)
            rows = [("ours", ours), ("fastwarc ArchiveIterator", peer)]
            if args.before:
                rows.insert(1, (f"ours, {args.before}", measure("ours", files, args.runs, args.before)))
            for label, r in rows:
                ratio = f"{r['mb_per_s'] / peer['mb_per_s']:.2f}" if label.startswith("ours") else ""
                print(
                    f"| {name} | {size:.1f} | {label} | {r['records']} | {r['pages']} | {r['records_per_s']:.0f} | "
                    f"{r['mb_per_s']:.1f} | {r['peak_rss_mb']:.0f} | {ratio} |"
                )


if __name__ == "__main__":
    main()
