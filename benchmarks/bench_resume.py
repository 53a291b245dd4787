"""Resume inside a partition: kill -9 a stage at ~70% of its shards, re-run it, compare with a fresh run.

    python benchmarks/bench_resume.py [--workers 2] [--copies 3] [--kill-at 0.7]

Input (fetched at run time, cached under benchmarks/_data/, git-ignored): Debian's python3.11-doc and
postgresql-doc-15 HTML pages wrapped into 8 WARC files plus the pywb 2.10.0 sample WARCs
(``real_corpus``), each listed ``--copies`` times (symlinks), so a stage has ~30 shard tasks.

For each of the ``documents`` (WARC -> text, fused with raw_pages as ``dataplatform process`` does)
and ``filtered`` stages: a fresh run is timed in a subprocess; then a second run is killed (SIGKILL)
once ``kill-at`` of its shard completion records exist, and the re-run of that stage is timed. Goal:
re-run time <= 40% of the fresh run, and the committed shards' sha256s identical to the fresh run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_corpus  # noqa: E402

SNAPSHOT = "CC-BENCH-RESUME"
STAGE = r"""
import json, sys, time
from pathlib import Path
from dataplatform.execution.engines import make_executor
from dataplatform.io.crawl_sources import CrawlSource
from dataplatform.io.datasets import DatasetStore
from dataplatform.io.object_store import LocalLocation
from dataplatform.stages.filtering import materialize_filtered
from dataplatform.stages.ingest import materialize_documents_from_warcs
data, crawl, stage, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
keys = sorted(p.relative_to(crawl).as_posix() for p in Path(crawl).rglob("*.warc.gz"))
store, executor = DatasetStore.local(data), make_executor("process", workers)
start = time.perf_counter()
if stage == "documents":
    report = materialize_documents_from_warcs(CrawlSource(LocalLocation(crawl)), keys, store, "%s", executor)
else:
    report = materialize_filtered(store, "%s", executor)
print(json.dumps({"seconds": time.perf_counter() - start, "shards": report.shards, "resumed": report.tasks_resumed,
                  "rows": report.rows_in}))
""" % (SNAPSHOT, SNAPSHOT)


def run_stage(data: Path, crawl: Path, stage: str, workers: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", STAGE, str(data), str(crawl), stage, str(workers)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def kill_at(data: Path, crawl: Path, stage: str, workers: int, fraction: float, shards: int) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-c", STAGE, str(data), str(crawl), stage, str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = max(1, int(round(fraction * shards)))
    partition = data / stage / SNAPSHOT
    while proc.poll() is None:
        done = len(list(partition.glob("v*/_progress/*/*.json")))
        if done >= target:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return done
        time.sleep(0.01)
    raise RuntimeError(f"{stage} finished before {target} of {shards} shards were recorded")


def shard_hashes(data: Path, stage: str) -> dict:
    from dataplatform.io.datasets import DatasetStore

    store = DatasetStore.local(data)
    manifest = store.require_manifest(stage, SNAPSHOT)
    return {t: [s.sha256 for s in store.shards(stage, SNAPSHOT, t, manifest)] for t in sorted(manifest["tables"])}


def crawl_folder(copies: int) -> Path:
    files = real_corpus.doc_warcs(parts=4) + real_corpus.pywb_sample_warcs()
    folder = real_corpus.DATA / "resume-crawl" / f"x{copies}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for copy in range(copies):
        for i, f in enumerate(files):
            (folder / f"c{copy}-{i:02d}-{Path(f).name}").symlink_to(Path(f).resolve())
    return folder


def bench_stage(stage: str, crawl: Path, base: Path, workers: int, fraction: float) -> dict:
    fresh_root = base / f"fresh-{stage}"
    if stage == "filtered":  # documents committed first, identically in both runs
        run_stage(fresh_root, crawl, "documents", workers)
    fresh = run_stage(fresh_root, crawl, stage, workers)
    killed_root = base / f"killed-{stage}"
    if stage == "filtered":
        shutil.copytree(fresh_root / "documents", killed_root / "documents")
    recorded = kill_at(killed_root, crawl, stage, workers, fraction, fresh["shards"])
    rerun = run_stage(killed_root, crawl, stage, workers)
    same = shard_hashes(fresh_root, stage) == shard_hashes(killed_root, stage)
    return {
        "stage": stage,
        "shards": fresh["shards"],
        "rows": fresh["rows"],
        "fresh_s": round(fresh["seconds"], 2),
        "killed_after_records": recorded,
        "rerun_resumed": rerun["resumed"],
        "rerun_s": round(rerun["seconds"], 2),
        "rerun_over_fresh": round(rerun["seconds"] / fresh["seconds"], 3),
        "identical_sha256": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--kill-at", type=float, default=0.7)
    args = parser.parse_args()
    crawl = crawl_folder(args.copies)
    print(f"machine: {real_corpus.machine()}; {len(list(crawl.iterdir()))} WARC files, {args.workers} workers")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as tmp:
        for stage in ("documents", "filtered"):
            result = bench_stage(stage, crawl, Path(tmp), args.workers, args.kill_at)
            results.append(result)
            print(json.dumps(result))
    ok = all(r["identical_sha256"] and r["rerun_over_fresh"] <= 0.4 for r in results)
    print(f"goal (re-run <= 40% of fresh, identical sha256s): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
