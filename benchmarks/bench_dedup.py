"""Near-duplicate recall and precision on real pages, dataplatform's dedup vs datasketch and rensa.

Corpus: HTML manuals shipped in Debian packages (python3.11-doc, postgresql-doc-15, git-doc),
fetched at run time with ``apt-get download`` and turned into text with resiliparse
(``extract_plain_text(html, main_content=True)``); cached under ``benchmarks/_data/`` (git-ignored).

Labelled set: a seeded random half of the documents gets a near-duplicate copy planted with word
edits (equal shares of substitutions, insertions and deletions) at one of ten rates from 0.25% to
15%; for every planted pair the TRUE word-5-gram Jaccard (on the normalised words every system
sees) is computed. A pair is a near-duplicate when that Jaccard is >= 0.7 (:data:`NEAR`).

Measures (a system "finds" a pair when it puts the copy in the same duplicate cluster as its
source: ours follows ``duplicate_of``, the streaming peers their first match):

* recall on "republished" pairs: copies with 3% of their words edited (5-gram Jaccard ~0.74-0.80,
  the case of a news article republished with small changes), and on the pairs whose true
  Jaccard lies in [0.74, 0.80], and on every planted pair with Jaccard >= 0.7; recall per rate;
* precision: the share of flagged (document, kept document) pairs whose true Jaccard >= 0.7
  (flagged pairs between documents that were not planted count with their own true Jaccard).

Systems (each in a fresh process): ours with the default configuration, within one snapshot and
across snapshots (sources in an earlier snapshot, copies in the next one, through the index), and
with earlier settings (FineWeb's 14 x 8 bands without verification; 14 x 8 verified at 0.8; 20 x 5
verified by the signature estimate); datasketch 2.x ``MinHashLSH(threshold=0.7)`` and rensa 0.5
``RMinHashLSH(num_perm=100, num_bands=20)``, each streaming documents in doc_id order, querying, checking their
candidates' estimated Jaccard >= 0.7 and inserting the document when nothing matched.

Run:  python benchmarks/bench_dedup.py [--seeds 0 1 2] [--plant-frac F] [--no-peers]
(peers: ``pip install datasketch==2.0.0 rensa==0.5.0``, the ``bench`` extra)
"""

from __future__ import annotations

