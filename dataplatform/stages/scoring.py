"""Quality classifier training and scoring: ``filtered`` -> ``scored`` (+ REWIRE candidates).

Training (DCLM, Li et al. 2024): positives are curated reference text, negatives a seeded random
sample of crawl documents that survived the heuristic filters, drawn shard by shard (a hash of
``seed:doc_id`` decides), so no process ever holds more than the sample.

Scoring ranks the whole snapshot: "top 10%" means the top 10% of the snapshot, not of each shard,
with exactly the ranks :func:`~dataplatform.core.quality_classifier.select_by_quality` gives (score
descending, ties by row order, NaN last). The scores never meet in one process: each shard writes
its scores to a work file and reports a sparse histogram of their keys; two refinement passes find
the exact score and tied rows at each cut (:mod:`dataplatform.core.rank_selection`); a last pass
writes each shard split into high quality / rewrite candidates / dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from dataplatform import names
from dataplatform.core import rank_selection as rs
from dataplatform.core.default_quality_model import default_quality_model_path, load_default_quality_classifier
from dataplatform.core.quality_classifier import (
    TrainedQualityClassifier,
    default_positives,
    load_quality_classifier,
    train_quality_classifier,
)
from dataplatform.core.schemas import SCORED, conform
from dataplatform.execution.shard_executor import ShardExecutor
from dataplatform.io.datasets import DatasetStore, ShardSink, StoredFile, iter_shard_batches, store_file
from dataplatform.io.object_store import StoreLocation
from dataplatform.stages.runner import ProgressSink, ShardTask, StageReport, StageRun, TaskList, TaskResult, upstream_versions

BELOW_THRESHOLD = "quality:below_threshold"
MIN_NEGATIVES = 10


# ------------------------------------------------------------------------------------- training
@dataclasses.dataclass(frozen=True)
class ClassifierTrainingOptions:
    positives_path: str | None = None  # text file, one document per line; None = bundled reference set
    max_negatives: int = 20_000
    seed: int = 0
    epoch: int = 10
    lr: float = 0.5
    word_ngrams: int = 2
    # Too few filtered documents to train on (a first run on a few pages): "default" commits the
    # classifier shipped with the package and says so in the metadata; "error" fails.
    when_too_few: Literal["default", "error"] = "default"


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


def sample_key(seed: int, doc_id: str) -> int:
    """The seeded hash that decides which documents are sampled as negatives (smallest first)."""
    return xxhash.xxh3_64_intdigest(f"{seed}:{doc_id}".encode())


@dataclasses.dataclass(frozen=True)
class NegativesTask(ShardTask):
    source: StoreLocation
    filtered_key: str
    seed: int
    below: int  # keep documents whose sample key is below this (2**64 = all)
    out: StoreLocation
    sample_key: str


def run_negatives_task(task: NegativesTask) -> TaskResult:
    """Write this shard's candidates for the negative sample (key, doc_id, text) to a work file;
    only their sample keys come back (the driver picks the cut from keys, never from texts)."""
    parts = []
    for batch in iter_shard_batches(task.source, task.filtered_key, 5000, columns=["doc_id", "text"]):
        frame = pl.from_arrow(pa.Table.from_batches([batch]))
        keys = pl.Series("key", [sample_key(task.seed, d) for d in frame["doc_id"]], dtype=pl.UInt64)
        parts.append(frame.with_columns(keys).filter(pl.col("key") < task.below))
    chosen = pl.concat(parts) if parts else pl.DataFrame(schema=SAMPLE_SCHEMA)
    buffer = io.BytesIO()
    chosen.write_parquet(buffer, compression="zstd")
    task.out.open().put_bytes(task.sample_key, buffer.getvalue())
    return TaskResult(rows_in=chosen.height, payload={"key": task.sample_key, "sample_keys": chosen["key"].to_list()})


SAMPLE_SCHEMA = {"doc_id": pl.String, "text": pl.String, "key": pl.UInt64}


def sample_cut(sample_keys: Sequence[int], max_rows: int) -> int | None:
    """The largest sample key taken: the ``max_rows`` smallest keys (all, when fewer) are the
    sample. Documents sharing the cut key (one doc_id in two snapshots) are all taken."""
    if not sample_keys:
        return None
    ordered = np.sort(np.asarray(sample_keys, dtype=np.uint64))
    return int(ordered[min(max_rows, ordered.size) - 1])


def sample_negatives(run: StageRun, snapshots: Sequence[str], max_rows: int, seed: int) -> tuple[list[str], int | None, int]:
    """Draw a seeded random sample of at most ``max_rows`` kept ``filtered`` documents across
    snapshots: returns the per-shard sample files, the cut key and the sample size.

    Each shard writes the documents whose sample key falls below a bound chosen so that about
    twice ``max_rows`` pass in all; the driver reads only their keys and takes the ``max_rows``
    smallest. The texts stay in the files until the training task reads them.
    """
    store = run.store
    keys = [k for s in snapshots for k in store.shard_keys(names.FILTERED, s)]
    total = sum(store.require_manifest(names.FILTERED, s)["tables"].get(names.DATA, {}).get("rows", 0) for s in snapshots)
    below = 2**64 if total <= max_rows else min(2**64, int(2**64 * min(1.0, 2.0 * max_rows / total)))
    tasks = TaskList(
        keys,
        lambda i, key: NegativesTask(
            i, store.location, key, seed, below, store.location, run.work_key(f"negatives/part-{i:05d}.parquet")
        ),
    )
    sample_keys: list[int] = []

    def fold(result: TaskResult) -> str:  # the driver keeps the keys and file names, not the results
        sample_keys.extend(result.payload["sample_keys"])
        return result.payload["key"]

    files = run.map("sample", run_negatives_task, tasks, collect=False, fold=fold)
    cut = sample_cut(sample_keys, max_rows)
    size = 0 if cut is None else sum(1 for k in sample_keys if k <= cut)
    return files, cut, size


@dataclasses.dataclass(frozen=True)
class TrainClassifierTask(ShardTask):
    """Train the classifier on the sample files' documents with keys up to ``cut``, in a worker:
    the step's driver never holds the training texts or the fastText model."""

    store: StoreLocation
    sample_files: tuple[str, ...]
    cut: int
    positives_path: str | None
    options: ClassifierTrainingOptions
    out_prefix: str  # where the model files go (the version's files folder)


