"""Peak RSS of `training_mix` as its candidates grow (issue 12: the mix is sharded like every other
step, so neither its driver nor a worker grows with the number of candidates).

    python benchmarks/bench_mix_memory.py [--docs 10000 40000 160000 640000] [--workers 2] [--range-rows 50000]

Each size: one interpreter writes an `eval_splits` partition whose train split holds N synthetic
~3.5 KB English-like documents (bench_dedup_scale's generator) in shards of 5,000 and the bundled
benchmark n-gram index; a fresh one runs `materialize_training_mix` on a process pool with curated
raw text only and a `total_tokens` of about a fifth of the candidates' tokens (a cut inside a range).
Printed per size: wall time, docs/s, peak RSS of the driver, of the largest worker and of the whole
process tree (sampled from /proc), and the marginal tree RSS per added candidate.
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
import real_corpus  # noqa: E402

SHARD_DOCS = 5_000


def make_store(root: str, n_docs: int) -> None:
    """The inputs, written in their own process so the measured one starts clean."""
    import polars as pl
    from bench_dedup_scale import base_text

    from dataplatform import names
    from dataplatform.io.datasets import DatasetStore
    from dataplatform.sample_data import SAMPLE_BENCHMARKS_DIR
    from dataplatform.stages.decontamination import materialize_eval_benchmarks
    from dataplatform.stages.mix import SPLIT_SCHEMA

    store = DatasetStore.local(root)
    materialize_eval_benchmarks(store, str(SAMPLE_BENCHMARKS_DIR))
    with store.write_partition(names.EVAL_SPLITS, names.UNPARTITIONED) as writer:
        for index, start in enumerate(range(0, n_docs, SHARD_DOCS)):
            ids = range(start, min(n_docs, start + SHARD_DOCS))
            frame = pl.DataFrame(
                {
                    "doc_id": [f"doc-{i:08d}" for i in ids],
                    "snapshot": "CC-BENCH-2026-01",
                    "url": [f"https://example.org/{i}" for i in ids],
                    "text": [base_text(0, i) for i in ids],
                    "split": "train",
                }
            )
            writer.write_table("train", frame.to_arrow().cast(SPLIT_SCHEMA), index)
        for split in ("validation", "test"):  # one held-out document each
            held_out = {"doc_id": f"{split}-0", "snapshot": "CC-BENCH-2026-01", "url": "-", "text": "held out", "split": split}
            writer.write_table(split, pl.DataFrame([held_out]).to_arrow().cast(SPLIT_SCHEMA))
        writer.commit({})


def run_one(root: str, n_docs: int, workers: int, range_rows: int) -> dict:
    from dataplatform import names
    from dataplatform.execution.engines import make_executor
    from dataplatform.io.datasets import DatasetStore
    from dataplatform.stages.mix import MixOptions, materialize_training_mix

    store = DatasetStore.local(root)
    chars = store.table_bytes(names.EVAL_SPLITS, names.UNPARTITIONED, "train")
    target = chars // 8  # ~1/5 of the tokens (~1.5 characters per token with the sample tokenizer): a cut inside a range
    options = MixOptions(proportions=(("curated_raw", 1.0),), total_tokens=target, range_rows=range_rows)
    start = time.perf_counter()
    with real_corpus.TreeRssSampler() as tree:
        report = materialize_training_mix(store, options, make_executor("process", workers))
    return {
        "docs": n_docs,
        "parquet_mb": chars / 1e6,
        "wall_s": time.perf_counter() - start,
        "driver_mb": max((d for _, d, _ in tree.samples), default=0.0),
        "largest_worker_mb": tree.largest_child_mb,
        "tree_mb": tree.peak_mb,
        "rows_out": report.rows_out,
        "tokens": report.extra["tokens"],
        "target_tokens": target,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 40_000, 160_000, 640_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--range-rows", type=int, default=50_000)
    parser.add_argument("--make", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        return make_store(args.make[0], int(args.make[1]))
    if args.child:
        print(json.dumps(run_one(args.child[0], int(args.child[1]), args.workers, args.range_rows)))
        return
    print(f"### training_mix memory — {real_corpus.machine()}; load average at start {os.getloadavg()[0]:.1f}")
    print(
        f"### command: python benchmarks/bench_mix_memory.py --docs {' '.join(map(str, args.docs))} "
        f"--workers {args.workers} --range-rows {args.range_rows}"
    )
    print()
    print(
        "| candidates | train split MB | wall s | docs/s | driver MB | largest worker MB | tree MB | tree KB per added candidate |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for n in args.docs:
        with tempfile.TemporaryDirectory(prefix="bench-mix-") as root:
            subprocess.run([sys.executable, __file__, "--make", root, str(n)], check=True)
            cmd = [
                sys.executable,
                __file__,
                "--child",
                root,
                str(n),
                "--workers",
                str(args.workers),
                "--range-rows",
                str(args.range_rows),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        assert abs(r["tokens"] - r["target_tokens"]) <= 0.01 * r["target_tokens"], r  # within about one document
        marginal = f"{(r['tree_mb'] - rows[-1]['tree_mb']) * 1024 / (n - rows[-1]['docs']):.2f}" if rows else "-"
        print(
            f"| {n:,} | {r['parquet_mb']:.0f} | {r['wall_s']:.1f} | {n / r['wall_s']:,.0f} | {r['driver_mb']:.0f} | "
            f"{r['largest_worker_mb']:.0f} | {r['tree_mb']:.0f} | {marginal} |",
            flush=True,
        )
        rows.append(r)
    first, last = rows[0], rows[-1]
    for what in ("driver_mb", "largest_worker_mb"):
        if not first[what]:  # one candidate task runs in the driver: no worker at the smallest size
            continue
        ratio = last[what] / first[what]
        print(
            f"goal: {what} at {last['docs']:,} <= 1.3 x at {first['docs']:,}: {ratio:.2f}x — {'PASS' if ratio <= 1.3 else 'FAIL'}"
        )


if __name__ == "__main__":
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    main()
