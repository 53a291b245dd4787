"""Rules for the benchmarks, ``decontaminated``, ``eval_splits`` and ``contamination_audit`` (no Dagster here)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl

from dataplatform import names
from dataplatform.checks.frames import previous_version, read_columns, read_version_table
from dataplatform.checks.outcome import CheckOutcome, outcome, sample_values
from dataplatform.core.decontamination import BenchmarkNgramIndex, count_overlaps, validate_benchmark_files
from dataplatform.core.eval_splits import hash_split
from dataplatform.io.datasets import DatasetStore
from dataplatform.stages.decontamination import load_benchmark_index

UNPARTITIONED = names.UNPARTITIONED


# ------------------------------------------------------------------------------------ benchmarks
def benchmark_files_valid(path: str | Path, text_fields: tuple[str, ...], n: int) -> CheckOutcome:
    """Every benchmark file at ``path`` parses, has at least one item, and every item has text."""
    try:
        summary = validate_benchmark_files(path, text_fields=text_fields, n=n)
    except (FileNotFoundError, ValueError) as exc:  # BenchmarkFileError is a ValueError
        return outcome("", [str(exc)], {"path": str(path)})
    problems = [f"{Path(f.path).name}: no items" for f in summary.files if not f.items]
    problems += [
        f"{Path(f.path).name}: {f.items_without_text} item(s) without text" for f in summary.files if f.items_without_text
    ]
    return outcome(summary.describe(), problems, summary.to_dict())


def benchmark_items_complete(store: DatasetStore) -> CheckOutcome:
    """Every committed benchmark item has non-empty text and an id unique within its benchmark;
    no benchmark (and no benchmark file) is empty; item counts agree with the recorded ones."""
    manifest = store.require_manifest(names.EVAL_BENCHMARKS, UNPARTITIONED)
    items = read_columns(store, names.EVAL_BENCHMARKS, UNPARTITIONED, names.ITEMS, ["benchmark", "item_id", "text"])
    problems = []
    no_text = items.filter(pl.col("text").fill_null("").str.strip_chars() == "")
    if no_text.height:
        problems.append(f"{no_text.height} item(s) without text: {sample_values(no_text['item_id'].to_list())}")
    doubled = items.filter(pl.struct("benchmark", "item_id").is_duplicated())
    if doubled.height:
        problems.append(f"{doubled.height} item(s) share an id: {sample_values(doubled['item_id'].unique().sort().to_list())}")
    counts = dict(items.group_by("benchmark").len().iter_rows())
    recorded = manifest["metadata"].get("items_per_benchmark", {})
    empty = sorted({Path(f).stem for f in manifest["metadata"].get("files", [])} - set(counts))
    empty += sorted(b for b, c in recorded.items() if not c and b not in empty)
    if empty or not items.height:
        problems.append(f"empty benchmark(s): {sample_values(empty) or 'every benchmark'}")
    if recorded and recorded != counts:
        problems.append(f"item counts {counts} differ from the recorded {recorded}")
    return outcome(
        f"{items.height} items in {len(counts)} benchmark(s), all with text",
        problems,
        {"items_per_benchmark": counts, "items_without_text": no_text.height},
    )


def ngram_index_consistent(store: DatasetStore) -> CheckOutcome:
    """The committed n-gram index is exactly the index of the committed items: same n, same number
    of n-grams as recorded, same hashes when rebuilt from the items."""
    meta = store.require_manifest(names.EVAL_BENCHMARKS, UNPARTITIONED)["metadata"]
    items = read_columns(store, names.EVAL_BENCHMARKS, UNPARTITIONED, names.ITEMS, ["benchmark", "text"])
    stored = load_benchmark_index(store)
    n = int(meta.get("ngram_n", stored.n))
    rebuilt = BenchmarkNgramIndex.build(items.with_columns(pl.col("text").fill_null("")), n=n)
    problems = []
    if stored.n != n:
        problems.append(f"index built with n={stored.n}, recorded n={n}")
    if meta.get("ngrams") is not None and meta["ngrams"] != len(stored):
        problems.append(f"index has {len(stored)} n-grams, {meta['ngrams']} recorded")
    if len(rebuilt) != len(stored) or not np.array_equal(rebuilt.hashes, stored.hashes):
        problems.append(f"rebuilding from the items gives {len(rebuilt)} n-grams, the index has {len(stored)}")
    if items.height and not len(stored) and items.height > sum(stored.short_items.values()):
        problems.append("items long enough to index but the index is empty")
    return outcome(
        f"{len(stored)} {n}-grams, consistent with {items.height} items",
        problems,
        {"ngrams": len(stored), "rebuilt_ngrams": len(rebuilt), "ngram_n": n},
    )


def no_benchmark_overlap(store: DatasetStore, asset: str, partition: str, tables: tuple[str, ...]) -> CheckOutcome:
    """No kept row of ``tables`` shares an n-gram with any benchmark item of the committed index."""
    index = load_benchmark_index(store)
    overlaps = {b: 0 for b in index.benchmarks}
    rows = 0
    for table in tables:
        for key in store.shard_keys(asset, partition, table):
            with store.object_store.readable_path(key) as path:
                shard = pl.read_parquet(path)
            rows += shard.height
            for benchmark, count in count_overlaps(shard, index).items():
                overlaps[benchmark] += count
    problems = [f"{count} n-gram position(s) shared with {b}" for b, count in sorted(overlaps.items()) if count]
    return outcome(
        f"{rows} rows share no {index.n}-gram with {len(index.benchmarks)} benchmark(s)",
        problems,
        {"overlaps": overlaps, "rows": rows, "ngram_n": index.n},
    )


# ------------------------------------------------------------------------------------ eval splits
def split_frames(store: DatasetStore, version: str | None = None) -> dict[str, pl.DataFrame]:
    """``doc_id`` of each split table, of the committed version or of an older ``version``."""
    if version is None:
        return {s: read_columns(store, names.EVAL_SPLITS, UNPARTITIONED, s, ["doc_id"]) for s in names.SPLITS}
    return {s: read_version_table(store, names.EVAL_SPLITS, UNPARTITIONED, version, s, ["doc_id"]) for s in names.SPLITS}


def _assignment(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return pl.concat([f.select("doc_id", pl.lit(s).alias("split")) for s, f in frames.items()])


def splits_disjoint(store: DatasetStore) -> CheckOutcome:
    """No document is in two splits (or twice in one), and every split document is a committed
    ``decontaminated`` document (curated, decontaminated text only)."""
    assigned = _assignment(split_frames(store))
    doubled = assigned.filter(pl.col("doc_id").is_duplicated())["doc_id"].unique().sort().to_list()
    curated = pl.concat(
        [read_columns(store, names.DECONTAMINATED, s, names.DATA, ["doc_id"]) for s in store.partitions(names.DECONTAMINATED)]
        or [pl.DataFrame(schema={"doc_id": pl.String})]
    )
    strangers = assigned.join(curated, on="doc_id", how="anti")["doc_id"].to_list()
    problems = []
    if doubled:
        problems.append(f"{len(doubled)} document(s) in more than one split: {sample_values(doubled)}")
    if strangers:
        problems.append(
            f"{len(strangers)} split document(s) are not decontaminated documents: {sample_values(sorted(strangers))}"
        )
    return outcome(
        f"{assigned.height} documents, each in exactly one split",
        problems,
        {"documents": assigned.height, "in_several_splits": len(doubled), "not_curated": len(strangers)},
    )


def _expected_splits(meta: dict) -> dict[str, float]:
    if meta.get("mode") == "temporal":
        return {"train": 1.0, "test": 1.0}  # shares depend on the snapshots, both must be non-empty
    return {k: float(v) for k, v in meta.get("fractions", {}).items()}


def every_split_non_empty(store: DatasetStore) -> CheckOutcome:
    """Every split the configuration asks for (fraction > 0; temporal mode: train and test) has documents."""
    meta = store.require_manifest(names.EVAL_SPLITS, UNPARTITIONED)["metadata"]
    counts = {s: f.height for s, f in split_frames(store).items()}
    total = sum(counts.values())
    empty = {s: share for s, share in _expected_splits(meta).items() if share > 0 and not counts.get(s)}
    problems = [
        f"split {s!r} is empty: {total} documents x {share:g} = {share * total:.1f} expected "
        f"({meta.get('mode')} mode; raise its fraction or add snapshots)"
        for s, share in empty.items()
    ]
    return outcome(", ".join(f"{s} {c}" for s, c in counts.items()), problems, {"counts": counts, "mode": meta.get("mode")})


def fractions_match_config(store: DatasetStore, sigmas: float) -> CheckOutcome:
    """Hash mode: each split's document count is within ``sigmas`` binomial standard deviations (and
    at least one document) of ``fraction x total``. Temporal mode has no fractions (passes, says so)."""
    meta = store.require_manifest(names.EVAL_SPLITS, UNPARTITIONED)["metadata"]
    counts = {s: f.height for s, f in split_frames(store).items()}
    if meta.get("mode") == "temporal":
        return outcome("temporal mode: splits follow snapshots, not fractions", [], {"counts": counts})
    total = sum(counts.values())
    problems, table = [], {}
    for split, fraction in meta.get("fractions", {}).items():
        expected = fraction * total
        tolerance = max(sigmas * math.sqrt(total * fraction * (1 - fraction)), 1.0)
        table[split] = {"count": counts.get(split, 0), "expected": round(expected, 2), "tolerance": round(tolerance, 2)}
        if abs(counts.get(split, 0) - expected) > tolerance:
            problems.append(f"{split}: {counts.get(split, 0)} documents, expected {expected:.1f} +- {tolerance:.1f}")
    return outcome(f"split sizes within {sigmas:g} sigma of the fractions", problems, {"splits": table, "total": total})


def no_document_moved_split(store: DatasetStore) -> CheckOutcome:
    """No document changed split since the previous committed version (while it is retained).

    Hash mode: a move under the same salt and fractions is a bug (error); when the previous version's
    assignment does not follow the current salt and fractions, the configuration changed on purpose
    and moves are reported as a warning. Temporal mode: test -> train moves are by design (a newer
    snapshot became the test set); any other move is an error.
    """
    previous = previous_version(store, names.EVAL_SPLITS, UNPARTITIONED)
    if previous is None:
        return outcome("no previous version in storage to compare with", [], {"previous_version": None})
    meta = store.require_manifest(names.EVAL_SPLITS, UNPARTITIONED)["metadata"]
    before = _assignment(split_frames(store, previous))
    now = _assignment(split_frames(store))
    moved = before.join(now, on="doc_id", suffix="_now").filter(pl.col("split") != pl.col("split_now"))
    if meta.get("mode") == "temporal":
        moved = moved.filter(~((pl.col("split") == "test") & (pl.col("split_now") == "train")))
    details = {
        "previous_version": previous,
        "moved": moved.height,
        "compared": before.height,
        "moves": dict(
            moved.group_by("split", "split_now").len().select(pl.format("{}->{}", "split", "split_now"), "len").iter_rows()
        ),
    }
    if not moved.height:
        return outcome(f"no document moved split since version {previous}", [], details)
    problem = [
        f"{moved.height} document(s) moved split since version {previous}: {sample_values(moved['doc_id'].sort().to_list())}"
    ]
    if meta.get("mode") != "temporal" and before.height:
        replay = hash_split(before["doc_id"], meta.get("fractions", {}), salt=meta.get("salt", ""))
        if (replay != before["split"]).any():
            details["configuration_changed"] = True
            return outcome(
                "",
                [
                    problem[0] + " (salt or fractions changed since then: every eval result before "
                    "this version is on other documents)"
                ],
                details,
                severity="warn",
            )
    return outcome("", problem, details)


# ------------------------------------------------------------------------------ contamination audit
AUDIT_STATUSES = ("calibrated", "no_membership_signal", "not_calibrated")


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (exact for any n a benchmark has)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0 or p >= 1:
        return float(p >= 1)
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q for i in range(k, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def _calibration_problems(meta: dict) -> list[str]:
    """The member/non-member calibration is reported whole: AUC and its interval in [0, 1], both
    sets non-empty, and a status that agrees with the interval (``calibrated`` iff it excludes 0.5)."""
    status = meta.get("status")
    if status not in AUDIT_STATUSES:
        return [f"status {status!r} is not one of {list(AUDIT_STATUSES)}"]
    if status == "not_calibrated":
        return []
    auc, (low, high) = meta.get("auc"), (meta.get("auc_ci") or [None, None])
    problems = []
    if not meta.get("members") or not meta.get("non_members"):
        problems.append(f"calibrated on {meta.get('members')} members and {meta.get('non_members')} non-members")
    if any(v is None or not 0 <= v <= 1 for v in (auc, low, high)) or low > high:
        return [*problems, f"membership AUC {auc} with 95% interval {low}-{high} is not an interval in [0, 1]"]
    if (status == "calibrated") != (low > 0.5):
        problems.append(f"status {status} disagrees with the AUC interval {low}-{high}")
    return problems


def audit_complete(store: DatasetStore) -> CheckOutcome:
    """The Min-K% audit is complete: a valid status; when calibrated, the members-vs-non-members AUC
    with its confidence interval in [0, 1] and a status that agrees with it; every committed benchmark
    audited, with a finite score for every item the audit reports scoring."""
    meta = store.require_manifest(names.CONTAMINATION_AUDIT, UNPARTITIONED)["metadata"]
    audited = meta.get("per_benchmark", {})
    recorded = store.require_manifest(names.EVAL_BENCHMARKS, UNPARTITIONED)["metadata"].get("items_per_benchmark", {})
    scores = read_columns(store, names.CONTAMINATION_AUDIT, UNPARTITIONED, names.DATA, ["benchmark", "min_k_score"])
    scored = dict(scores.filter(pl.col("min_k_score").cast(pl.Float64).is_finite()).group_by("benchmark").len().iter_rows())
    problems = _calibration_problems(meta) + [f"{b}: not audited" for b in sorted(set(recorded) - set(audited))]
    for benchmark, row in sorted(audited.items()):
        items = row.get("items") or 0
        if not items or scored.get(benchmark, 0) != items:
            problems.append(f"{benchmark}: {scored.get(benchmark, 0)} finite item scores for {items} items")
    sampled = {
        b: f"{v.get('items')} of {recorded[b]}" for b, v in audited.items() if b in recorded and v.get("items") != recorded[b]
    }
    return outcome(
        f"{len(audited)} benchmark(s) audited ({meta.get('status')}, membership AUC {meta.get('auc')}, "
        f"95% CI {meta.get('auc_ci')})" + (f"; items sampled: {sampled}" if sampled else ""),
        problems,
        {
            "status": meta.get("status"),
            "auc": meta.get("auc"),
            "auc_ci": meta.get("auc_ci"),
            "members": meta.get("members"),
            "non_members": meta.get("non_members"),
            "per_benchmark": audited,
        },
    )


def benchmarks_not_likely_seen(store: DatasetStore, significance: float) -> CheckOutcome:
    """No benchmark is *likely seen* by the reference model. Judged only when the audit is
    ``calibrated`` (its members-vs-non-members AUC interval excludes 0.5): then an unseen benchmark
    has about ``false_positive_rate`` of its items flagged, and one with significantly more flags
    (one-sided binomial test at ``significance``) is likely seen. Without a membership signal the
    flags mean nothing and no benchmark is judged."""
    meta = store.require_manifest(names.CONTAMINATION_AUDIT, UNPARTITIONED)["metadata"]
    status, rate = meta.get("status"), meta.get("false_positive_rate")
    if status != "calibrated" or not rate:
        return outcome(
            f"not judged: audit {status} (membership AUC {meta.get('auc')}, 95% CI {meta.get('auc_ci')}), "
            "flags are no evidence of membership",
            [],
            {"status": status},
        )
    tests = {}
    for benchmark, row in sorted(meta.get("per_benchmark", {}).items()):
        items, flagged = int(row.get("items") or 0), int(row.get("flagged") or 0)
        tests[benchmark] = {
            "items": items,
            "flagged": flagged,
            "expected": round(rate * items, 2),
            "p_value": round(binomial_tail(flagged, items, rate), 6),
        }
    seen = {b: t for b, t in tests.items() if t["p_value"] < significance}
    problems = [
        f"{b} likely seen by the reference model: {t['flagged']} of {t['items']} items flagged, {t['expected']} "
        f"expected at a false-positive rate of {rate} (p = {t['p_value']:.2g})"
        for b, t in seen.items()
    ]
    return outcome(
        f"no benchmark likely seen (membership AUC {meta.get('auc')}, 95% CI {meta.get('auc_ci')})",
        problems,
        {"status": status, "per_benchmark": tests, "significance": significance, "false_positive_rate": rate},
    )
