"""Token counting (`count_tokens`, used by the training mix and the toxicity step): throughput and
peak RSS by how a batch is bounded. The tokenizer's encodings cost ~300 bytes per token, so a
batch of 4,096 web documents held ~900 MB at once; batches now stop at ``max_batch_chars``.

    python benchmarks/bench_token_counting.py [--docs 4000]

Each setting runs in a fresh interpreter on the same N synthetic ~3.5 KB English-like documents
(bench_dedup_scale's generator) with the bundled sample tokenizer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_corpus  # noqa: E402

SETTINGS = {
    "4096 docs (before)": {"batch_size": 4096, "max_batch_chars": 10**12},
    "4096 docs / 250k chars (default)": {},
    "64 docs": {"batch_size": 64, "max_batch_chars": 10**12},
}


def run_one(setting: str, n_docs: int) -> dict:
    import polars as pl
    from bench_dedup_scale import base_text

    from dataplatform.core.tokenizer_utils import count_tokens, load_tokenizer
    from dataplatform.stages.mix import default_tokenizer_path

    texts = pl.Series([base_text(0, i) for i in range(n_docs)])
    tokenizer = load_tokenizer(default_tokenizer_path())
    before = real_corpus.peak_rss_mb()
    start = time.perf_counter()
    counts = count_tokens(texts, tokenizer, **SETTINGS[setting])
    return {
        "wall_s": time.perf_counter() - start,
        "tokens": int(counts.sum()),
        "mb": texts.str.len_bytes().sum() / 1e6,
        "rss_before_mb": before,
        "peak_mb": real_corpus.peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=4000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.docs)))
        return
    print(f"### count_tokens — {real_corpus.machine()}; load average at start {os.getloadavg()[0]:.1f}")
    print(f"### command: python benchmarks/bench_token_counting.py --docs {args.docs}")
    print()
    print("| batches of | docs/s | MB/s | tokens/s | peak RSS MB (before counting) |")
    print("|---|---:|---:|---:|---:|")
    tokens = set()
    for setting in SETTINGS:
        out = subprocess.run(
            [sys.executable, __file__, "--child", setting, "--docs", str(args.docs)], check=True, capture_output=True, text=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        tokens.add(r["tokens"])
        print(
            f"| {setting} | {args.docs / r['wall_s']:,.0f} | {r['mb'] / r['wall_s']:.2f} | {r['tokens'] / r['wall_s']:,.0f} | "
            f"{r['peak_mb']:.0f} ({r['rss_before_mb']:.0f}) |",
            flush=True,
        )
    assert len(tokens) == 1, f"settings counted differently: {tokens}"


if __name__ == "__main__":
    main()