import argparse
import json
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
NEAR = 0.7  # a pair is a near-duplicate when its true word-5-gram Jaccard is at least this
REPUBLISHED_RATE = 0.03


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
            subprocess.run(
                ["apt-get", "download", pkg], cwd=debs, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
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


EDIT_RATES = [0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.15]


def shingle_set(words: list[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def true_jaccard(a: list[str], b: list[str]) -> float:
    sa, sb = shingle_set(a), shingle_set(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


def plant(words: list[str], rate: float, rng: np.random.Generator, vocab: list[str]) -> list[str]:
    """Edit ~rate of the words: equal shares of substitutions, insertions and deletions."""
    out: list[str] = []
    for w in words:
        r = rng.random()
        if r < rate / 3:  # substitute
            out.append(vocab[rng.integers(len(vocab))])
        elif r < 2 * rate / 3:  # insert before
            out.append(vocab[rng.integers(len(vocab))])
            out.append(w)
        elif r < rate:  # delete
            continue
        else:
            out.append(w)
    return out


def build_labelled(seed: int, plant_frac: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    from dataplatform.core.dedup import normalize_text

    corpus = fetch_corpus()
    norm = normalize_text(corpus["text"]).to_list()
    words = [t.split() for t in norm]
    vocab = sorted({w for ws in words for w in ws})
    rng = np.random.default_rng(seed)
    n = len(words)
    chosen = np.sort(rng.choice(n, int(plant_frac * n), replace=False))
    ids = [f"o{i:05d}" for i in range(n)]
    texts = list(norm)
    pairs = []
    for k, i in enumerate(chosen.tolist()):
        rate = EDIT_RATES[k % len(EDIT_RATES)]
        copy = plant(words[i], rate, rng, vocab)
        pid = f"p{i:05d}"
        ids.append(pid)
        texts.append(" ".join(copy))
        pairs.append({"orig": ids[i], "copy": pid, "rate": rate, "jaccard": true_jaccard(words[i], copy)})
    docs = pl.DataFrame({"doc_id": ids, "text": texts, "snapshot": ["bench"] * len(ids)})
    # shuffle rows so that input order does not help either system
    docs = docs[rng.permutation(docs.height)]
    return docs, pl.DataFrame(pairs)


# --------------------------------------------------------------------------- systems
OURS = {
    "ours": {},
    "ours:14x8 none (FineWeb)": {"bands": 14, "rows": 8, "verify": "none"},
    "ours:14x8 exact@0.8 (before)": {"bands": 14, "rows": 8, "threshold": 0.8},
    "ours:20x5 signature@0.7": {"verify": "signature"},
}


def run_ours(docs: pl.DataFrame, settings: dict, cross: bool) -> tuple[list[tuple[str, str]], float, float]:
    """Our in-memory dedup (the stage computes the same, tests prove it). ``cross``: the sources
    (ids ``o...``) form an earlier snapshot, the copies (``p...``) the next one, joined through the
    signature index."""
    from dataplatform.core.dedup import DedupConfig, deduplicate

    config = DedupConfig(**settings)
    deduplicate(docs[:50], config=config)  # warm caches
    t, c = time.perf_counter(), time.process_time()
    if cross:
        first = deduplicate(
            docs.filter(pl.col("doc_id").str.starts_with("o")).with_columns(snapshot=pl.lit("CC-A")), config=config
        )
        second = deduplicate(
            docs.filter(pl.col("doc_id").str.starts_with("p")).with_columns(snapshot=pl.lit("CC-B")),
            index=first.index_rows,
            config=config,
        )
        frame = pl.concat([first.frame, second.frame])
    else:
        frame = deduplicate(docs, config=config).frame
    dt, dc = time.perf_counter() - t, time.process_time() - c
    flagged = frame.filter(pl.col("duplicate_of").is_not_null())
    return list(zip(flagged["doc_id"].to_list(), flagged["duplicate_of"].to_list())), dt, dc


def _shingles(text: str) -> list[str]:
    w = text.split()
    return sorted({" ".join(w[i : i + NGRAM]) for i in range(max(len(w) - NGRAM + 1, 1))})


def run_datasketch(docs: pl.DataFrame) -> tuple[list[tuple[str, str]], float, float]:
    """Streaming dedup as datasketch users write it: same normalisation, word 5-gram shingles,
    ``MinHash(num_perm=112)`` per doc, ``MinHashLSH(threshold=0.7)`` (datasketch picks the bands),
    candidates checked by ``MinHash.jaccard``; docs go in doc_id order so the keeper rule matches."""
    from datasketch import MinHash, MinHashLSH

    from dataplatform.core.dedup import normalize_text

    docs = docs.sort("doc_id")
    t, c = time.perf_counter(), time.process_time()
    norm = normalize_text(docs["text"]).to_list()
    lsh = MinHashLSH(threshold=NEAR, num_perm=112)
    kept, flagged = {}, []
    for did, text in zip(docs["doc_id"].to_list(), norm):
        if not text:
            continue
        m = MinHash(num_perm=112)
        m.update_batch([s.encode("utf8") for s in _shingles(text)])
        hits = sorted(h for h in lsh.query(m) if kept[h].jaccard(m) >= NEAR)
        if hits:
            flagged.append((did, hits[0]))
        else:
            lsh.insert(did, m)
            kept[did] = m
    return flagged, time.perf_counter() - t, time.process_time() - c


def run_rensa(docs: pl.DataFrame) -> tuple[list[tuple[str, str]], float, float]:
    """The same stream with rensa's Rust MinHash: ``RMinHash(100)`` and ``RMinHashLSH(num_bands=20)``
    (rensa needs bands to divide the permutations: our 20 x 5 banding), candidates checked by
    ``RMinHash.jaccard >= 0.7``."""
    from rensa import RMinHash, RMinHashLSH

    from dataplatform.core.dedup import normalize_text

    docs = docs.sort("doc_id")
    t, c = time.perf_counter(), time.process_time()
    norm = normalize_text(docs["text"]).to_list()
    lsh = RMinHashLSH(threshold=NEAR, num_perm=100, num_bands=20)
    kept: list[tuple[str, object]] = []
    flagged = []
    for did, text in zip(docs["doc_id"].to_list(), norm):
        if not text:
            continue
        m = RMinHash(num_perm=100, seed=1)
        m.update(_shingles(text))
        hits = sorted(kept[k][0] for k in lsh.query(m) if kept[k][1].jaccard(m) >= NEAR)
        if hits:
            flagged.append((did, hits[0]))
        else:
            lsh.insert(len(kept), m)
            kept.append((did, m))
    return flagged, time.perf_counter() - t, time.process_time() - c


def child(system: str, path: str) -> None:
    docs = pl.read_parquet(path)
    if system == "datasketch":
        flagged, dt, dc = run_datasketch(docs)
    elif system == "rensa":
        flagged, dt, dc = run_rensa(docs)
    else:
        name, _, mode = system.partition("|")
        flagged, dt, dc = run_ours(docs, OURS[name], mode == "cross")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"flagged": flagged, "seconds": dt, "cpu_s": dc, "peak_rss_mb": rss}))


def evaluate(docs: pl.DataFrame, pairs: pl.DataFrame, flagged: list[tuple[str, str]]) -> dict:
    words = dict(zip(docs["doc_id"].to_list(), (t.split() for t in docs["text"].to_list())))
    keeper = dict(flagged)

    def root(d: str) -> str:
        while d in keeper:
            d = keeper[d]
        return d

    found = pairs.with_columns(
        found=pl.Series([root(o) == root(c) for o, c in zip(pairs["orig"].to_list(), pairs["copy"].to_list())])
    )
    jac = {(o, c): j for o, c, j in zip(pairs["orig"].to_list(), pairs["copy"].to_list(), pairs["jaccard"].to_list())}
    near = 0
    for d, k in flagged:
        j = jac.get((k, d), jac.get((d, k)))
        near += (j if j is not None else true_jaccard(words[d], words[k])) >= NEAR

    def recall(expr: pl.Expr) -> float:
        sel = found.filter(expr)
        return float(sel["found"].mean()) if sel.height else float("nan")

    return {
        "recall_republished": recall(pl.col("rate") == REPUBLISHED_RATE),
        "recall_j74_80": recall(pl.col("jaccard").is_between(0.74, 0.80)),
        "recall_near": recall(pl.col("jaccard") >= NEAR),
        "recall_by_rate": {str(r): recall(pl.col("rate") == r) for r in EDIT_RATES},
        "flagged": len(flagged),
        "near_flagged": near,
        "precision": near / len(flagged) if flagged else 1.0,
    }


def run_seed(seed: int, plant_frac: float, systems: list[str]) -> dict:
    docs, pairs = build_labelled(seed, plant_frac)
    path = DATA / f"labelled-{seed}.parquet"
    docs.write_parquet(path)
    mb = docs["text"].str.len_bytes().sum() / 1e6
    print(
        f"\n## seed {seed}: {docs.height} docs ({mb:.1f} MB normalised text); {pairs.height} planted pairs: "
        f"{int((pairs['jaccard'] >= NEAR).sum())} with true word-{NGRAM}-gram Jaccard >= {NEAR}, "
        f"{int((pairs['rate'] == REPUBLISHED_RATE).sum())} republished (3% edited), "
        f"{int(pairs['jaccard'].is_between(0.74, 0.80).sum())} with Jaccard in [0.74, 0.80]"
    )
    hist = (
        pairs.group_by("rate")
        .agg(
            pl.col("jaccard").mean().alias("mean"),
            pl.col("jaccard").min().alias("min"),
            pl.col("jaccard").max().alias("max"),
            pl.len().alias("n"),
        )
        .sort("rate")
    )
    print(
        "edit rate -> true Jaccard: "
        + "; ".join(f"{r['rate']:.2%}: {r['mean']:.3f} [{r['min']:.2f}, {r['max']:.2f}]" for r in hist.iter_rows(named=True))
    )
    results = {}
    for system in systems:
        out = subprocess.run(
            [sys.executable, __file__, "--system", system, "--input", str(path)], check=True, capture_output=True, text=True
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        r.update(evaluate(docs, pairs, [tuple(x) for x in r.pop("flagged")]))
        r["docs_per_cpu_s"] = docs.height / max(r["cpu_s"], 1e-9)
        results[system] = r
    print(
        f"| system | recall, republished (3%) | recall, J in [0.74, 0.80] | recall, J >= {NEAR} | precision "
        "| flagged | wall s | CPU s | docs/CPU-s | peak RSS MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, r in results.items():
        print(
            f"| {k.replace('|', ', ')} | {r['recall_republished']:.3f} | {r['recall_j74_80']:.3f} | {r['recall_near']:.3f} "
            f"| {r['precision']:.4f} | {r['flagged']} | {r['seconds']:.2f} | {r['cpu_s']:.2f} "
            f"| {r['docs_per_cpu_s']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    print("\nrecall by edit rate:")
    print("| system | " + " | ".join(f"{r:.2%}" for r in EDIT_RATES) + " |")
    print("|---|" + "---:|" * len(EDIT_RATES))
    for k, r in results.items():
        print(f"| {k.replace('|', ', ')} | " + " | ".join(f"{v:.2f}" for v in r["recall_by_rate"].values()) + " |")
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--plant-frac", type=float, default=0.5)
    ap.add_argument("--system", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args()
    if args.system:
        child(args.system, args.input)
        return
    systems = ["ours", "ours|cross", *[k for k in OURS if k != "ours"]]
    if not args.no_peers:
        import importlib.util

        missing = [p for p in ("datasketch", "rensa") if importlib.util.find_spec(p) is None]
        if missing:
            print(f"# peers not installed, skipped: {missing} (pip install datasketch==2.0.0 rensa==0.5.0)")
        systems += [p for p in ("datasketch", "rensa") if p not in missing]
    print(
        f"# dedup recall/precision — command: python benchmarks/bench_dedup.py {' '.join(sys.argv[1:])} — "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    per_seed = [run_seed(seed, args.plant_frac, systems) for seed in args.seeds]
    print(f"\n## mean over seeds {args.seeds}")
    print("| system | recall, republished (3%) | recall, J in [0.74, 0.80] | recall, J >= 0.7 | precision | CPU s |")
    print("|---|---:|---:|---:|---:|---:|")
    for k in systems:
        rs = [p[k] for p in per_seed]
        print(
            f"| {k.replace('|', ', ')} | "
            + " | ".join(f"{np.mean([r[m] for r in rs]):.3f}" for m in ("recall_republished", "recall_j74_80", "recall_near"))
            + f" | {np.mean([r['precision'] for r in rs]):.4f} | {np.mean([r['cpu_s'] for r in rs]):.2f} |"
        )
    ours = np.mean([p["ours"]["cpu_s"] for p in per_seed])
    for peer in ("datasketch", "rensa"):
        if peer in systems:
            print(f"CPU time {peer} / ours: {np.mean([p[peer]['cpu_s'] for p in per_seed]) / ours:.1f}x")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT.parent))
    main()
