"""Whole CPU front of the pipeline, ours vs datatrove, on the same real WARC input and the same cores.

    python benchmarks/bench_pipeline_vs_datatrove.py [--workers 1 2] [--runs 2] [--parts 1] [--quick]

Input (fetched at run time, cached under benchmarks/_data/, git-ignored): the HTML pages of Debian's
python3.11-doc and postgresql-doc-15 wrapped into 4 WARC files each (``real_corpus.doc_warcs``), plus
the real crawl WARCs of the pywb 2.10.0 sdist.

* ours: ``materialize_documents_from_warcs`` (fastwarc read, resiliparse extraction, fastText lid.176
  language ID) then ``materialize_filtered`` (English routing, Gopher repetition + quality, C4,
  FineWeb, PII redaction) on a local DatasetStore, ``make_executor("process"|"inline", N)``.
* datatrove 0.10.1: ``WarcReader`` -> extractor -> ``LanguageFilter(["en"])`` ->
  ``GopherRepetitionFilter`` -> ``GopherQualityFilter`` -> ``C4QualityFilter`` ->
  ``FineWebQualityFilter`` -> ``JsonlWriter``, ``LocalPipelineExecutor(tasks=N, workers=N,
  start_method="fork")`` (fork, so that the workers' CPU time is counted; see below).
  Extractors: ``Trafilatura(favour_precision=True)`` (the FineWeb recipe) and, to isolate framework
  and filter cost from extractor cost, a 5-line ``BaseExtractor`` subclass calling resiliparse exactly
  as we do (datatrove 0.10.1 ships no resiliparse extractor). datatrove's only other built-in
  extractor, ``ReadabilityInscriptis``, needs huggingface's fork of readability-lxml, installable only
  from GitHub (not on PyPI), so it is not run.

Offline: datatrove's LanguageFilter wants to download ``lid.176.bin`` (126 MB) into the
huggingface_hub assets cache. Each datatrove child points ``HF_ASSETS_CACHE`` at a private folder
where the file datatrove expects is a symlink to the ``lid.176.ftz`` we use
(``default_language_model_path()``) with datatrove's ``.completed`` marker next to it, so both systems
run the same fastText model and nothing is downloaded.

docs/s uses one denominator for every system: the WARC ``response`` records of the input. Each run is
a fresh subprocess; wall time, CPU time (user+sys of the process and all reaped children), peak RSS of
the largest process (ru_maxrss) and peak RSS of the whole process tree (summed, sampled at 5 Hz) are
its own. Runs alternate between systems so that background load hits all of them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_corpus  # noqa: E402

LID_URL = "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin"
SYSTEMS = ("ours", "datatrove-trafilatura", "datatrove-resiliparse")
# pywb sample WARCs whose records have a Content-Length that does not match: warcio (datatrove's
# WarcReader) raises ArchiveLoadFailed and the whole datatrove task fails; fastwarc reads them and we
# quarantine the bad records. Left out of the input of *both* systems so that they see the same bytes.
DATATROVE_UNREADABLE = {"example-url-agnostic-orig.warc.gz", "example-url-agnostic-revisit.warc.gz"}


# ----------------------------------------------------------------------------------- children
def run_ours(files: list[str], workers: int) -> dict:
    r = real_corpus.run_ingest_filter_chain(files, workers)
    return {
        "seconds": r["seconds"],
        "cpu_s": r["cpu_s"],
        "tree_rss_mb": r["tree_rss_mb"],
        "peak_rss_mb": max(r["rss_self_mb"], r["rss_children_mb"]),
        "read": r["records"],
        "extracted": r["extracted"],
        "kept": r["kept"],
    }


def _offline_lid(folder: Path) -> None:
    """Put our lid.176.ftz where datatrove's FT176LID looks for lid.176.bin (no download)."""
    from datatrove.io import strip_protocol
    from huggingface_hub import cached_assets_path

    from dataplatform.core.language_id import default_language_model_path

    target = Path(cached_assets_path(library_name="datatrove", namespace="lid", subfolder="ft176", assets_dir=folder))
    target = target / strip_protocol(LID_URL).replace("/", "_")
    if not target.exists():
        target.symlink_to(default_language_model_path())
    Path(f"{target}.completed").touch()


