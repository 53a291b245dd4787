"""Run every benchmark and collect their output into one report.

    python benchmarks/run_all.py [--quick] [--gpu] [--only NAME ...] [--output benchmarks/RESULTS.md]

Each ``benchmarks/bench_*.py`` runs in its own subprocess (one after the other, so they do not
compete for cores) with the arguments below; its stdout becomes one section of the report, with the
exact command and how long it took. ``bench_vllm_overhead.py`` needs a GPU and runs only with
``--gpu``. A benchmark that fails gets its exit status and the tail of its stderr in the report and the
others still run; the exit status of ``run_all`` is non-zero when any failed. The report is rewritten
after every benchmark, so an interrupted run keeps what finished.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import real_corpus  # noqa: E402

# name -> (arguments, arguments with --quick). Names are bench_<name>.py.
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "ingest": (["--workers", "2", "--pages", "3000"], ["--workers", "2", "--pages", "500"]),
    "heuristic_filters": (["--repeat", "3"], ["--repeat", "1", "--limit", "1000"]),
    "dedup": ([], []),
    "quality_scoring": ([], ["--repeat", "5", "--runs", "2", "--rounds", "1"]),
    "pipeline_vs_datatrove": (["--runs", "2"], ["--quick"]),
    "scaling": (["--runs", "2"], ["--quick"]),
    "vllm_overhead": (["--runs", "3"], ["--n-docs", "64", "--runs", "1"]),
    "toxicity_color": (
        ["--runs", "2", "--hf-docs", "8"],
        ["--runs", "1", "--docs", "100", "--hf-docs", "2", "--color-docs", "4", "--color-tokens", "64"],
    ),
}
GPU_ONLY = {"vllm_overhead"}


def write_report(path: Path, header: list[str], sections: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(header + sections) + "\n")
    tmp.replace(path)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller inputs and fewer runs for every benchmark")
    ap.add_argument("--gpu", action="store_true", help="also run the GPU benchmarks (bench_vllm_overhead.py)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these: {', '.join(BENCHES)}")
    ap.add_argument("--output", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per benchmark")
    args = ap.parse_args()

    found = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    unknown = [n for n in found if n not in BENCHES]
    names = [n for n in BENCHES if n in found] + unknown  # a new bench runs with no arguments
    if args.only:
        missing = sorted(set(args.only) - set(names))
        if missing:
            ap.error(f"unknown benchmark(s) {missing}; known: {names}")
        names = [n for n in names if n in args.only]
    if not args.gpu:
        names = [n for n in names if n not in GPU_ONLY]

    command = "python benchmarks/run_all.py " + " ".join(sys.argv[1:])
    header = [
        "# Benchmark results",
        "",
        f"- machine: {real_corpus.machine()}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- command: `{command.strip()}`",
        f"- benchmarks: {', '.join(names)}" + ("" if args.gpu else " (GPU benchmarks skipped: pass `--gpu`)"),
        "",
        "Each section is one benchmark's stdout, run in its own process from the repository root.",
        "",
    ]
    output = Path(args.output)
    sections: list[str] = []
    failed = []
    for name in names:
        full, quick = BENCHES.get(name, ([], []))
        bench_args = quick if args.quick else full
        cmd = [sys.executable, f"benchmarks/bench_{name}.py", *bench_args]
        shown = " ".join(["python", *cmd[1:]])
        print(f"== {name}: {shown}", flush=True)
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc = "timeout"
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            err = f"killed after {args.timeout:.0f} s"
        seconds = time.perf_counter() - start
        status = "ok" if rc == 0 else f"FAILED (exit {rc})"
        if rc != 0:
            failed.append(name)
        print(f"   {status} in {seconds:.0f} s", flush=True)
        section = [f"## {name}", "", f"command: `{shown}` — {status}, {seconds:.0f} s", "", out.rstrip() or "(no output)", ""]
        if rc != 0:
            section += ["stderr (tail):", "", "```", err[-4000:].rstrip(), "```", ""]
        sections.append("\n".join(section))
        write_report(output, header, sections)
    print(f"wrote {output}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
