"""Heuristic filters: ours (dataplatform.core.filters) vs datatrove on real English web/HTML pages.

Data (downloaded at run time, cached under benchmarks/_data/, git-ignored):
  * the WARCs shipped in pywb's sdist (``pip download --no-deps --no-binary :all: pywb==2.10.0``)
  * English HTML documentation from Debian packages (``apt-get download python3.11-doc
    python-django-doc``, unpacked with ``dpkg-deb -x``)
Text is extracted with resiliparse ``extract_plain_text(html, main_content=True)``.

For every document both implementations decide pass/fail per family (datatrove's ``filter(doc)``;
FineWeb sees the text as C4 left it, as in datatrove's FineWeb pipeline), then we print per-family
agreement, the most common disagreements, docs/s of each and the ratio, and peak RSS.

Needs (bench only, never the package): ``pip install "datatrove[processing]" spacy``.

    python benchmarks/bench_heuristic_filters.py [--repeat N] [--limit N]
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "_data"
sys.path.insert(0, str(ROOT.parent))

from dataplatform.core.filters import FAMILIES, HeuristicFilterSuite  # noqa: E402

DEBS = ("python3.11-doc", "python-django-doc")


def _fetch() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    if not list(DATA.glob("pywb-2.10.0/sample_archive/warcs/*")):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "pywb==2.10.0", "-d", str(DATA)],
            check=True,
        )
        with tarfile.open(DATA / "pywb-2.10.0.tar.gz") as tf:
            tf.extractall(DATA, filter="data")
    for pkg in DEBS:
        if not list(DATA.glob(f"{pkg.replace('-', '?')}_*.deb")) and not list(DATA.glob(f"{pkg}_*.deb")):
            subprocess.run(["apt-get", "download", pkg], cwd=DATA, check=True)
    if not (DATA / "root").exists():
        for deb in DATA.glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(DATA / "root")], check=True)


def _html_docs() -> list[tuple[str, bytes]]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    docs = []
    for path in sorted(glob.glob(str(DATA / "pywb-2.10.0/sample_archive/warcs/*.warc*"))):
        if path.endswith(".bad"):
            continue
        try:
            with open(path, "rb") as fh:
                for rec in ArchiveIterator(fh, record_types=WarcRecordType.response, parse_http=True):
                    ctype = (rec.http_headers.get("Content-Type") or "") if rec.http_headers else ""
                    if "html" in ctype.lower():
                        docs.append((rec.headers.get("WARC-Target-URI"), rec.reader.read()))
        except Exception as exc:  # a corrupt sample WARC is not our concern here
            print(f"skip {path}: {exc}", file=sys.stderr)
    for path in sorted(glob.glob(str(DATA / "root/usr/share/doc/**/*.html"), recursive=True)):
        docs.append((path, Path(path).read_bytes()))
    return docs


def load_texts(limit: int | None) -> list[str]:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    texts = []
    for _, html in _html_docs():
        text = extract_plain_text(bytes_to_str(html, detect_encoding(html)), main_content=True)
        if text and text.strip():
            texts.append(text)
    return texts[:limit] if limit else texts


def run_datatrove(texts: list[str]) -> tuple[dict[str, list], float]:
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    filters = {
        "gopher_repetition": GopherRepetitionFilter(),
        "gopher_quality": GopherQualityFilter(),
        "c4": C4QualityFilter(),
        # our default is the paper's 0.1 (datatrove's class default is 0.01)
        "fineweb": FineWebQualityFilter(char_duplicates_ratio=0.1),
    }
    filters["gopher_quality"].filter(Document(text="warm up the spaCy tokenizer.", id="w"))
    out: dict[str, list] = {f: [] for f in filters}
    t0 = time.perf_counter()
    for i, text in enumerate(texts):
        for fam in ("gopher_repetition", "gopher_quality"):
            r = filters[fam].filter(Document(text=text, id=str(i)))
            out[fam].append(r if isinstance(r, tuple) else (r, None))
        doc = Document(text=text, id=str(i))
        r = filters["c4"].filter(doc)  # edits doc.text when it passes
        out["c4"].append(r if isinstance(r, tuple) else (r, None))
        r = filters["fineweb"].filter(doc if r is True else Document(text=text, id=str(i)))
        out["fineweb"].append(r if isinstance(r, tuple) else (r, None))
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of ours (best is reported)")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()

    _fetch()
    texts = load_texts(args.limit)
    n = len(texts)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"documents: {n} real English pages ({mb:.1f} MB of extracted text)")

    df = pl.DataFrame({"text": texts})
    suite = HeuristicFilterSuite()
    suite.apply(df.head(10))  # warm-up (regex compilation)
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ours = suite.apply(df)
        best = min(best, time.perf_counter() - t0)
    rss_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS after ours: {rss_ours:.0f} MiB")

    theirs, dt_time = run_datatrove(texts)
    rss_all = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # per-family reasons of ours (a family's own first failing rule, not the suite's drop_reason)
    fam_reasons = {}
    from dataplatform.core.filters._text import TextShard

    shard = TextShard(df.get_column("text"))
    fam_reasons["gopher_repetition"] = suite.gopher_repetition.evaluate(shard).get_column("gopher_repetition_reason")
    fam_reasons["gopher_quality"] = suite.gopher_quality.evaluate(shard).get_column("gopher_quality_reason")
    c4 = suite.c4.evaluate(shard)
    fam_reasons["c4"] = c4.get_column("c4_reason")
    fam_reasons["fineweb"] = suite.fineweb.evaluate(c4.get_column("c4_text").rename("text")).get_column("fineweb_reason")

    print()
    print("| family | agreement | ours pass | datatrove pass | top disagreements (ours / datatrove: count) |")
    print("|---|---|---|---|---|")
    for fam in FAMILIES:
        ours_pass = ours.get_column(f"passes_{fam}").to_list()
        dt = theirs[fam]
        agree = sum(o == d[0] for o, d in zip(ours_pass, dt))
        dis = Counter((r or "pass", d[1] or "pass") for o, d, r in zip(ours_pass, dt, fam_reasons[fam].to_list()) if o != d[0])
        top = "; ".join(f"{a} / {b}: {c}" for (a, b), c in dis.most_common(4)) or "-"
        print(f"| {fam} | {100 * agree / n:.1f}% | {sum(ours_pass)} | {sum(d[0] for d in dt)} | {top} |")
    print()
    print(f"ours:      {best:.3f} s  {n / best:,.0f} docs/s  ({mb / best:.1f} MB/s)  all four families, one shard")
    print(f"datatrove: {dt_time:.3f} s  {n / dt_time:,.0f} docs/s  ({mb / dt_time:.1f} MB/s)  filter(doc) per doc")
    print(f"speed-up:  {dt_time / best:.1f}x")
    print(f"peak RSS (whole process, incl. datatrove + spaCy): {rss_all:.0f} MiB")
    print(f"POLARS_MAX_THREADS={os.environ.get('POLARS_MAX_THREADS', 'default')} nproc={os.cpu_count()}")


if __name__ == "__main__":
    main()
