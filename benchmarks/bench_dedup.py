"""Benchmark: dataplatform's dedup core vs datasketch (MinHash + MinHashLSH), on real English text.

Corpus: HTML manuals shipped in Debian packages (python3.11-doc, postgresql-doc-15, git-doc),
fetched at run time with ``apt-get download`` and turned into text with resiliparse
(``extract_plain_text(html, main_content=True)``); cached under ``benchmarks/_data/`` (git-ignored).

Labelled set: a seeded random subset of documents gets near-duplicate copies planted with word
edits (substitutions / insertions / deletions) at several rates; for every planted pair the TRUE
word-5-gram Jaccard (on the same normalised words both systems see) is computed. Positives are
pairs with true Jaccard >= 0.8. A system "finds" a pair when it puts the copy in the same
duplicate cluster as its source (ours: ``duplicate_of`` chain; datasketch: LSH query result).
Precision counts every flagged pair: planted pairs below 0.8 and any flagged pair between
unrelated documents (real duplicates already present in the corpus are counted via their true
Jaccard too, not assumed wrong).

Run:  python benchmarks/bench_dedup.py [--docs N] [--plant-frac F] [--seed S] [--no-datasketch]
"""

from __future__ import annotations

import argparse
import datetime as _dt
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
DATA = ROOT / "_data"
PACKAGES = ["python3.11-doc", "postgresql-doc-15", "git-doc"]
NGRAM = 5
THRESHOLD = 0.8


# --------------------------------------------------------------------------- corpus
def fetch_corpus() -> pl.DataFrame:
    cache = DATA / "corpus.parquet"
    if cache.exists():
        return pl.read_parquet(cache)
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    debs = DATA / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    rows = []
    for pkg in PACKAGES:
        if not list(debs.glob(f"{pkg}_*.deb")):
            subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deb = sorted(debs.glob(f"{pkg}_*.deb"))[0]
        out = DATA / "unpacked" / pkg
        if not out.exists():
            out.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(out)], check=True)
        for p in sorted(out.rglob("*.htm*")):
            raw = p.read_bytes()
            html = bytes_to_str(raw, detect_encoding(raw))
            text = extract_plain_text(html, main_content=True)
            if text and len(text.split()) >= 50:
                rows.append({"source": f"{pkg}:{p.relative_to(out)}", "text": text})
    df = pl.DataFrame(rows)
    df.write_parquet(cache)
    return df


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t = time.perf_counter()
    df = fetch_corpus()
    print(df.height, "docs", df["text"].str.len_bytes().sum() / 1e6, "MB", time.perf_counter() - t)


if __name__ == "__main__":
    main()
