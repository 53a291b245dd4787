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
        pairs.append({"orig": ids[i], "copy": pid, "rate": rate,
                      "jaccard": true_jaccard(words[i], copy)})
    docs = pl.DataFrame({"doc_id": ids, "text": texts, "snapshot": ["bench"] * len(ids)})
    # shuffle rows so that input order does not help either system
    docs = docs[rng.permutation(docs.height)]
    return docs, pl.DataFrame(pairs)


# --------------------------------------------------------------------------- systems
def run_ours(docs: pl.DataFrame, verify: str) -> tuple[list[tuple[str, str]], float]:
    from dataplatform.core.dedup import DedupConfig, deduplicate

    deduplicate(docs[:50], config=DedupConfig(verify=verify))  # warm caches (power tables)
    t, c = time.perf_counter(), time.process_time()
    res = deduplicate(docs, config=DedupConfig(verify=verify))
    dt, dc = time.perf_counter() - t, time.process_time() - c
    flagged = res.frame.filter(pl.col("duplicate_of").is_not_null())
    return list(zip(flagged["doc_id"].to_list(), flagged["duplicate_of"].to_list())), dt, dc


def run_datasketch(docs: pl.DataFrame) -> tuple[list[tuple[str, str]], float]:
    """Streaming dedup as datasketch users write it: same normalisation, word 5-gram shingles,
    MinHash(num_perm=112) per doc, query MinHashLSH(threshold=0.8) and insert if new. Docs go in
    (doc_id) order so the keeper rule matches ours."""
    from datasketch import MinHash, MinHashLSH

    from dataplatform.core.dedup import normalize_text

    docs = docs.sort("doc_id")
    t, c = time.perf_counter(), time.process_time()
    norm = normalize_text(docs["text"]).to_list()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=112)
    flagged = []
    for did, text in zip(docs["doc_id"].to_list(), norm):
        w = text.split()
        if not w:
            continue
        sh = {" ".join(w[i : i + NGRAM]) for i in range(max(len(w) - NGRAM + 1, 1))}
        m = MinHash(num_perm=112)
        m.update_batch([s.encode("utf8") for s in sh])
        hits = lsh.query(m)
        if hits:
            flagged.append((did, min(hits)))
        else:
            lsh.insert(did, m)
    return flagged, time.perf_counter() - t, time.process_time() - c


def child(system: str, path: str) -> None:
    docs = pl.read_parquet(path)
    if system == "datasketch":
        flagged, dt, dc = run_datasketch(docs)
    else:
        flagged, dt, dc = run_ours(docs, system.split(":", 1)[1])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"flagged": flagged, "seconds": dt, "cpu_s": dc, "peak_rss_mb": rss}))


def evaluate(docs: pl.DataFrame, pairs: pl.DataFrame, flagged: list[tuple[str, str]]) -> dict:
    words = dict(zip(docs["doc_id"].to_list(), (t.split() for t in docs["text"].to_list())))
    keeper = {d: k for d, k in flagged}

    def root(d: str) -> str:
        while d in keeper:
            d = keeper[d]
        return d

    pos = pairs.filter(pl.col("jaccard") >= THRESHOLD)
    found = sum(root(c) == root(o) for o, c in zip(pos["orig"].to_list(), pos["copy"].to_list()))
    jac = {(o, c): j for o, c, j in zip(pairs["orig"].to_list(), pairs["copy"].to_list(),
                                        pairs["jaccard"].to_list())}
    tp = 0
    for d, k in flagged:
        j = jac.get((k, d))
        if j is None:
            j = jac.get((d, k))
        if j is None:
            j = true_jaccard(words[d], words[k])
        tp += j >= THRESHOLD
    return {"positives": pos.height, "found": found, "recall": found / max(pos.height, 1),
            "flagged": len(flagged), "true_flagged": tp,
            "precision": tp / len(flagged) if flagged else 1.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plant-frac", type=float, default=0.5)
    ap.add_argument("--system", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--no-datasketch", action="store_true")
    args = ap.parse_args()
    if args.system:
        child(args.system, args.input)
        return
    docs, pairs = build_labelled(args.seed, args.plant_frac)
    path = DATA / f"labelled-{args.seed}.parquet"
    docs.write_parquet(path)
    mb = docs["text"].str.len_bytes().sum() / 1e6
    print(f"corpus: {docs.height} docs ({mb:.1f} MB normalised text) from {', '.join(PACKAGES)}; "
          f"{pairs.height} planted pairs, {int((pairs['jaccard'] >= THRESHOLD).sum())} with true "
          f"word-{NGRAM}-gram Jaccard >= {THRESHOLD}")
    hist = pairs.group_by("rate").agg(pl.col("jaccard").mean().alias("mean_J"),
                                      pl.col("jaccard").min().alias("min_J"),
                                      pl.col("jaccard").max().alias("max_J"),
                                      pl.len().alias("n")).sort("rate")
    print("planted edit rate -> true Jaccard:")
    for r in hist.iter_rows(named=True):
        print(f"  rate {r['rate']:.4f}: n={r['n']:3d} J mean {r['mean_J']:.3f} "
              f"[{r['min_J']:.3f}, {r['max_J']:.3f}]")
    systems = ["ours:exact", "ours:signature", "ours:none"]
    if not args.no_datasketch:
        systems.append("datasketch")
    results = {}
    for sysname in systems:
        # a fresh process per system: peak RSS is the system's own
        out = subprocess.run([sys.executable, __file__, "--system", sysname, "--input", str(path)],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        r.update(evaluate(docs, pairs, [tuple(x) for x in r.pop("flagged")]))
        r["docs_per_s"] = docs.height / r["seconds"]
        results[sysname] = r
    print()
    print(f"{'system':<16}{'recall':>8}{'precision':>11}{'flagged':>9}{'wall s':>8}{'cpu s':>7}"
          f"{'docs/s':>8}{'docs/cpu-s':>11}{'MB/s':>6}{'peak RSS MB':>13}")
    for k, r in results.items():
        print(f"{k:<16}{r['recall']:>8.4f}{r['precision']:>11.4f}{r['flagged']:>9d}"
              f"{r['seconds']:>8.2f}{r['cpu_s']:>7.2f}{r['docs_per_s']:>8.0f}"
              f"{docs.height / r['cpu_s']:>11.0f}{mb / r['seconds']:>6.1f}{r['peak_rss_mb']:>13.0f}")
    if "datasketch" in results:
        ds = results["datasketch"]
        for k in systems[:-1]:
            print(f"speed ratio {k} / datasketch: wall {ds['seconds'] / results[k]['seconds']:.1f}x, "
                  f"cpu {ds['cpu_s'] / results[k]['cpu_s']:.1f}x "
                  f"(recall {results[k]['recall']:.4f} vs {ds['recall']:.4f}, precision "
                  f"{results[k]['precision']:.4f} vs {ds['precision']:.4f})")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT.parent))
    main()