def run_train_classifier_task(task: TrainClassifierTask) -> TaskResult:
    store = task.store.open()
    frames = [pl.read_parquet(io.BytesIO(store.get_bytes(key))).filter(pl.col("key") <= task.cut) for key in task.sample_files]
    negatives = pl.concat(frames).sort("doc_id")["text"] if frames else pl.Series("text", [], dtype=pl.String)
    del frames
    positives = read_positives(task.positives_path)
    options = task.options
    model = train_quality_classifier(
        positives, negatives, seed=options.seed, epoch=options.epoch, lr=options.lr, word_ngrams=options.word_ngrams
    )
    with tempfile.TemporaryDirectory() as tmp:
        bin_path = model.save(tmp)
        files = [store_file(task.store, f"{task.out_prefix}/{p.name}", p) for p in (bin_path, bin_path.with_suffix(".json"))]
    return TaskResult(
        rows_in=len(positives) + negatives.len(),
        payload={
            "files": [dataclasses.asdict(f) for f in files],
            "model_file": bin_path.name,
            "training_hash": model.training_hash,
            "metrics": model.metrics.to_dict() if model.metrics else {},
            "hyperparameters": model.hyperparameters,
            "positives": len(positives),
            "negatives": negatives.len(),
        },
    )


def materialize_quality_classifier(
    store: DatasetStore,
    executor: ShardExecutor,
    options: ClassifierTrainingOptions = ClassifierTrainingOptions(),
    progress: ProgressSink | None = None,
) -> StageReport:
    snapshots = store.partitions(names.FILTERED)
    upstream = upstream_versions(store, [(names.FILTERED, s) for s in snapshots])
    with StageRun(
        store, names.QUALITY_CLASSIFIER, names.UNPARTITIONED, executor, config=options, upstream=upstream, progress=progress
    ) as run:
        if run.up_to_date:
            return run.report
        sample_files, cut, size = sample_negatives(run, snapshots, options.max_negatives, options.seed)
        if cut is None or size < MIN_NEGATIVES:
            too_few = f"only {size} filtered documents in {snapshots or 'no snapshot'} (< {MIN_NEGATIVES} to train on)"
            if options.when_too_few == "error":
                raise ValueError(f"quality_classifier: {too_few}; materialize `filtered` for more snapshots first")
            return commit_default_classifier(run, too_few)
        read_positives(options.positives_path)  # a missing or empty file fails here, naming the field
        task = TrainClassifierTask(
            0, store.location, tuple(sample_files), cut, options.positives_path, options, run.writer.files_prefix
        )
        (trained,) = run.map("train", run_train_classifier_task, [task], collect=False, isolated=True)
        info = dict(trained.payload)
        for stored in info.pop("files"):
            run.writer.register_file(StoredFile(**stored))
        run.report.rows_in = run.report.rows_out = info["positives"] + info["negatives"]
        return run.commit({**info, "snapshots": snapshots})


