"""Scaling of our ingest + filter chain with input size: 1x, 4x and 16x the same real WARC input.

    python benchmarks/bench_scaling.py [--workers 2] [--scales 1 4 16] [--runs 2] [--python-parts 0]

Input (fetched at run time, cached under benchmarks/_data/, git-ignored): Debian's postgresql-doc-15
HTML pages wrapped into 4 WARC files (plus ``--python-parts`` of the 4 WARC parts of python3.11-doc,
none by default, to keep 16x near a minute; ``real_corpus.doc_warcs``), plus the pywb 2.10.0 sample
crawl WARCs. Scale k replicates every file k times (symlinks under benchmarks/_data/scaling/, so every
scale reads the same bytes from the page cache; the copies carry the same record ids, which is
harmless here: dedup is not in this chain).

Each run is a fresh subprocess doing ``materialize_documents_from_warcs`` + ``materialize_filtered``
with ``make_executor("process", workers)``. Reported: wall time, CPU time (user+sys of the process
and all reaped children), docs/s, peak RSS of the largest process (ru_maxrss of self and of
RUSAGE_CHILDREN) and of the whole process tree (summed RSS, sampled at 5 Hz). Goals: time(16x) <= 17 x
time(1x) and peak RSS(16x) <= 1.3 x peak RSS(1x). Scales are run in alternating order (1, 4, 16,
then 16, 4, 1, ...) and the median per scale is used, because the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_corpus  # noqa: E402


def replicate(files: list[Path], k: int) -> list[str]:
    folder = real_corpus.DATA / "scaling"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for rep in range(k):
        for f in files:
            link = folder / f"rep{rep:02d}-{f.name}"
            if not link.is_symlink():
                link.symlink_to(f.resolve())
            out.append(str(link))
    return out


def child(files: list[str], workers: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps({"files": files, "workers": workers})], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--runs", type=int, default=2, help="runs per scale (alternating order); median reported")
    ap.add_argument(
        "--python-parts",
        type=int,
        default=0,
        choices=(0, 1, 2, 3, 4),
        help="python3.11-doc WARC parts (of 4) in the 1x input, besides all of postgresql-doc-15",
    )
    ap.add_argument("--quick", action="store_true", help="one run per scale, scales 1 and 4")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        payload = json.loads(args.child)
        print(json.dumps(real_corpus.run_ingest_filter_chain(payload["files"], payload["workers"])))
        return
    if args.quick:
        args.runs, args.scales = 1, [1, 4]

    base = [
        p
        for p in real_corpus.doc_warcs()
        if "postgresql" in p.name or int(p.name.rsplit("-", 1)[1].split("of")[0]) <= args.python_parts
    ]
    base += real_corpus.pywb_sample_warcs()
    mb = sum(p.stat().st_size for p in base) / 1e6
    cmd = "python benchmarks/bench_scaling.py " + " ".join(sys.argv[1:])
    print(f"# scaling — {real_corpus.machine()} — {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# command: {cmd.strip()}")
    print(f"# load average at start: {os.getloadavg()[0]:.1f} (shared machine: compare within this run only)")
    print(
        f"# 1x input: {len(base)} WARC files, {mb:.1f} MB gzipped, {real_corpus.count_warc_responses(base)} "
        f"response records; chain: documents (fastwarc + resiliparse + fastText LID) + filtered "
        f"(Gopher, C4, FineWeb, PII), process pool of {args.workers}\n"
    )

    results: dict[int, list[dict]] = {}
    for run in range(args.runs):
        for k in args.scales if run % 2 == 0 else list(reversed(args.scales)):
            r = child(replicate(base, k), args.workers)
            results.setdefault(k, []).append(r)
            print(
                f"  run {run + 1} {k:2d}x wall {r['seconds']:6.1f} s  cpu {r['cpu_s']:6.1f} s  "
                f"tree RSS {r['tree_rss_mb']:.0f} MB",
                file=sys.stderr,
                flush=True,
            )

    def med(k: int, key: str) -> float:
        return statistics.median(r[key] for r in results[k])

    print(
        "| scale | WARC files | records | wall s (median; runs) | documents s | filtered s | CPU s | docs/s "
        "| MB/s | peak RSS MB (largest proc) | peak RSS MB (tree) | time / time(1x) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    low = min(args.scales)
    for k in args.scales:
        rs = results[k]
        wall = med(k, "seconds")
        walls = ", ".join(f"{r['seconds']:.1f}" for r in rs)
        largest = statistics.median(max(r["rss_self_mb"], r["rss_children_mb"]) for r in rs)
        print(
            f"| {k}x | {len(base) * k} | {rs[0]['records']} | {wall:.1f} ({walls}) | "
            f"{med(k, 'documents_s'):.1f} | {med(k, 'filtered_s'):.1f} | {med(k, 'cpu_s'):.1f} | "
            f"{rs[0]['records'] / wall:.0f} | {rs[0]['bytes'] / 1e6 / wall:.2f} | {largest:.0f} | "
            f"{med(k, 'tree_rss_mb'):.0f} | {wall / med(low, 'seconds'):.2f} |"
        )
    print()
    high = max(args.scales)
    factor = high / low
    t_ratio = med(high, "seconds") / med(low, "seconds")
    c_ratio = med(high, "cpu_s") / med(low, "cpu_s")
    print(
        f"goal: time({high}x) <= {factor + 1:.0f} x time({low}x): {t_ratio:.2f}x wall "
        f"({c_ratio:.2f}x CPU) — {'PASS' if t_ratio <= factor + 1 else 'FAIL'}"
    )
    for label, key in (("largest process", None), ("process tree", "tree_rss_mb")):
        if key:
            lo, hi = med(low, key), med(high, key)
        else:
            lo = statistics.median(max(r["rss_self_mb"], r["rss_children_mb"]) for r in results[low])
            hi = statistics.median(max(r["rss_self_mb"], r["rss_children_mb"]) for r in results[high])
        print(
            f"goal: peak RSS({high}x) <= 1.3 x peak RSS({low}x), {label}: {hi:.0f} / {lo:.0f} MB = {hi / lo:.2f}x — "
            f"{'PASS' if hi <= 1.3 * lo else 'FAIL'}"
        )


if __name__ == "__main__":
    main()
