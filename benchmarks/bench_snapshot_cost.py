"""What one Common Crawl snapshot would cost: per-core throughput of every CPU stage, measured on real
pages, projected to 3 billion pages / 300 million kept documents.

    python benchmarks/bench_snapshot_cost.py [--workers 2] [--copies 2] [--json out.json]

Input (fetched at run time, cached under benchmarks/_data/, git-ignored): Debian's python3.11-doc and
postgresql-doc-15 HTML pages wrapped into 8 WARC files, pywb 2.10.0's sample crawl WARCs, and the
bundled sample crawl (synthetic Common-Crawl-like pages with malformed records), each listed
``--copies`` times. The chain is `dataplatform process` (documents -> filtered -> quality classifier
-> scored -> deduplicated -> decontaminated -> processed) with a process pool of ``--workers``.

Measured per stage from its committed manifest: rows in, the CPU seconds of its shard tasks
(``task_cpu_seconds``, summed over workers), output bytes; plus the driver's own CPU, the peak RSS of
the largest worker and of the whole process tree. Projected: CPU-hours per stage from the stage's
input count in a snapshot (pages, and the shares that reach each stage, below) divided by the
measured rows per CPU-second; the documents stage also by bytes (100 TB of WARC at the measured MB
per CPU-second); intermediate storage from measured output bytes per input row.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_corpus  # noqa: E402

SNAPSHOT = "CC-BENCH-COST"
# One Common Crawl snapshot (issue 12's figures): WARC response records, compressed WARC bytes, and
# documents surviving the heuristic filters.
PAGES = 3.0e9
WARC_BYTES = 100e12
KEPT_AFTER_FILTERS = 300e6
# Which documents reach each stage, as counts in one snapshot. The quality scorer sees what survived
# the filters; dedup sees the top half by quality (kept 10% + REWIRE band 40%); decontamination
# and the per-page assembly see what dedup keeps (FineWeb reports roughly a quarter of a dump's
# documents removed as near-duplicates; 75% kept is assumed here).
STAGE_INPUTS = {
    "documents": PAGES,
    "filtered": PAGES,
    "quality_classifier": KEPT_AFTER_FILTERS,
    "scored": KEPT_AFTER_FILTERS,
    "deduplicated": 0.5 * KEPT_AFTER_FILTERS,
    "decontaminated": 0.75 * 0.5 * KEPT_AFTER_FILTERS,
    "processed": PAGES,
}
PEERS = {
    "datatrove FineWeb example (8,000 tasks x 10 h time limit, an upper bound)": 80_000,
    "cc_net per dump (RedPajama maintainers)": "3,000-4,600",
}


def crawl_files(copies: int) -> list[Path]:
    from dataplatform.sample_data import SAMPLE_CRAWL_ROOT

    files = real_corpus.doc_warcs(parts=4) + real_corpus.pywb_sample_warcs() + sorted(SAMPLE_CRAWL_ROOT.rglob("*.warc.gz"))
    folder = real_corpus.DATA / "cost-crawl" / f"x{copies}"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for copy in range(copies):
        for i, f in enumerate(files):
            link = folder / f"c{copy}-{i:02d}-{Path(f).name}"
            if link.is_symlink() and link.resolve() != Path(f).resolve():
                link.unlink()  # left by a checkout elsewhere (a removed worktree)
            if not link.is_symlink():
                link.symlink_to(Path(f).resolve())
            out.append(link)
    return out


def run_chain(files: list[Path], workers: int, data: Path) -> dict:
    from dataplatform.execution.engines import make_executor
    from dataplatform.io.crawl_sources import CrawlSource
    from dataplatform.io.datasets import DatasetStore
    from dataplatform.io.object_store import LocalLocation
    from dataplatform.sample_data import SAMPLE_BENCHMARKS_DIR
    from dataplatform.stages.process_chain import ProcessOptions, run_process_chain

    root = files[0].parent
    keys = sorted(f.name for f in files)
    store = DatasetStore.local(data)
    driver_cpu = time.process_time()
    start = time.perf_counter()
    with real_corpus.TreeRssSampler() as tree:
        run_process_chain(
            CrawlSource(LocalLocation(str(root))),
            keys,
            store,
            SNAPSHOT,
            make_executor("process", workers),
            ProcessOptions(benchmarks_path=str(SAMPLE_BENCHMARKS_DIR)),
        )
    return {
        "wall_s": time.perf_counter() - start,
        "driver_cpu_s": time.process_time() - driver_cpu,
        "tree_peak_mb": tree.peak_mb,
        "largest_worker_mb": tree.largest_child_mb,
        "driver_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "store": store,
        "rss_samples": tree.samples,
    }


def stage_peaks(store, samples: list[tuple[float, float, float]], start: float) -> dict[str, tuple[float, float]]:
    """Peak (driver MB, largest worker MB) while each stage ran: the chain runs the stages one after
    another, so a stage's window ends at its commit and starts at the previous stage's."""
    import datetime as dt

    from dataplatform import names

    commits = []
    for stage in STAGE_INPUTS:
        partition = names.UNPARTITIONED if stage == "quality_classifier" else SNAPSHOT
        manifest = store.manifest(stage, partition)
        if manifest is not None:
            commits.append((dt.datetime.fromisoformat(manifest["committed_at"]).timestamp(), stage))
    peaks, begin = {}, start
    for end, stage in sorted(commits):
        window = [(d, w) for t, d, w in samples if begin <= t <= end]
        peaks[stage] = (max((d for d, _ in window), default=0.0), max((w for _, w in window), default=0.0))
        begin = end
    return peaks


def stage_rows(store, peaks: dict[str, tuple[float, float]] | None = None) -> list[dict]:
    from dataplatform import names

    peaks = peaks or {}
    rows = []
    for stage in STAGE_INPUTS:
        partition = names.UNPARTITIONED if stage == "quality_classifier" else SNAPSHOT
        manifest = store.manifest(stage, partition)
        if manifest is None:
            continue
        meta = manifest["metadata"]
        out_bytes = sum(t["bytes"] for t in manifest["tables"].values())
        rows.append(
            {
                "stage": stage,
                "rows_in": meta.get("rows_in", 0),
                "cpu_s": meta.get("task_cpu_seconds", 0.0),
                "wall_s": meta.get("wall_seconds", 0.0),
                "bytes_in": meta.get("bytes_in", 0),
                "bytes_out": out_bytes,
                "driver_peak_mb": round(peaks.get(stage, (0.0, 0.0))[0]),
                "worker_peak_mb": round(peaks.get(stage, (0.0, 0.0))[1]),
            }
        )
    return rows


def project(rows: list[dict], measured: dict) -> list[dict]:
    projected = []
    for r in rows:
        rate = r["rows_in"] / r["cpu_s"] if r["cpu_s"] else None
        count = STAGE_INPUTS[r["stage"]]
        projected.append(
            {
                **r,
                "rows_per_cpu_s": round(rate, 1) if rate else None,
                "snapshot_rows": count,
                "cpu_hours": round(count / rate / 3600) if rate else None,
                "storage_tb": round(r["bytes_out"] / max(r["rows_in"], 1) * count / 1e12, 2),
            }
        )
    documents = next((r for r in rows if r["stage"] == "documents"), None)
    if documents and documents["cpu_s"]:
        mb_per_cpu_s = documents["bytes_in"] / 1e6 / documents["cpu_s"]
        measured["documents_mb_per_cpu_s"] = round(mb_per_cpu_s, 2)
        measured["documents_cpu_hours_by_bytes"] = round(WARC_BYTES / 1e6 / mb_per_cpu_s / 3600)
    return projected


def markdown(projected: list[dict], measured: dict, files: int, workers: int) -> str:
    lines = [
        f"machine: {real_corpus.machine()}; {files} WARC files, {workers} workers; wall {measured['wall_s']:.0f} s, "
        f"driver CPU {measured['driver_cpu_s']:.0f} s; peak RSS: largest worker {measured['largest_worker_mb']:.0f} MB, "
        f"driver {measured['driver_mb']:.0f} MB, whole tree {measured['tree_peak_mb']:.0f} MB",
        "",
        "| stage | rows in (measured) | task CPU s | rows / CPU-s | snapshot rows | CPU-hours | output TB | peak MB driver / worker |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in projected:
        lines.append(
            f"| {p['stage']} | {p['rows_in']:,} | {p['cpu_s']:.1f} | {p['rows_per_cpu_s']} | {p['snapshot_rows']:.3g} | "
            f"{p['cpu_hours']:,} | {p['storage_tb']} | {p['driver_peak_mb']} / {p['worker_peak_mb']} |"
        )
    total = sum(p["cpu_hours"] or 0 for p in projected)
    lines += [
        "",
        f"total by rows: **{total:,} CPU-hours** per snapshot (stages above; driver-side work and the "
        f"synthesis stages not included)",
    ]
    if "documents_cpu_hours_by_bytes" in measured:
        lines.append(
            f"documents stage by bytes: {measured['documents_mb_per_cpu_s']} MB of WARC per CPU-second -> "
            f"{measured['documents_cpu_hours_by_bytes']:,} CPU-hours for 100 TB"
        )
    lines += [
        "",
        "peers: "
        + "; ".join(f"{k}: {v:,} CPU-hours" if isinstance(v, int) else f"{k}: {v} core-hours" for k, v in PEERS.items()),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    files = crawl_files(args.copies)
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
        began = time.time()
        measured = run_chain(files, args.workers, Path(tmp))
        store, samples = measured.pop("store"), measured.pop("rss_samples")
        rows = stage_rows(store, stage_peaks(store, samples, began))
    projected = project(rows, measured)
    print(markdown(projected, measured, len(files), args.workers))
    if args.json:
        Path(args.json).write_text(json.dumps({"measured": measured, "stages": projected}, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    main()