def commit_classifier(run: StageRun, model: TrainedQualityClassifier, info: dict[str, Any]) -> StageReport:
    """Store the model file and its sidecar with the version and publish them."""
    with tempfile.TemporaryDirectory() as tmp:
        bin_path = model.save(tmp)
        run.writer.add_file(bin_path)
        run.writer.add_file(bin_path.with_suffix(".json"))
    run.report.rows_in = info.get("positives", 0) + info.get("negatives", 0)
    run.report.rows_out = run.report.rows_in
    return run.commit(
        {
            "model_file": bin_path.name,
            "training_hash": model.training_hash,
            "metrics": model.metrics.to_dict() if model.metrics else {},
            "hyperparameters": model.hyperparameters,
            **info,
        }
    )


def commit_default_classifier(run: StageRun, reason: str) -> StageReport:
    """Publish the classifier shipped with the package (files copied as shipped)."""
    bin_path = default_quality_model_path()
    model = load_default_quality_classifier()
    run.writer.add_file(bin_path)
    run.writer.add_file(bin_path.with_suffix(".json"))
    return run.commit(
        {
            "model_file": bin_path.name,
            "training_hash": model.training_hash,
            "source": "default",
            "default_reason": reason,
            "metrics": model.metrics.to_dict() if model.metrics else {},
            "hyperparameters": model.hyperparameters,
            "snapshots": [],
            "positives": None,
            "negatives": None,
        }
    )


@functools.lru_cache(maxsize=2)
def cached_classifier(location: StoreLocation, bin_key: str, json_key: str) -> TrainedQualityClassifier:
    """The committed classifier, downloaded and loaded once per process."""
    store = location.open()
    folder = Path(tempfile.mkdtemp(prefix="dataplatform-model-"))
    for key in (bin_key, json_key):
        with store.readable_path(key) as path:
            (folder / Path(key).name).write_bytes(Path(path).read_bytes())
    return load_quality_classifier(folder / Path(bin_key).name)


def committed_classifier(store: DatasetStore) -> tuple[StoreLocation, str, str]:
    """(location, model key, sidecar key) of the committed classifier: what workers load."""
    manifest = store.require_manifest(names.QUALITY_CLASSIFIER, names.UNPARTITIONED)
    name = manifest["metadata"]["model_file"]
    return (
        store.location,
        store.file_key(names.QUALITY_CLASSIFIER, names.UNPARTITIONED, name),
        store.file_key(names.QUALITY_CLASSIFIER, names.UNPARTITIONED, name.removesuffix(".bin") + ".json"),
    )


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
class ScoreTask(ShardTask):
    source: StoreLocation
    filtered_key: str
    model: tuple[StoreLocation, str, str]
    batch_rows: int
    scores_key: str


def run_score_task(task: ScoreTask) -> TaskResult:
    """Score one shard; scores go to a work file, their key histogram and moments come back."""
    model = cached_classifier(*task.model)
    parts = [
        model.score(pl.from_arrow(pa.Table.from_batches([b]))["text"])
        for b in iter_shard_batches(task.source, task.filtered_key, task.batch_rows, columns=["text"])
    ]
    scores = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)
    _write_scores(task.source, task.scores_key, scores)
    valid = scores[~np.isnan(scores)].astype(np.float64)
    histogram, _ = np.histogram(valid, bins=10, range=(0.0, 1.0))
    return TaskResult(
        rows_in=len(scores),
        payload={
            "high_buckets": rs.sparse_histogram(rs.score_keys(scores) >> np.uint32(rs.HIGH_BITS)),
            "sum": float(valid.sum()),
            "valid": int(valid.size),
            "histogram": histogram.tolist(),
        },
    )


def _write_scores(location: StoreLocation, key: str, scores: np.ndarray) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"quality_score": scores}), buffer, compression="zstd")
    location.open().put_bytes(key, buffer.getvalue())


def _read_scores(location: StoreLocation, key: str) -> np.ndarray:
    raw = location.open().get_bytes(key)
    return pq.read_table(io.BytesIO(raw)).column("quality_score").to_numpy().astype(np.float32)


@dataclasses.dataclass(frozen=True)
class RefineTask(ShardTask):
    """Pass 2 and 3 of locating the cuts: key histograms inside chosen buckets, or tied rows."""

    scores: StoreLocation
    scores_key: str
    row_offset: int
    high_buckets: tuple[int, ...] = ()  # pass 2: histogram of the low bits inside these buckets
    exact_keys: tuple[int, ...] = ()  # pass 3: global row numbers of rows with exactly these keys


