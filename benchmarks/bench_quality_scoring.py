"""Benchmark: quality scoring through ``add_quality_scores`` vs bare fastText ``predict(list)``.

Goal: the platform's overhead over the bare fastText batch call is <= 10%.

Corpus (real English text): the Python 3.11 HTML documentation from Debian's ``python3.11-doc``
package, fetched at run time with ``apt-get download`` (run ``apt-get update`` first if the
package index is empty), unpacked with ``dpkg-deb -x`` and converted to text with
``resiliparse.extract.html2text.extract_plain_text(html, main_content=True)``; one document per
HTML page with at least 50 words. Cached under ``benchmarks/_data/quality_scoring/``
(git-ignored). The corpus is tiled ``--repeat`` times so each timed run is long enough.

Model: a DCLM-style classifier trained with the project's reference positives and a seeded
random sample of 300 corpus documents as negatives (as DCLM uses random crawl documents).

Timed paths, each in its own child process (so peak RSS is per path), ``--runs`` times, median:

* ``bare``: ``model.predict(texts, k=2)`` on texts that were lowercased and whitespace-collapsed
  beforehand (untimed) -- the pure fastText cost, the strictest baseline;
* ``bare+py``: the same with the obvious per-document Python normalisation
  (``" ".join(t.lower().split())``) inside the timed region -- what a hand-written loop pays;
* ``platform``: ``add_quality_scores(df, model)`` on the raw text column -- normalisation in
  Polars, one batch predict, label/probability unpacking in numpy, Float32 column.

Run:  python benchmarks/bench_quality_scoring.py [--repeat 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "_data" / "quality_scoring"
PACKAGE = "python3.11-doc"


# ------------------------------------------------------------------------------------ corpus
def fetch_corpus() -> pl.DataFrame:
    cache = DATA / "docs.parquet"
    if cache.exists():
        return pl.read_parquet(cache)
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    DATA.mkdir(parents=True, exist_ok=True)
    debs = sorted(DATA.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", PACKAGE], cwd=DATA, check=True)
        debs = sorted(DATA.glob(f"{PACKAGE}_*.deb"))
    out = DATA / "unpacked"
    if not out.exists():
        tmp = DATA / "unpacked.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(tmp)], check=True)
        tmp.rename(out)
    rows = []
    for p in sorted(out.rglob("*.html")):
        raw = p.read_bytes()
        text = extract_plain_text(bytes_to_str(raw, detect_encoding(raw)), main_content=True)
        if text and len(text.split()) >= 50:
            rows.append({"source": str(p.relative_to(out)), "text": text})
    df = pl.DataFrame(rows)
    df.write_parquet(cache)
    return df


def ensure_model(corpus: pl.DataFrame) -> Path:
    from dataplatform.core.quality_classifier import train_quality_classifier

    existing = sorted((DATA / "model").glob("quality-*.bin"))
    if existing:
        return existing[0]
    negatives = corpus.sample(n=min(300, corpus.height), seed=0, shuffle=True)["text"]
    model = train_quality_classifier(None, negatives, seed=0)
    print(f"trained model: {model.metrics}", file=sys.stderr)
    return model.save(DATA / "model")


# ------------------------------------------------------------------------------------ child
def child(mode: str, model_path: str, repeat: int, runs: int) -> None:
    from dataplatform.core.quality_classifier import (
        add_quality_scores,
        load_quality_classifier,
        normalize_for_fasttext,
    )

    clf = load_quality_classifier(model_path)
    corpus = pl.read_parquet(DATA / "docs.parquet").select("text")
    df = pl.concat([corpus] * repeat, rechunk=True)
    texts_raw = df["text"].to_list()
    normalized = normalize_for_fasttext(df["text"]).to_list()
    ft = clf.model
    times = []
    cpu = []
    checksum = 0.0
    for _ in range(runs + 1):  # first run is warm-up
        t0 = time.perf_counter()
        c0 = time.process_time()
        if mode == "bare":
            labels, probs = ft.predict(normalized, k=2)
            result = probs
        elif mode == "bare+py":
            labels, probs = ft.predict([" ".join(t.lower().split()) for t in texts_raw], k=2)
            result = probs
        elif mode == "platform":
            result = add_quality_scores(df, clf)["quality_score"]
        else:
            raise SystemExit(f"unknown mode {mode}")
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        checksum = float(np.asarray(result[-1]).ravel()[0])
    print(
        json.dumps(
            {
                "mode": mode,
                "times": times[1:],
                "cpu": cpu[1:],
                "docs": df.height,
                "bytes": int(df["text"].str.len_bytes().sum()),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "checksum": checksum,
            }
        )
    )


def run_child(mode: str, model_path: Path, repeat: int, runs: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--model", str(model_path), "--repeat", str(repeat), "--runs", str(runs)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"nproc={os.cpu_count()}, memory={mem_gb:.1f} GiB, cpu={cpu}, python={platform.python_version()}, polars={pl.__version__}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20, help="tile the corpus this many times")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per path (after warm-up)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of child processes")
    ap.add_argument("--child")
    ap.add_argument("--model")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.model, args.repeat, args.runs)
        return

    t = time.perf_counter()
    corpus = fetch_corpus()
    model_path = ensure_model(corpus)
    mb = corpus["text"].str.len_bytes().sum() / 1e6
    print(
        f"corpus: {corpus.height} docs, {mb:.1f} MB text ({PACKAGE}); model {model_path.name}; "
        f"prep {time.perf_counter() - t:.1f}s"
    )
    print(f"machine: {machine()}")
    print(f"date: {_dt.datetime.now(_dt.UTC).isoformat(timespec='seconds')}")

    modes = ["bare", "bare+py", "platform"]
    results: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    info: dict[str, dict] = {}
    for _ in range(args.rounds):
        for m in modes:
            r = run_child(m, model_path, args.repeat, args.runs)
            results[m] += r["times"]
            cpu[m] += r["cpu"]
            info[m] = {**r, "peak_rss_mb": max(r["peak_rss_mb"], info.get(m, {}).get("peak_rss_mb", 0))}
    docs, nbytes = info["bare"]["docs"], info["bare"]["bytes"]
    print(
        f"\nscored {docs} docs / {nbytes / 1e6:.1f} MB per run; {args.rounds} rounds x "
        f"{args.runs} runs per path; median wall time\n"
    )
    print(
        "| path | wall s (median) | docs/s | MB/s | wall overhead vs bare | CPU s (median) | CPU overhead vs bare | peak RSS MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = float(np.median(results["bare"]))
    cbase = float(np.median(cpu["bare"]))
    for m in modes:
        med = float(np.median(results[m]))
        cmed = float(np.median(cpu[m]))
        print(
            f"| {m} | {med:.3f} | {docs / med:,.0f} | {nbytes / 1e6 / med:.1f} | "
            f"{(med - base) / base * 100:+.1f}% | {cmed:.3f} | {(cmed - cbase) / cbase * 100:+.1f}% "
            f"| {info[m]['peak_rss_mb']:.0f} |"
        )
    over = (float(np.median(results["platform"])) - base) / base * 100
    over_py = (
        (float(np.median(results["platform"])) - float(np.median(results["bare+py"])))
        / float(np.median(results["bare+py"]))
        * 100
    )
    print(
        f"\nplatform wall overhead vs bare fastText predict(list): {over:+.1f}% "
        f"(goal <= 10%: {'met' if over <= 10 else 'NOT met'}); "
        f"vs bare loop with its own normalisation: {over_py:+.1f}%"
    )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