def run_datatrove(files: list[str], workers: int, extractor_name: str) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-dt-"))
    os.environ["HF_ASSETS_CACHE"] = str(work / "assets")  # before huggingface_hub is imported
    _offline_lid(work / "assets")

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.extractors.base import BaseExtractor
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.logging import logger

    logger.remove()  # datatrove logs every step to stderr; the figures come from its stats

    class ResiliparseExtractor(BaseExtractor):
        name = "resiliparse"

        def __init__(self, timeout: float = 1):
            super().__init__(timeout)

        def extract(self, text: str) -> str:
            from resiliparse.extract.html2text import extract_plain_text

            return extract_plain_text(text, main_content=True)

    extractor = {"trafilatura": lambda: Trafilatura(favour_precision=True), "resiliparse": lambda: ResiliparseExtractor()}[
        extractor_name
    ]()
    inputs = work / "in"
    inputs.mkdir()
    for i, f in enumerate(files):  # one folder, unique names; datatrove gives task r files r, r+N, ...
        (inputs / f"{i:03d}-{Path(f).name}").symlink_to(Path(f).resolve())
    pipeline = [
        WarcReader(str(inputs), glob_pattern="*.warc.gz"),
        extractor,
        LanguageFilter(languages=["en"]),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(),  # our defaults are the paper's; same settings as bench_heuristic_filters.py
        FineWebQualityFilter(char_duplicates_ratio=0.1),
        JsonlWriter(str(work / "out")),
    ]
    # start_method="fork" (default "forkserver"): forkserver's workers are children of the fork server, so
    # their CPU time would never reach this process's RUSAGE_CHILDREN; fork also starts faster.
    executor = LocalPipelineExecutor(
        pipeline, tasks=workers, workers=workers, logging_dir=str(work / "logs"), start_method="fork"
    )
    with real_corpus.TreeRssSampler() as tree:
        start = time.perf_counter()
        stats = executor.run()
        seconds = time.perf_counter() - start
    cpu = real_corpus.cpu_seconds()
    steps = {s["name"] if isinstance(s, dict) else s.name: (s if isinstance(s, dict) else s.to_dict()) for s in stats.stats}
    counts = {}
    for name, step in steps.items():
        st = step.get("stats", step)
        counts[name] = {
            k: (v if isinstance(v, int | float) else v.get("total", v))
            for k, v in st.items()
            if k in ("total", "forwarded", "dropped", "timeout", "clean_error", "broken_process", "documents")
        }
        # datatrove's own timer: mean per task of the time spent inside this step, times the tasks
    subprocess.run(["rm", "-rf", str(work)], check=False)

    def pick(prefix: str, key: str) -> int:
        for name, c in counts.items():
            if prefix.lower() in name.lower():
                return int(c.get(key, 0))
        return 0

    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "tree_rss_mb": tree.peak_mb,
        "peak_rss_mb": max(real_corpus.peak_rss_mb(), real_corpus.peak_rss_mb(children=True)),
        "read": pick("warc", "documents") or pick("extrac", "total") or pick(extractor.name, "total"),
        "extracted": pick(extractor.name, "forwarded"),
        "timeouts": pick(extractor.name, "timeout"),
        "kept": pick("jsonl", "total") or pick("fineweb", "forwarded"),
        "steps": counts,
    }


