"""Long seeded mutation fuzz of the WARC reader, with gzip bombs and peak memory.

    python benchmarks/fuzz_warc_reader.py [--mutants 5000] [--seed 1] [--limit-kb 64] [--bombs 6] [--bomb-mb 1024]

Inputs (real WARCs, one gzip member per record): the bundled sample crawl, the real crawl WARCs in
the pywb 2.10.0 sdist (``sample_archive/warcs/*.warc.gz``, fetched once into ``benchmarks/_data``)
and three real Common Crawl records (``tests/data``). Mutants and oracle are those of the seeded
test (``tests/warc_fuzz.py``: every member the mutant did not touch must come out exactly as in the
unmutated file), here over whole files. Then ``--bombs`` mutants each replace one member by a
gzip bomb (``--bomb-mb`` MiB from about 1/1000 of that in gzip, in turn: zeros with a true
Content-Length, zeros after a 100-byte Content-Length, line breaks after a 100-byte record), and
the process's peak RSS during them is compared with the payload limit.

Prints mutants, crashes, hangs, lost intact records, spurious rows, silent damage, the slowest
mutant and peak RSS; then the CPU time of framing files made only of fake record starts (linear,
not quadratic, in their number).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import io
import random
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import real_corpus  # noqa: E402
import warc_factory  # noqa: E402
import warc_fuzz  # noqa: E402

from dataplatform.core.warc_framing import iter_framed_records  # noqa: E402
from dataplatform.core.warc_records import WarcReadOptions  # noqa: E402
from dataplatform.sample_data import SAMPLE_CRAWL_ROOT  # noqa: E402

COMMONCRAWL_RECORDS = HERE.parent / "tests" / "data" / "commoncrawl-CC-MAIN-2025-33-records.warc.gz"


def sources() -> dict[str, list[bytes]]:
    paths = sorted(SAMPLE_CRAWL_ROOT.rglob("*.warc.gz")) + real_corpus.pywb_sample_warcs() + [COMMONCRAWL_RECORDS]
    return {path.name: warc_fuzz.split_members(path.read_bytes()) for path in paths}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Tally:
    def __init__(self) -> None:
        self.mutants = self.crashes = self.hangs = self.lost = self.spurious = self.silent = 0
        self.slowest = 0.0
        self.by_label: collections.Counter = collections.Counter()
        self.examples: list[str] = []

    def add(self, name: str, verdict: warc_fuzz.Verdict) -> None:
        self.mutants += 1
        self.crashes += verdict.crash is not None
        self.hangs += verdict.hang
        self.lost += verdict.lost
        self.spurious += verdict.spurious
        self.silent += verdict.silent_damage
        self.slowest = max(self.slowest, verdict.seconds)
        self.by_label[verdict.label.split("_")[0].split("=")[0].rstrip("+-0123456789")] += 1
        if (verdict.crash or verdict.hang or verdict.lost or verdict.spurious or verdict.silent_damage) and len(
            self.examples
        ) < 10:
            self.examples.append(f"{name}: {verdict.label} crash={verdict.crash} hang={verdict.hang} {verdict.problems[:2]}")


def bomb_mutants(found: dict[str, list[bytes]], count: int, bombs: list[bytes], seed: int):
    rng = random.Random(seed)
    names = sorted(found)
    for i in range(count):
        members = found[rng.choice(names)]
        k = rng.randrange(len(members))
        yield warc_fuzz.Mutant("gzip_bomb", members, k, bombs[i % len(bombs)])


def hostile_framing() -> list[tuple[str, bytes]]:
    """Files made of nothing but fake record starts: each costs the framing one resynchronisation."""
    return [
        ("300k `WARC/1.0` lines, no blank line, plain", b"WARC/1.0\r\n" * 300_000),
        (
            "300k headers with Content-Length 999999999, one gzip member",
            gzip.compress(b"WARC/1.0\r\nContent-Length: 999999999\r\n\r\n" * 300_000, 1),
        ),
        ("200k headers with Content-Length 5000000, plain", b"WARC/1.0\r\nContent-Length: 5000000\r\n\r\n" * 200_000),
        (
            "300k headers with Content-Length 100 and 2 bytes, one gzip member",
            gzip.compress(b"WARC/1.0\r\nContent-Length: 100\r\n\r\nxx\r\n" * 300_000, 1),
        ),
    ]


def time_hostile(limit: int) -> list[str]:
    rows = []
    for name, data in hostile_framing():
        started = time.process_time()
        items = sum(1 for _ in iter_framed_records(io.BytesIO(data), limit))
        seconds = time.process_time() - started
        rows.append(f"| {name} | {len(data) / 1e6:.1f} | {items} | {seconds:.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mutants", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit-kb", type=int, default=64, help="max_payload_bytes, in KiB")
    parser.add_argument("--bombs", type=int, default=6)
    parser.add_argument("--bomb-mb", type=int, default=1024)
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds before a mutant counts as a hang")
    args = parser.parse_args()
    options = WarcReadOptions(max_payload_bytes=args.limit_kb * 1024)
    found = sources()
    print(f"# WARC reader fuzz — {real_corpus.machine()} — {time.strftime('%Y-%m-%d %H:%M')}")
    print(
        f"# command: python benchmarks/fuzz_warc_reader.py --mutants {args.mutants} --seed {args.seed} "
        f"--limit-kb {args.limit_kb} --bombs {args.bombs} --bomb-mb {args.bomb_mb}"
    )
    print(
        f"# inputs: {len(found)} files, {sum(map(len, found.values()))} gzip members, "
        f"{sum(len(m) for ms in found.values() for m in ms) / 1e6:.1f} MB\n"
    )
    baseline = warc_fuzz.baseline_cache(options)
    for members in found.values():  # unmutated files read once up front, so RSS below is the reader's
        baseline(b"".join(members))
    bombs_data = [
        warc_factory.gzip_bomb_record("https://bomb.example/true-length", args.bomb_mb << 20),
        warc_factory.gzip_bomb_record("https://bomb.example/short-length", args.bomb_mb << 20, content_length=100),
        warc_factory.gzip_bomb_record("https://bomb.example/line-breaks", args.bomb_mb << 20, content_length=100, filler=b"\r\n"),
    ]
    started = time.perf_counter()
    tally = Tally()
    for name, mutant in warc_fuzz.mutants(found, args.mutants, args.seed, max_window=10**9):
        tally.add(name, warc_fuzz.judge(mutant, options, baseline, args.time_limit))
    rss_before_bombs = rss_mb()
    bombs = Tally()
    for mutant in bomb_mutants(found, args.bombs, bombs_data, args.seed):
        bombs.add("bomb", warc_fuzz.judge(mutant, options, baseline, args.time_limit))
    print("| phase | mutants | crashes | hangs | lost intact records | spurious | silent damage | slowest s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for phase, t, rss in (("mutations", tally, rss_before_bombs), (f"gzip bombs ({args.bomb_mb} MiB inflated)", bombs, rss_mb())):
        print(
            f"| {phase} | {t.mutants} | {t.crashes} | {t.hangs} | {t.lost} | {t.spurious} | {t.silent} | "
            f"{t.slowest:.2f} | {rss:.0f} |"
        )
    print(
        f"\nmax_payload_bytes = {options.max_payload_bytes}; peak RSS grew by "
        f"{rss_mb() - rss_before_bombs:.0f} MB during the bombs; wall {time.perf_counter() - started:.0f} s"
    )
    print("mutants by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.by_label.items())))
    for example in tally.examples + bombs.examples:
        print("  FAIL", example[:400])
    print("\nHostile framing (framing alone, CPU seconds; every fake record is one resynchronisation):\n")
    print("| input | MB | records + damage reported | CPU s |")
    print("|---|---:|---:|---:|")
    print("\n".join(time_hostile(options.max_payload_bytes)))


if __name__ == "__main__":
    main()
