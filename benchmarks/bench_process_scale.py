"""`dataplatform process` at 1x / 4x / 16x / 64x input: the driver's peak RSS stays flat and wall time
grows linearly (issue 12: nothing gathers a snapshot in one process).

    python benchmarks/bench_process_scale.py [--scales 1 4 16 64] [--workers 2]

Each scale runs ``bench_snapshot_cost.py --copies k`` in a fresh interpreter (``ru_maxrss`` is a
lifetime peak, so one process per scale): the whole CPU chain (documents -> filtered -> quality
classifier -> scored -> deduplicated -> decontaminated -> processed) on real pages (Debian docs and
pywb's sample WARCs, fetched at run time, plus the bundled sample crawl), every file listed k times.
Printed per scale: pages read, wall time, pages/s, peak RSS of the driver, of the largest worker and
of the whole process tree; goals: driver and tree RSS(64x) <= 1.3 x RSS(1x), time per page within 1.2x.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_corpus  # noqa: E402

HERE = Path(__file__).resolve().parent


def run_scale(copies: int, workers: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, str(HERE / "bench_snapshot_cost.py"), "--copies", str(copies), "--workers", str(workers)]
        subprocess.run([*cmd, "--json", out.name], check=True, stdout=subprocess.DEVNULL)
        result = json.loads(Path(out.name).read_text())
    pages = next(s["rows_in"] for s in result["stages"] if s["stage"] == "documents")
    peaks = {s["stage"]: (s["driver_peak_mb"], s["worker_peak_mb"]) for s in result["stages"]}
    return {"copies": copies, "pages": pages, "stage_peaks": peaks, **result["measured"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"### process scale — {real_corpus.machine()}; load average at start {os.getloadavg()[0]:.1f}")
    print(
        f"### command: python benchmarks/bench_process_scale.py --scales {' '.join(map(str, args.scales))} --workers {args.workers}"
    )
    print()
    print("| scale | pages | wall s | pages/s | driver RSS MB | largest worker MB | tree peak MB | s per page / 1x |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for k in args.scales:
        r = run_scale(k, args.workers)
        rows.append(r)
        per_page = (r["wall_s"] / r["pages"]) / (rows[0]["wall_s"] / rows[0]["pages"])
        print(
            f"| {k}x | {r['pages']:,} | {r['wall_s']:.1f} | {r['pages'] / r['wall_s']:.0f} | {r['driver_mb']:.0f} | "
            f"{r['largest_worker_mb']:.0f} | {r['tree_peak_mb']:.0f} | {per_page:.2f} |",
            flush=True,
        )
    print()
    print("peak RSS while each stage ran, driver / largest worker MB:")
    print()
    print("| stage | " + " | ".join(f"{r['copies']}x" for r in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for stage in rows[0]["stage_peaks"]:
        print(f"| {stage} | " + " | ".join("%d / %d" % r["stage_peaks"].get(stage, (0, 0)) for r in rows) + " |")
    print()
    first, last = rows[0], rows[-1]
    for what in ("driver_mb", "tree_peak_mb"):
        ratio = last[what] / first[what]
        print(
            f"goal: {what} at {last['copies']}x <= 1.3 x {first['copies']}x: {ratio:.2f}x — {'PASS' if ratio <= 1.3 else 'FAIL'}"
        )
    slope = (last["wall_s"] / last["pages"]) / (first["wall_s"] / first["pages"])
    print(
        f"goal: time per page at {last['copies']}x within 1.2x of {first['copies']}x: {slope:.2f}x — {'PASS' if slope <= 1.2 else 'FAIL'}"
    )


if __name__ == "__main__":
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    main()
