"""Benchmark decontamination: ``eval_benchmarks`` (n-gram index) and ``decontaminated`` per snapshot.

Training documents that share a long n-gram (default 13 words) with any benchmark item are
dropped as ``contamination:<benchmark>`` or have the overlapping span cut, so no evaluation
split is trusted on leaked text.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl

from dataplatform.core.decontamination import BenchmarkNgramIndex, decontaminate, load_benchmark_items
from dataplatform.core.schemas import DECONTAMINATED, conform
from dataplatform.io.datasets import DatasetStore
from dataplatform.stages.dedup import DEDUPLICATED_ASSET, REWRITE_POOL_TABLE
from dataplatform.stages.filtering import DROPPED_TABLE
from dataplatform.stages.ingest import StageReport
from dataplatform.stages.scoring import UNPARTITIONED

EVAL_BENCHMARKS_ASSET = "eval_benchmarks"
DECONTAMINATED_ASSET = "decontaminated"
ITEMS_TABLE = "items"
NGRAM_TABLE = "ngram_index"
BENCHMARK_SUFFIXES = (".jsonl", ".json", ".parquet")


def benchmark_files(path: str | Path) -> list[Path]:
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"benchmarks path: no such file or folder: {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(BENCHMARK_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"benchmarks path: no {'/'.join(BENCHMARK_SUFFIXES)} files under {root}")
    return files


def build_benchmark_index(files: list[Path], n: int = 13, text_fields: tuple[str, ...] | None = None) -> tuple[pl.DataFrame, BenchmarkNgramIndex]:
    kwargs = {"text_fields": text_fields} if text_fields else {}
    items = load_benchmark_items(files, **kwargs)
    return items, BenchmarkNgramIndex.build(items, n=n)


def materialize_eval_benchmarks(store: DatasetStore, path: str | Path, n: int = 13, text_fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    files = benchmark_files(path)
    items, index = build_benchmark_index(files, n, text_fields)
    counts = dict(sorted(items["benchmark"].value_counts().iter_rows()))
    with store.write_partition(EVAL_BENCHMARKS_ASSET, UNPARTITIONED) as writer:
        writer.write_table(ITEMS_TABLE, items.to_arrow())
        writer.write_table(NGRAM_TABLE, index.to_arrow())
        metadata = {"items": items.height, "items_per_benchmark": counts, "ngram_n": n, "ngrams": int(len(index.hashes)),
                    "short_items": index.short_items, "files": [p.name for p in files]}
        writer.commit(metadata)
    return metadata


def load_benchmark_index(store: DatasetStore) -> BenchmarkNgramIndex:
    return BenchmarkNgramIndex.from_arrow(store.read_table(EVAL_BENCHMARKS_ASSET, UNPARTITIONED, NGRAM_TABLE))


def decontaminate_partition(store: DatasetStore, snapshot: str, source_asset: str = DEDUPLICATED_ASSET,
                            benchmarks_path: str | Path | None = None, mode: str = "drop", n: int = 13) -> StageReport:
    """Decontaminate the kept documents and the REWIRE pool of ``source_asset``/``snapshot``.

    With ``benchmarks_path`` the n-gram index is built from those files (CLI use); otherwise the
    committed ``eval_benchmarks`` index is used.
    """
    started = time.perf_counter()
    index = build_benchmark_index(benchmark_files(benchmarks_path), n)[1] if benchmarks_path else load_benchmark_index(store)
    report = StageReport("decontaminated", snapshot)
    hits: dict[str, int] = {}
    with store.write_partition(DECONTAMINATED_ASSET, snapshot) as writer:
        dropped_parts = []
        for table in ("data", REWRITE_POOL_TABLE):
            frame = store.read_frame(source_asset, snapshot, table)
            if frame.is_empty():
                writer.write_table(table, DECONTAMINATED.empty_table())
                continue
            result = decontaminate(frame, index, mode=mode)
            newly = result["drop_reason"].is_not_null() & result["contamination_benchmark"].is_not_null()
            cut = result.filter(pl.col("contamination_cut_chars").fill_null(0) > 0) if "contamination_cut_chars" in result.columns else None
            for name, count in result.filter(result["contamination_benchmark"].is_not_null())["contamination_benchmark"].value_counts().iter_rows():
                hits[name] = hits.get(name, 0) + int(count)
            kept = result.filter(~newly)
            dropped_parts.append(result.filter(newly))
            writer.write_table(table, conform(kept.to_arrow(), DECONTAMINATED))
            report.rows_in += frame.height
            if table == "data":
                report.rows_out = kept.height
            if cut is not None:
                report.extra["cut_documents"] = report.extra.get("cut_documents", 0) + cut.height
        dropped = pl.concat(dropped_parts, how="diagonal_relaxed") if dropped_parts else pl.DataFrame()
        writer.write_table(DROPPED_TABLE, conform(dropped.to_arrow(), DECONTAMINATED) if dropped.height else DECONTAMINATED.empty_table())
        report.drop_counts = dict(sorted(dropped["drop_reason"].value_counts().iter_rows())) if dropped.height else {}
        report.bytes_in = store.table_bytes(source_asset, snapshot)
        report.shards = 1
        report.wall_seconds = time.perf_counter() - started
        report.extra.update({"contamination_hits": dict(sorted(hits.items())), "mode": mode, "ngram_n": index.n,
                             "benchmarks": list(index.benchmarks)})
        writer.commit(report.as_metadata())
    return report