def run_refine_task(task: RefineTask) -> TaskResult:
    keys = rs.score_keys(_read_scores(task.scores, task.scores_key))
    payload: dict[str, Any] = {}
    for bucket in task.high_buckets:
        inside = keys[(keys >> np.uint32(rs.HIGH_BITS)) == bucket]
        payload[f"bucket:{bucket}"] = rs.sparse_histogram(inside)
    for key in task.exact_keys:
        payload[f"key:{key}"] = (np.flatnonzero(keys == key) + task.row_offset).tolist()
    return TaskResult(payload=payload)


def _rank_count(fraction: float, n: int) -> int:
    # Same rounding as select_by_quality: half up, tolerant of binary fractions (0.1 * 30).
    return min(n, int(np.floor(fraction * n + 0.5 + 1e-9)))


def locate_cuts(
    run: StageRun,
    rows: Sequence[int],
    score_tasks: Sequence[ScoreTask],
    ranks: Sequence[int],
    high_buckets: dict[int, int],
) -> dict[int, rs.Cut | None]:
    """The exact cut (score key and row) at each rank in ``ranks`` (counts of rows above the cut);
    ``rows``: rows scored per task; ``high_buckets``: the merged first-pass histogram of every
    shard's score keys. Each pass merges its tasks' answers as they arrive: the driver holds the
    merged histogram and tied rows, not a result per shard."""
    offsets = np.cumsum([0, *rows])[:-1].tolist()
    wanted = sorted({k for k in ranks if k > 0})
    cuts: dict[int, rs.Cut | None] = {k: None for k in ranks if k <= 0}
    if not wanted:
        return cuts
    first = [rs.locate(high_buckets, k - 1) for k in wanted]

    def refine(phase: str, prefix: str, empty: type, merge: Callable[[Any, Any], None], **kwargs) -> dict[int, Any]:
        merged: dict[int, Any] = {}

        def fold(result: TaskResult) -> None:
            for name, value in result.payload.items():
                merge(merged.setdefault(int(name.removeprefix(prefix)), empty()), value)

        tasks = TaskList(offsets, lambda i, off: RefineTask(i, score_tasks[i].source, score_tasks[i].scores_key, off, **kwargs))
        run.map(phase, run_refine_task, tasks, collect=False, fold=fold)
        return merged

    inside = refine("cut-buckets", "bucket:", dict, rs.add_histogram, high_buckets=tuple(sorted({loc.bucket for loc in first})))
    exact = [rs.locate(inside.get(loc.bucket, {}), loc.offset) for loc in first]
    tied = refine("cut-ties", "key:", list, list.extend, exact_keys=tuple(sorted({loc.bucket for loc in exact})))
    for k, loc in zip(wanted, exact):
        cuts[k] = rs.cut_from_ties(loc.bucket, loc.offset, tied.get(loc.bucket, []), k - 1)
    return cuts


@dataclasses.dataclass(frozen=True)
class SplitTask(ShardTask):
    source: StoreLocation
    filtered_key: str
    scores_key: str
    row_offset: int
    cuts: tuple[rs.Cut | None, rs.Cut | None, rs.Cut | None]  # ranks < k_high, < k_lo, < k_hi
    out: StoreLocation
    partition_prefix: str
    keys: tuple[tuple[str, str], ...]  # (table, shard key)
    batch_rows: int


def run_split_task(task: SplitTask) -> TaskResult:
    scores = _read_scores(task.source, task.scores_key)
    labels = rs.band_labels(rs.score_keys(scores), np.arange(len(scores)) + task.row_offset, task.cuts, names.QUALITY_LABELS)
    result = TaskResult(rows_in=len(scores))
    tables = {names.HIGH_QUALITY: names.DATA, names.REWRITE_CANDIDATE: names.REWRITE_CANDIDATES, names.LOW_QUALITY: names.DROPPED}
    keys = dict(task.keys)
    offset = 0
    sinks = {t: ShardSink(task.out, keys[t], SCORED, t, task.partition_prefix) for t in tables.values()}
    with sinks[names.DATA], sinks[names.REWRITE_CANDIDATES], sinks[names.DROPPED]:
        for batch in iter_shard_batches(task.source, task.filtered_key, task.batch_rows):
            n = batch.num_rows
            frame = pl.from_arrow(pa.Table.from_batches([batch])).with_columns(
                pl.Series("quality_score", scores[offset : offset + n], dtype=pl.Float32, nan_to_null=True),
                pl.Series("quality_label", labels[offset : offset + n].tolist(), dtype=pl.Utf8),
            )
            offset += n
            frame = frame.with_columns(
                pl.when(pl.col("quality_label") == names.LOW_QUALITY)
                .then(pl.lit(BELOW_THRESHOLD))
                .otherwise(pl.col("drop_reason"))
                .alias("drop_reason")
            )
            for label, table in tables.items():
                sinks[table].write(conform(frame.filter(pl.col("quality_label") == label).to_arrow(), SCORED))
    result.shards = [sinks[t].info for t in tables.values()]
    counts = {label: int((labels == label).sum()) for label in tables}
    result.rows_out = counts[names.HIGH_QUALITY]
    result.routed = {names.REWRITE_CANDIDATES: counts[names.REWRITE_CANDIDATE]}
    result.drop_counts = {BELOW_THRESHOLD: counts[names.LOW_QUALITY]}
    return result


