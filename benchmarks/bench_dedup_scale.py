"""Memory and time of the out-of-core dedup stage as input grows, and against more earlier snapshots.

    python benchmarks/bench_dedup_scale.py scale [--base 8000] [--scales 1 4 16 64] [--workers 2] [--check-upto 4]
    python benchmarks/bench_dedup_scale.py cross [--docs 32000] [--priors 0 1 3 5] [--workers 2]
    python benchmarks/bench_dedup_scale.py          # both, with those defaults

Input: synthetic scored-like shards of ~3.5 KB English-like documents (words drawn from a
Zipf-distributed 60k-word vocabulary, ~550 words each), 4,000 documents per shard, written once
under ``benchmarks/_data/dedup_scale/`` (git-ignored). About 9% of the documents are near
copies of an earlier document (1-5% of their words substituted, inserted or deleted), 4% exact
copies (case and punctuation changed), so every phase has real work, with pairs across shards.
Scale k is the first k x base documents of one stream.

``scale``: each scale is one fresh process running ``materialize_deduplicated`` (the stage the
asset runs) with a process pool of ``--workers``; reported: wall and CPU time (self + reaped
children), docs/s, peak RSS of the whole process tree (summed RSS of the driver and its workers,
sampled at 5 Hz) and of the largest single process. For scales up to ``--check-upto`` the kept set
and every ``duplicate_of`` / drop reason are compared with the in-memory reference
``deduplicate()`` (run in its own process; its peak RSS is printed for contrast).

``cross``: five earlier snapshots are deduplicated in turn (each also holding copies of the ones
before), building a bucketed index; then a new snapshot of the same size (with copies of all five)
is deduplicated against an index of 0, 1, 3 and 5 of them (separate stores sharing files by hard
links). Its peak RSS should not depend on how many earlier snapshots there are.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "_data" / "dedup_scale"
SHARD_DOCS = 4000
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))


# --------------------------------------------------------------------------------- synthetic input
@functools.lru_cache(maxsize=1)
def vocab(n: int = 60_000) -> tuple[list[str], np.ndarray]:
    """Words and the cumulative Zipf distribution over them (built on first use: worker processes
    re-import this module and must not pay for it)."""
    rng = np.random.default_rng(7)
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    p = 1 / np.arange(1, 27) ** 1.1
    words = sorted({"".join(rng.choice(letters, rng.integers(2, 11), p=p / p.sum())) for _ in range(n * 2)})[:n]
    freq = 1 / np.arange(1, len(words) + 1) ** 1.05
    return words, np.cumsum(freq / freq.sum())


def base_text(stream: int, i: int) -> str:
    vocabulary, cdf = vocab()
    rng = np.random.default_rng((stream, i))
    idx = np.minimum(np.searchsorted(cdf, rng.random(int(rng.integers(350, 750)))), len(vocabulary) - 1)
    words = [vocabulary[k] for k in idx]
    for pos in range(0, len(words), int(rng.integers(12, 25))):  # sentences
        words[pos] = words[pos].capitalize()
        if pos:
            words[pos - 1] += "."
    return " ".join(words) + "."


def edited(text: str, rate: float, rng: np.random.Generator) -> str:
    words = vocab()[0]
    out = []
    for w in text.split():
        r = rng.random()
        if r < rate / 3:
            out.append(words[rng.integers(len(words))])
        elif r < 2 * rate / 3:
            out += [words[rng.integers(len(words))], w]
        elif r >= rate:
            out.append(w)
    return " ".join(out)


def document(stream: int, i: int, copy_from: tuple[tuple[int, int], ...] = ()) -> tuple[str, str]:
    """(kind, text) of document ``i`` of ``stream``; ``copy_from`` ((stream, n), ...) lets near
    copies come from the first ``n`` documents of other streams (earlier snapshots) too."""
    rng = np.random.default_rng((stream, i, 1))
    r = rng.random()
    if i > 100 and r < 0.09:
        sources = ((stream, i),) + tuple(copy_from)
        src_stream, src_n = sources[int(rng.integers(len(sources)))]
        return "near", edited(base_text(src_stream, int(rng.integers(src_n))), rng.uniform(0.01, 0.05), rng)
    if i > 100 and r < 0.13:
        return "exact", base_text(stream, int(rng.integers(i))).upper().replace(". ", " ... ")
    return "fresh", base_text(stream, i)


def write_shards(stream: int, snapshot: str, n_docs: int, copy_from: tuple[tuple[int, int], ...] = ()) -> Path:
    """Cached scored-like shards of ``n_docs`` documents of ``stream``."""
    import polars as pl
    import pyarrow.parquet as pq

    from dataplatform.core.schemas import SCORED, conform

    folder = DATA / f"stream-{stream}-{snapshot}"
    folder.mkdir(parents=True, exist_ok=True)
    for shard in range(-(-n_docs // SHARD_DOCS)):
        path = folder / f"shard-{shard:05d}.parquet"
        if path.exists():
            continue
        lo, hi = shard * SHARD_DOCS, min((shard + 1) * SHARD_DOCS, n_docs)
        kinds, texts = zip(*(document(stream, i, copy_from) for i in range(lo, hi)))
        ids = [f"s{stream}-{i:08d}" for i in range(lo, hi)]
        frame = pl.DataFrame(
            {
                "doc_id": ids,
                "url": [f"https://example.org/{d}" for d in ids],
                "snapshot": snapshot,
                "warc_record_id": ids,
                "warc_file": f"shard-{shard:05d}",
                "text": list(texts),
                "n_chars": [len(t) for t in texts],
                "title": list(kinds),
                "quality_label": ["high_quality" if i % 10 == 0 else "rewrite_candidate" for i in range(lo, hi)],
                "quality_score": np.linspace(0, 1, hi - lo, dtype=np.float32),
            }
        )
        tmp = path.with_suffix(".tmp")
        pq.write_table(conform(frame.to_arrow(), SCORED), tmp, compression="zstd")
        tmp.rename(path)
    return folder


def commit_scored(store_root: Path, snapshot: str, shard_folder: Path, n_docs: int) -> None:
    """``scored/<snapshot>`` made of the first shards of ``shard_folder`` (hard links), through the
    partition writer; even shards are the ``data`` table, odd ones ``rewrite_candidates``."""
    import hashlib

    import pyarrow.parquet as pq

    from dataplatform.core.schemas import SCORED
    from dataplatform.io.datasets import DatasetStore, ShardInfo

    store = DatasetStore.local(store_root)
    files = sorted(shard_folder.glob("shard-*.parquet"))[: -(-n_docs // SHARD_DOCS)]
    with store.write_partition("scored", snapshot) as writer:
        for table in ("data", "rewrite_candidates"):
            writer.declare_table(table, SCORED)
        for i, path in enumerate(files):
            table = "data" if i % 2 == 0 else "rewrite_candidates"
            key = writer.shard_key(i // 2, table)
            target = store_root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            writer.add(
                ShardInfo(
                    table, key[len(writer.prefix) + 1 :], pq.ParquetFile(path).metadata.num_rows, path.stat().st_size, digest
                )
            )
        writer.commit({})


# --------------------------------------------------------------------------------- measured runs
def run_stage(store_root: str, snapshot: str, workers: int) -> dict:
    """In this (fresh) process: the dedup stage with a process pool, timed and RSS-sampled."""
    from real_corpus import TreeRssSampler

    from dataplatform.execution.engines import make_executor
    from dataplatform.io.datasets import DatasetStore
    from dataplatform.stages.dedup import materialize_deduplicated

    class Recording(TreeRssSampler):
        """Also keeps (time, tree MB, driver MB, largest worker MB) samples."""

        samples: list[tuple[float, float, float, float]] = []

        def _run(self) -> None:
            root = os.getpid()
            page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
            while not self._stop.is_set():
                per = {}
                for pid in [root, *(self._children(root) or [])]:
                    try:
                        with open(f"/proc/{pid}/statm") as f:
                            per[pid] = int(f.read().split()[1]) * page_mb
                    except OSError:
                        continue
                tree = sum(per.values())
                self.peak_mb = max(self.peak_mb, tree)
                workers = [mb for pid, mb in per.items() if pid != root]
                self.samples.append((time.perf_counter(), tree, per.get(root, 0.0), max(workers, default=0.0)))
                self._stop.wait(self.interval)

    store = DatasetStore.local(store_root)
    t0, c0 = time.perf_counter(), os.times()
    with Recording() as rss:
        report, index = materialize_deduplicated(store, snapshot, make_executor("process", workers))
    c1 = os.times()
    # peak of the process tree during each phase (phases run one after the other)
    phase_peak, start = {}, t0 + 0.0
    for name, seconds in report.extra["phase_seconds"].items():
        inside = [x for x in rss.samples if start <= x[0] <= start + seconds]
        phase_peak[name] = [round(max((x[i] for x in inside), default=0)) for i in (1, 2, 3)]
        start += seconds
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": (c1.user + c1.system + c1.children_user + c1.children_system)
        - (c0.user + c0.system + c0.children_user + c0.children_system),
        "tree_peak_mb": rss.peak_mb,
        "self_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "child_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "rows_in": report.rows_in,
        "drop_counts": report.drop_counts,
        "extra": {
            k: report.extra[k]
            for k in (
                "bucket_partitions",
                "candidate_pairs",
                "verified_pairs",
                "cross_snapshot_duplicates",
                "prior_index_files_read",
                "prior_index_rows_matched",
                "phase_seconds",
            )
        },
        "index_rows": index["rows"],
        "phase_peak_mb": phase_peak,
    }


def run_reference(store_root: str, snapshot: str) -> dict:
    """In this (fresh) process: the in-memory reference on the same rows, compared with the stage's output."""
    import polars as pl

    from dataplatform.core.dedup import deduplicate
    from dataplatform.io.datasets import DatasetStore

    store = DatasetStore.local(store_root)
    frame = pl.concat([f for f in (store.read_frame("scored", snapshot, t) for t in ("data", "rewrite_candidates")) if f.width])
    t0 = time.perf_counter()
    ref = deduplicate(frame).frame.select("doc_id", "drop_reason", "duplicate_of")
    seconds = time.perf_counter() - t0
    got = pl.concat(
        [
            f
            for f in (
                store.read_frame("deduplicated", snapshot, t, ["doc_id", "drop_reason", "duplicate_of"])
                for t in ("data", "rewrite_pool", "dropped")
            )
            if f.width
        ]
    )
    same = got.sort("doc_id").equals(ref.sort("doc_id"))
    return {
        "same_result": same,
        "reference_s": seconds,
        "kept": int(ref["drop_reason"].is_null().sum()),
        "reference_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def in_child(kind: str, *args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps([kind, *args])], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-4000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh_store(name: str) -> Path:
    root = DATA / "stores" / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


def header(title: str) -> None:
    from real_corpus import machine

    print(f"# {title} — {machine()} — {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# command: python benchmarks/bench_dedup_scale.py {' '.join(sys.argv[1:])}")
    print(f"# load average at start: {os.getloadavg()[0]:.1f} (shared machine)")


def scale_main(args) -> None:
    header("dedup stage scaling")
    snapshot = "CC-MAIN-2026-05"
    shards = write_shards(1, snapshot, max(args.scales) * args.base)
    rows = []
    print(
        "| scale | docs | shards | partitions | wall s | cpu s | docs/s | tree peak MB | largest process MB "
        "| exact / near dups | = in-memory | in-memory peak MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
    for k in args.scales:
        n = k * args.base
        root = fresh_store(f"scale-{k}")
        commit_scored(root, snapshot, shards, n)
        r = in_child("stage", str(root), snapshot, args.workers)
        check = in_child("reference", str(root), snapshot) if k <= args.check_upto else None
        d = r["drop_counts"]
        rows.append((k, r))
        same = ("yes" if check["same_result"] else "NO") if check else "-"
        ref_mb = f"{check['reference_peak_mb']:.0f}" if check else "-"
        print(
            f"| {k}x | {r['rows_in']} | {-(-n // SHARD_DOCS)} | {r['extra']['bucket_partitions']} | {r['wall_s']:.1f} "
            f"| {r['cpu_s']:.1f} | {r['rows_in'] / r['wall_s']:.0f} | {r['tree_peak_mb']:.0f} "
            f"| {max(r['self_peak_mb'], r['child_peak_mb']):.0f} | {d.get('duplicate:exact', 0)} / {d.get('duplicate:minhash', 0)} "
            f"| {same} | {ref_mb} |",
            flush=True,
        )
        print(
            f"#   phases (s): {r['extra']['phase_seconds']}; peak MB per phase [tree, driver, largest worker]: "
            f"{r['phase_peak_mb']}",
            flush=True,
        )
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    (k0, r0), (k1, r1) = rows[0], rows[-1]
    print(
        f"\nRSS ratio {k1}x / {k0}x: {r1['tree_peak_mb'] / r0['tree_peak_mb']:.2f} (process tree), "
        f"{max(r1['self_peak_mb'], r1['child_peak_mb']) / max(r0['self_peak_mb'], r0['child_peak_mb']):.2f} (largest process); "
        f"time ratio {r1['wall_s'] / r0['wall_s']:.1f} for {k1 / k0:.0f}x the input "
        f"(per-document time {r1['wall_s'] / r1['rows_in'] / (r0['wall_s'] / r0['rows_in']):.2f}x)"
    )


def cross_main(args) -> None:
    header("dedup stage against earlier snapshots")
    priors = [f"CC-MAIN-2025-{w:02d}" for w in (5, 13, 21, 30, 38)]
    new = "CC-MAIN-2026-05"
    built = DATA / "stores" / "cross-priors"
    if not (built / "dedup_signature_index" / priors[-1] / "_manifest.json").exists():
        shutil.rmtree(built, ignore_errors=True)
        for s, snapshot in enumerate(priors):
            earlier = tuple((10 + e, args.docs) for e in range(s))
            commit_scored(built, snapshot, write_shards(10 + s, snapshot, args.docs, earlier), args.docs)
            r = in_child("stage", str(built), snapshot, args.workers)
            print(f"# built {snapshot}: {r['rows_in']} docs, {r['drop_counts']}, {r['wall_s']:.0f} s", flush=True)
    new_shards = write_shards(20, new, args.docs, tuple((10 + e, args.docs) for e in range(len(priors))))
    print(
        "| earlier snapshots in the index | wall s | tree peak MB | largest process MB | index parts read | index rows matched "
        "| cross-snapshot duplicates |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for k in args.priors:
        root = fresh_store(f"cross-{k}")
        for snapshot in priors[:k]:  # the index segments of the first k earlier snapshots, hard-linked
            shutil.copytree(
                built / "dedup_signature_index" / snapshot, root / "dedup_signature_index" / snapshot, copy_function=os.link
            )
        commit_scored(root, new, new_shards, args.docs)
        r = in_child("stage", str(root), new, args.workers)
        e = r["extra"]
        print(
            f"| {k} | {r['wall_s']:.1f} | {r['tree_peak_mb']:.0f} | {max(r['self_peak_mb'], r['child_peak_mb']):.0f} "
            f"| {e['prior_index_files_read']} | {e['prior_index_rows_matched']} | {e['cross_snapshot_duplicates']} |",
            flush=True,
        )
        print(
            f"#   phases (s): {e['phase_seconds']}; peak MB per phase [tree, driver, largest worker]: {r['phase_peak_mb']}",
            flush=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, *rest = json.loads(sys.argv[2])
        out = run_stage(*rest) if kind == "stage" else run_reference(*rest)
        print(json.dumps(out, default=str))
        return
    if len(sys.argv) == 1:  # run_all.py runs a benchmark without arguments: both parts
        for mode in ("scale", "cross"):
            subprocess.run([sys.executable, __file__, mode], check=True)
        return
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("scale")
    s.add_argument("--base", type=int, default=8000, help="documents at 1x")
    s.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16, 64])
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--check-upto", type=int, default=4, help="compare with the in-memory reference up to this scale")
    s.add_argument("--keep", action="store_true", help="keep the stores")
    c = sub.add_parser("cross")
    c.add_argument("--docs", type=int, default=32000, help="documents per snapshot")
    c.add_argument("--priors", type=int, nargs="+", default=[0, 1, 3, 5])
    c.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    scale_main(args) if args.mode == "scale" else cross_main(args)


if __name__ == "__main__":
    main()
