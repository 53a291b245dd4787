"""Ingest + extract benchmark: WARC -> documents (fastwarc, resiliparse, fastText LID).

    python benchmarks/bench_ingest.py [--workers 2] [--pages 3000]

Inputs: the bundled sample crawl, the real crawl WARCs inside the pywb 2.10.0 sdist, and real
English HTML pages (Debian's python3.11-doc) wrapped in WARC records. Prints docs/s, MB/s (WARC
bytes, compressed) and peak RSS per run, plus the extraction step alone against trafilatura (the
extractor FineWeb used) on the same pages. Each run is a separate process so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_corpus  # noqa: E402


def run_ingest(files: list[str], workers: int) -> dict:
    from dataplatform.execution.engines import make_executor
    from dataplatform.io.crawl_sources import CrawlSource
    from dataplatform.io.datasets import DatasetStore
    from dataplatform.io.object_store import LocalLocation
    from dataplatform.stages.ingest import materialize_documents_from_warcs

    paths = [Path(f).resolve() for f in files]
    root = Path("/")
    keys = [p.relative_to(root).as_posix() for p in paths]
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        report = materialize_documents_from_warcs(
            CrawlSource(LocalLocation(str(root))),
            keys,
            DatasetStore.local(out),
            "bench",
            make_executor("process" if workers > 1 else "inline", workers),
        )
        seconds = time.perf_counter() - start
    return {
        "records": report.rows_in,
        "documents": report.rows_out,
        "seconds": seconds,
        "docs_per_s": report.rows_in / seconds,
        "mb_per_s": report.bytes_in / 1e6 / seconds,
        "peak_rss_mb": max(real_corpus.peak_rss_mb(), real_corpus.peak_rss_mb(children=True)),
    }


def run_extract(files: list[str], extractor: str) -> dict:
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    htmls = []
    for f in files:
        raw = Path(f).read_bytes()
        htmls.append(bytes_to_str(raw, detect_encoding(raw)))
    if extractor == "resiliparse":
        from resiliparse.extract.html2text import extract_plain_text

        fn = lambda h: extract_plain_text(h, main_content=True)  # noqa: E731
    else:
        import trafilatura

        fn = lambda h: trafilatura.extract(h, favor_precision=True, include_comments=False)  # noqa: E731
    start = time.perf_counter()
    chars = sum(len(fn(h) or "") for h in htmls)
    seconds = time.perf_counter() - start
    mb = sum(len(h.encode()) for h in htmls) / 1e6
    return {
        "pages": len(htmls),
        "seconds": seconds,
        "docs_per_s": len(htmls) / seconds,
        "mb_per_s": mb / seconds,
        "chars_out": chars,
        "peak_rss_mb": real_corpus.peak_rss_mb(),
    }


def child(kind: str, payload: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, json.dumps(payload)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pages", type=int, default=3000, help="real HTML pages to wrap into WARC")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, payload = args.child[0], json.loads(args.child[1])
        result = run_ingest(payload["files"], payload["workers"]) if kind == "ingest" else run_extract(payload["files"], kind)
        print(json.dumps(result))
        return

    from dataplatform.sample_data import SAMPLE_CRAWL_ROOT

    sample = sorted(str(p) for p in SAMPLE_CRAWL_ROOT.rglob("*.warc.gz"))
    pywb = [str(p) for p in real_corpus.pywb_sample_warcs()]
    html = real_corpus.debian_html_files(("python3.11-doc",))[: args.pages]
    docs_warc = str(real_corpus.html_files_to_warc(html, real_corpus.DATA / f"python-doc-{len(html)}.warc.gz"))
    print(f"# ingest benchmark — {real_corpus.machine()} — {time.strftime('%Y-%m-%d')}")
    print(f"# command: python benchmarks/bench_ingest.py --workers {args.workers} --pages {args.pages}\n")
    print("| input | workers | records | docs/s | MB/s (WARC) | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, files in (
        ("bundled sample (2 snapshots)", sample),
        ("pywb sample_archive WARCs", pywb),
        (f"python3.11-doc pages in WARC ({len(html)})", [docs_warc]),
    ):
        for workers in sorted({1, args.workers}):
            r = child("ingest", {"files": files, "workers": workers})
            print(
                f"| {name} | {workers} | {r['records']} | {r['docs_per_s']:.0f} | {r['mb_per_s']:.2f} | {r['peak_rss_mb']:.0f} |"
            )
    print("\nExtraction alone, same pages, one core:\n")
    print("| extractor | pages | docs/s | MB/s (HTML) | peak RSS MB | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    ours = child("resiliparse", {"files": [str(p) for p in html]})
    try:
        peer = child("trafilatura", {"files": [str(p) for p in html]})
    except subprocess.CalledProcessError:
        peer = None
    print(
        f"| resiliparse (ours) | {ours['pages']} | {ours['docs_per_s']:.0f} | {ours['mb_per_s']:.2f} | {ours['peak_rss_mb']:.0f} | 1.0 |"
    )
    if peer:
        print(
            f"| trafilatura 2.x | {peer['pages']} | {peer['docs_per_s']:.0f} | {peer['mb_per_s']:.2f} | {peer['peak_rss_mb']:.0f} | "
            f"ours {ours['docs_per_s'] / peer['docs_per_s']:.1f}x faster |"
        )
    else:
        print("| trafilatura | not installed (`pip install -e .[bench]`) | | | | |")


if __name__ == "__main__":
    main()