@dataclasses.dataclass
class ScoreTotals:
    """The score tasks' answers merged as they arrive (:meth:`add` is the map's ``fold``): the
    driver keeps these sums and the rows per task, not a result per shard."""

    high_buckets: dict[int, int] = dataclasses.field(default_factory=dict)
    total: float = 0.0
    valid: int = 0
    histogram: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(10, dtype=np.int64))

    def add(self, result: TaskResult) -> int:
        rs.add_histogram(self.high_buckets, result.payload["high_buckets"])
        self.total += result.payload["sum"]
        self.valid += result.payload["valid"]
        self.histogram += np.asarray(result.payload["histogram"], dtype=np.int64)
        return result.rows_in

    def summary(self) -> dict[str, Any]:
        edges = np.linspace(0.0, 1.0, 11)
        return {
            "quality_score_mean": round(self.total / self.valid, 4) if self.valid else None,
            "quality_score_histogram": {f"{edges[i]:.1f}-{edges[i + 1]:.1f}": int(c) for i, c in enumerate(self.histogram)},
        }


def materialize_scored(
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor,
    options: ScoringOptions = ScoringOptions(),
    progress: ProgressSink | None = None,
    source: str = names.FILTERED,
) -> StageReport:
    """Score ``source``'s kept documents: ``filtered``, or ``toxicity`` (the same documents with
    toxicity scores, minus those its policy dropped)."""
    model = committed_classifier(store)
    upstream = upstream_versions(store, [(source, snapshot), (names.QUALITY_CLASSIFIER, names.UNPARTITIONED)])
    with StageRun(store, names.SCORED, snapshot, executor, config=options, upstream=upstream, progress=progress) as run:
        if run.up_to_date:
            return run.report
        for table in (names.DATA, names.REWRITE_CANDIDATES, names.DROPPED):
            run.declare(table, SCORED)
        keys = store.shard_keys(source, snapshot)
        score_tasks = TaskList(
            keys,
            lambda i, k: ScoreTask(i, store.location, k, model, options.batch_rows, run.work_key(f"scores/part-{i:05d}.parquet")),
        )
        totals = ScoreTotals()  # a score result is ~40 KB: merged as it arrives, not kept
        rows = run.map("score", run_score_task, score_tasks, collect=False, fold=totals.add)
        n = sum(rows)
        lo, hi = options.rewrite_band
        k_high, k_lo, k_hi = (_rank_count(f, n) for f in (options.top_fraction, lo, hi))
        cuts = locate_cuts(run, rows, score_tasks, (k_high, k_lo, k_hi), totals.high_buckets)
        offsets = np.cumsum([0, *rows])[:-1].tolist()
        tables = (names.DATA, names.REWRITE_CANDIDATES, names.DROPPED)
        run.map_into_report(
            "split",
            run_split_task,
            TaskList(
                offsets,
                lambda i, off: SplitTask(
                    i,
                    store.location,
                    score_tasks[i].filtered_key,
                    score_tasks[i].scores_key,
                    off,
                    (cuts[k_high], cuts[k_lo], cuts[k_hi]),
                    store.location,
                    run.prefix,
                    tuple((tb, run.shard_key(i, tb)) for tb in tables),
                    options.batch_rows,
                ),
            ),
        )
        run.report.bytes_in = store.table_bytes(source, snapshot)
        rewrite_cut = cuts[k_hi] if k_hi > max(k_lo, k_high) else None
        return run.commit(
            {
                "rewrite_candidates": run.report.routed.get(names.REWRITE_CANDIDATES, 0),
                "high_quality_threshold": round(cuts[k_high].score, 4) if cuts[k_high] else None,
                "rewrite_threshold": round(rewrite_cut.score, 4) if rewrite_cut else None,
                **totals.summary(),
                "classifier": Path(model[1]).name,
            }
        )
