"""Quality classifier training and scoring: ``filtered`` -> ``scored`` (+ REWIRE candidates).

Training (DCLM, Li et al. 2024): positives are curated reference text, negatives random
documents from the crawl that survived the heuristic filters. Scoring is two passes over the
partition so that "top 10%" means the top 10% of the snapshot, not of each shard: pass one
scores every shard (one float per document comes back), the selection is made on all scores
at once, pass two writes each shard split into high quality / rewrite candidates / dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from dataplatform.core.quality_classifier import (
    TrainedQualityClassifier,
    default_positives,
    load_quality_classifier,
    select_by_quality,
    train_quality_classifier,
)
from dataplatform.core.schemas import SCORED, conform
from dataplatform.execution.shard_executor import ShardExecutor
from dataplatform.io.datasets import DatasetStore, ShardSink, iter_shard_batches
from dataplatform.io.object_store import StoreLocation
from dataplatform.stages.filtering import DROPPED_TABLE, FILTERED_ASSET
from dataplatform.stages.ingest import StageReport

QUALITY_CLASSIFIER_ASSET = "quality_classifier"
SCORED_ASSET = "scored"
REWRITE_TABLE = "rewrite_candidates"
UNPARTITIONED = "unpartitioned"
BELOW_THRESHOLD = "quality:below_threshold"


# ------------------------------------------------------------------------------------- training
@dataclasses.dataclass(frozen=True)
class ClassifierTrainingOptions:
    positives_path: str | None = None  # text file, one document per line; None = bundled reference set
    max_negatives: int = 20_000
    seed: int = 0
    epoch: int = 10
    lr: float = 0.5
    word_ngrams: int = 2


def read_positives(path: str | None) -> list[str]:
    if not path:
        return default_positives()
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"positives_path: no file at {file}")
    lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"positives_path: {file} has no documents")
    return lines


def sample_negatives(store: DatasetStore, snapshots: list[str], max_rows: int, seed: int) -> list[str]:
    """A seeded random sample of kept ``filtered`` documents across the given snapshots."""
    frames = [store.scan(FILTERED_ASSET, s).select("doc_id", "text") for s in snapshots]
    if not frames:
        return []
    frame = pl.concat(frames).collect().sort("doc_id")
    if frame.height > max_rows:
        frame = frame.sample(n=max_rows, seed=seed, shuffle=False)
    return frame["text"].to_list()


def train_classifier(store: DatasetStore, options: ClassifierTrainingOptions) -> tuple[TrainedQualityClassifier, dict[str, Any]]:
    snapshots = store.partitions(FILTERED_ASSET)
    negatives = sample_negatives(store, snapshots, options.max_negatives, options.seed)
    if len(negatives) < 10:
        raise ValueError(f"quality_classifier needs >= 10 filtered documents as negatives, found {len(negatives)} "
                         f"in snapshots {snapshots}: materialize `filtered` first")
    positives = read_positives(options.positives_path)
    model = train_quality_classifier(positives, negatives, seed=options.seed, epoch=options.epoch, lr=options.lr,
                                     word_ngrams=options.word_ngrams)
    info = {"snapshots": snapshots, "positives": len(positives), "negatives": len(negatives)}
    return model, info


def materialize_quality_classifier(store: DatasetStore, options: ClassifierTrainingOptions = ClassifierTrainingOptions()) -> dict[str, Any]:
    started = time.perf_counter()
    model, info = train_classifier(store, options)
    metrics = model.metrics.to_dict() if model.metrics else {}
    with store.write_partition(QUALITY_CLASSIFIER_ASSET, UNPARTITIONED) as writer, tempfile.TemporaryDirectory() as tmp:
        bin_path = model.save(tmp)
        writer.add_file(bin_path)
        writer.add_file(bin_path.with_suffix(".json"))
        metadata = {
            "model_file": bin_path.name,
            "training_hash": model.training_hash,
            "metrics": metrics,
            "hyperparameters": model.hyperparameters,
            **info,
            "wall_seconds": round(time.perf_counter() - started, 3),
        }
        writer.commit(metadata)
    return metadata


@functools.lru_cache(maxsize=2)
def _cached_model(location: StoreLocation, bin_key: str, json_key: str) -> TrainedQualityClassifier:
    store = location.open()
    folder = Path(tempfile.mkdtemp(prefix="dataplatform-model-"))
    for key in (bin_key, json_key):
        with store.readable_path(key) as path:
            (folder / Path(key).name).write_bytes(Path(path).read_bytes())
    return load_quality_classifier(folder / Path(bin_key).name)


def load_committed_classifier(store: DatasetStore) -> tuple[StoreLocation, str, str]:
    manifest = store.require_manifest(QUALITY_CLASSIFIER_ASSET, UNPARTITIONED)
    name = manifest["metadata"]["model_file"]
    return (store.location, store.file_key(QUALITY_CLASSIFIER_ASSET, UNPARTITIONED, name),
            store.file_key(QUALITY_CLASSIFIER_ASSET, UNPARTITIONED, name.removesuffix(".bin") + ".json"))


# -------------------------------------------------------------------------------------- scoring
@dataclasses.dataclass(frozen=True)
class ScoringOptions:
    top_fraction: float = 0.10
    rewrite_band: tuple[float, float] = (0.10, 0.50)
    batch_rows: int = 5000

    def __post_init__(self) -> None:
        lo, hi = self.rewrite_band
        if not 0 < self.top_fraction <= 1:
            raise ValueError(f"top_fraction must be in (0, 1], got {self.top_fraction}")
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f"rewrite_band must satisfy 0 <= low <= high <= 1, got {self.rewrite_band}")


@dataclasses.dataclass(frozen=True)
class ScoreTask:
    source: StoreLocation
    filtered_key: str
    model: tuple[StoreLocation, str, str]
    batch_rows: int


def run_score_task(task: ScoreTask) -> np.ndarray:
    model = _cached_model(*task.model)
    parts = [model.score(pl.from_arrow(pa.Table.from_batches([b]))["text"])
             for b in iter_shard_batches(task.source, task.filtered_key, task.batch_rows, columns=["text"])]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class SplitTask:
    source: StoreLocation
    filtered_key: str
    scores: np.ndarray
    labels: tuple[str, ...]
    out: StoreLocation
    partition_prefix: str
    keys: dict[str, str]  # table -> shard key
    batch_rows: int


def run_split_task(task: SplitTask) -> dict[str, Any]:
    sinks = {table: ShardSink(task.out, key, SCORED, table, task.partition_prefix) for table, key in task.keys.items()}
    for sink in sinks.values():
        sink.__enter__()
    offset = 0
    try:
        for batch in iter_shard_batches(task.source, task.filtered_key, task.batch_rows):
            n = batch.num_rows
            frame = pl.from_arrow(pa.Table.from_batches([batch])).with_columns(
                pl.Series("quality_score", task.scores[offset : offset + n], dtype=pl.Float32, nan_to_null=True),
                pl.Series("quality_label", task.labels[offset : offset + n], dtype=pl.Utf8),
            )
            offset += n
            frame = frame.with_columns(
                pl.when(pl.col("quality_label") == "low_quality").then(pl.lit(BELOW_THRESHOLD)).otherwise(pl.col("drop_reason")).alias("drop_reason")
            )
            for table, label in (("data", "high_quality"), (REWRITE_TABLE, "rewrite_candidate"), (DROPPED_TABLE, "low_quality")):
                sinks[table].write(conform(frame.filter(pl.col("quality_label") == label).to_arrow(), SCORED))
    except BaseException as exc:
        for sink in sinks.values():
            sink.__exit__(type(exc), exc, exc.__traceback__)
        raise
    for sink in sinks.values():
        sink.__exit__(None, None, None)
    return {"shards": [s.info for s in sinks.values()]}


def score_histogram(scores: np.ndarray, bins: int = 10) -> list[tuple[str, int]]:
    counts, edges = np.histogram(scores[~np.isnan(scores)], bins=bins, range=(0.0, 1.0))
    return [(f"{edges[i]:.1f}-{edges[i + 1]:.1f}", int(c)) for i, c in enumerate(counts)]


def materialize_scored(store: DatasetStore, snapshot: str, executor: ShardExecutor, options: ScoringOptions = ScoringOptions()) -> StageReport:
    started = time.perf_counter()
    report = StageReport("scored", snapshot)
    model = load_committed_classifier(store)
    keys = store.shard_keys(FILTERED_ASSET, snapshot)
    per_shard = list(executor.map(run_score_task, [ScoreTask(store.location, k, model, options.batch_rows) for k in keys]))
    all_scores = np.concatenate(per_shard) if per_shard else np.zeros(0, dtype=np.float32)
    selection = select_by_quality(all_scores, top_fraction=options.top_fraction, rewrite_band=options.rewrite_band)
    labels = selection.labels.to_list()
    with store.write_partition(SCORED_ASSET, snapshot) as writer:
        for table in ("data", REWRITE_TABLE, DROPPED_TABLE):
            writer.declare_table(table, SCORED)
        tasks, offset = [], 0
        for i, (key, scores) in enumerate(zip(keys, per_shard)):
            tasks.append(SplitTask(store.location, key, scores, tuple(labels[offset : offset + len(scores)]), store.location,
                                   writer.prefix, {t: writer.shard_key(i, t) for t in ("data", REWRITE_TABLE, DROPPED_TABLE)},
                                   options.batch_rows))
            offset += len(scores)
        for result in executor.map(run_split_task, tasks):
            for shard in result["shards"]:
                writer.add(shard)
                report.bytes_out += shard.bytes if shard.table == "data" else 0
        report.rows_in = len(all_scores)
        report.rows_out = selection.n_high
        report.drop_counts = {BELOW_THRESHOLD: selection.n_low} if selection.n_low else {}
        report.bytes_in = store.table_bytes(FILTERED_ASSET, snapshot)
        report.shards = len(tasks)
        report.wall_seconds = time.perf_counter() - started
        valid = all_scores[~np.isnan(all_scores)]
        report.extra = {
            "rewrite_candidates": selection.n_rewrite,
            "high_quality_threshold": None if not np.isfinite(selection.threshold) else round(float(selection.threshold), 4),
            "rewrite_threshold": None if not np.isfinite(selection.rewrite_threshold) else round(float(selection.rewrite_threshold), 4),
            "quality_score_mean": round(float(valid.mean()), 4) if valid.size else None,
            "quality_score_histogram": dict(score_histogram(all_scores)),
            "classifier": Path(model[1]).name,
            "docs_per_s": round(report.rows_in / max(report.wall_seconds, 1e-9), 1),
        }
        writer.commit(report.as_metadata())
    return report