def child(system: str, files: list[str], workers: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", system, json.dumps({"files": files, "workers": workers})],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{system} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=2, help="runs per (system, workers); the median is reported")
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    ap.add_argument("--diag-runs", type=int, default=1, help="runs of the diagnostic datatrove variant (resiliparse extractor)")
    ap.add_argument(
        "--parts",
        type=int,
        default=1,
        choices=(1, 2, 3, 4),
        help="WARC parts (of 4) per Debian package: 1 = python3.11-doc 133 + postgresql-doc-15 293 pages",
    )
    ap.add_argument("--quick", action="store_true", help="one run per system")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        system, payload = args.child[0], json.loads(args.child[1])
        if system == "ours":
            result = run_ours(payload["files"], payload["workers"])
        else:
            result = run_datatrove(payload["files"], payload["workers"], system.split("-", 1)[1])
        print(json.dumps(result))
        return

    doc_parts = [p for p in real_corpus.doc_warcs() if int(p.name.rsplit("-", 1)[1].split("of")[0]) <= args.parts]
    if args.quick:
        args.runs = args.diag_runs = 1
    files = [str(p) for p in doc_parts + real_corpus.pywb_sample_warcs() if p.name not in DATATROVE_UNREADABLE]
    n_docs = real_corpus.count_warc_responses([Path(f) for f in files])
    mb = sum(Path(f).stat().st_size for f in files) / 1e6
    cmd = "python benchmarks/bench_pipeline_vs_datatrove.py " + " ".join(sys.argv[1:])
    print(f"# pipeline vs datatrove — {real_corpus.machine()} — {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# command: {cmd.strip()}")
    print(f"# load average at start: {os.getloadavg()[0]:.1f} (shared machine: compare within this run only)")
    print(
        f"# input: {len(files)} WARC files, {mb:.1f} MB gzipped, {n_docs} response records "
        f"({len(doc_parts)} Debian doc parts + {len(files) - len(doc_parts)} pywb sample WARCs; left out: "
        f"{', '.join(sorted(DATATROVE_UNREADABLE))}, which crash datatrove's WarcReader)\n"
    )

    results: dict[tuple[str, int], list[dict]] = {}
    for run in range(args.runs):
        for workers in args.workers:
            order = args.systems if run % 2 == 0 else list(reversed(args.systems))
            for system in order:
                if system == "datatrove-resiliparse" and run >= args.diag_runs:
                    continue
                r = child(system, files, workers)
                results.setdefault((system, workers), []).append(r)
                print(
                    f"  run {run + 1} {system:24s} workers={workers} wall {r['seconds']:6.1f} s  cpu {r['cpu_s']:6.1f} s"
                    f"  kept {r['kept']}",
                    file=sys.stderr,
                    flush=True,
                )

    def med(rs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rs)

    print(
        "| system | workers | wall s (median; runs) | CPU s | docs/s | MB/s | peak RSS MB (largest proc) "
        "| peak RSS MB (tree) | extracted | kept | ours/this docs/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers in args.workers:
        ours = results.get(("ours", workers))
        for system in args.systems:
            rs = results[(system, workers)]
            wall = med(rs, "seconds")
            ratio = f"{med(rs, 'seconds') / med(ours, 'seconds'):.1f}x" if ours and system != "ours" else "1.0"
            walls = ", ".join(f"{r['seconds']:.1f}" for r in rs)
            extracted = int(med(rs, "extracted"))
            timeouts = int(max(r.get("timeouts", 0) for r in rs))
            ext = f"{extracted}" + (f" ({timeouts} timeouts)" if timeouts else "")
            print(
                f"| {system} | {workers} | {wall:.1f} ({walls}) | {med(rs, 'cpu_s'):.1f} | {n_docs / wall:.1f} | "
                f"{mb / wall:.2f} | {med(rs, 'peak_rss_mb'):.0f} | {med(rs, 'tree_rss_mb'):.0f} | {ext} | "
                f"{int(med(rs, 'kept'))} | {ratio} |"
            )
    print()
    for workers in args.workers:
        ours = results.get(("ours", workers))
        peer = results.get(("datatrove-trafilatura", workers))
        if ours and peer:
            ratio = med(peer, "seconds") / med(ours, "seconds")
            cpu_ratio = med(peer, "cpu_s") / med(ours, "cpu_s")
            print(
                f"workers={workers}: ours vs datatrove (FineWeb recipe, trafilatura): {ratio:.1f}x docs/s, "
                f"{cpu_ratio:.1f}x less CPU — goal >= 3x docs/s: {'PASS' if ratio >= 3 else 'FAIL'}"
            )
        peer = results.get(("datatrove-resiliparse", workers))
        if ours and peer:
            print(
                f"workers={workers}: ours vs datatrove with the same extractor (resiliparse): "
                f"{med(peer, 'seconds') / med(ours, 'seconds'):.1f}x docs/s, "
                f"{med(peer, 'cpu_s') / med(ours, 'cpu_s'):.1f}x less CPU"
            )
    print(
        "\nkept: ours = rows of `filtered` (English, all rule families, PII redacted); datatrove = documents "
        "written by JsonlWriter. extracted: ours = documents with text (`documents` rows_out); datatrove = "
        "extractor's forwarded count."
    )


if __name__ == "__main__":
    main()
