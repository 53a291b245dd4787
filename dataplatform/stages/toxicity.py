"""Toxicity stage, shard by shard: ``filtered`` -> ``toxicity`` (scored documents) + ``dropped``.

Every kept document of ``filtered`` comes out with a score per dimension of the configured scorer
(``toxicity_<dimension>``) and their maximum (``toxicity_score``). Under the default policy
(``score_only``) all of them are in ``data``, in ``filtered``'s order, so the stages that read
``toxicity`` instead of ``filtered`` produce the same output as before; under
``drop_above_threshold`` documents over a dimension's threshold go to ``dropped`` with
``toxicity:<dimension>``. Shard ``i`` comes from ``filtered`` shard ``i``.

The metadata carries what a person needs to choose a policy (Longpre et al. 2023: no threshold is
right for every use): a histogram per dimension, the share above each configured threshold, and
for a grid of thresholds how many documents and tokens each cut would remove.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from dataplatform import names
from dataplatform.core import toxicity as tox
from dataplatform.core.schemas import FILTERED, conform
from dataplatform.core.tokenizer_utils import count_tokens, load_tokenizer
from dataplatform.execution.shard_executor import ShardExecutor
from dataplatform.io.datasets import DatasetStore, ShardSink, iter_shard_batches
from dataplatform.io.object_store import StoreLocation
from dataplatform.stages.runner import (
    EXAMPLES_PER_REASON,
    ProgressSink,
    ShardTask,
    StageReport,
    StageRun,
    TaskResult,
    add_counts,
    upstream_versions,
)

EXAMPLE_CHARS = 160


def default_tokenizer_path() -> str:
    """The bundled sample BPE tokenizer: what "tokens removed" is counted in unless configured."""
    from dataplatform.sample_data import SAMPLE_DATA_DIR

    return str(SAMPLE_DATA_DIR / "tokenizer" / "sample-bpe-4k.json")


@dataclasses.dataclass(frozen=True)
class ToxicityOptions:
    scorer: tox.ScorerSpec = tox.ScorerSpec()
    policy: tox.ToxicityPolicy = tox.ToxicityPolicy()
    max_chunk_chars: int = 1000
    batch_rows: int = 2000
    tokenizer_path: str | None = None  # tokens the trade-off table counts; None = bundled sample tokenizer


@dataclasses.dataclass(frozen=True)
class ToxicityTask(ShardTask):
    source: StoreLocation
    filtered_key: str
    out: StoreLocation
    partition_prefix: str
    kept_key: str
    dropped_key: str
    options: ToxicityOptions
    dimensions: tuple[str, ...]
    thresholds: tuple[float, ...]  # grid + configured, for the trade-off counts


def _scored_frame(frame: pl.DataFrame, options: ToxicityOptions) -> pl.DataFrame:
    scorer = tox.build_scorer(options.scorer)
    scores = tox.score_documents(scorer, frame["text"], options.max_chunk_chars)
    columns = [pl.Series(tox.score_column(d), scores[:, j], dtype=pl.Float32) for j, d in enumerate(scorer.dimensions)]
    maximum = scores.max(axis=1) if scores.shape[1] else np.zeros(len(frame), np.float32)
    return frame.with_columns(*columns, pl.Series(tox.MAX_COLUMN, maximum, dtype=pl.Float32))


def _count(result: TaskResult, scored: pl.DataFrame, tokens: np.ndarray, task: ToxicityTask) -> None:
    kept = scored["drop_reason"].is_null()
    result.rows_in += scored.height
    result.rows_out += int(kept.sum())
    add_counts(result.counters, {"tokens_scored": int(tokens.sum()), "tokens_dropped": int(tokens[~kept.to_numpy()].sum())})
    dropped = scored.filter(~kept)
    add_counts(result.drop_counts, dict(dropped["drop_reason"].value_counts().iter_rows()))
    for reason, url, text in (
        dropped.group_by("drop_reason", maintain_order=True)
        .head(EXAMPLES_PER_REASON)
        .select("drop_reason", "url", "text")
        .iter_rows()
    ):
        bucket = result.examples.setdefault(reason, [])
        if len(bucket) < EXAMPLES_PER_REASON:
            bucket.append({"url": url, "text": " ".join((text or "").split())[:EXAMPLE_CHARS]})
    for column in [*map(tox.score_column, task.dimensions), tox.MAX_COLUMN]:
        values = scored[column].to_numpy()
        histogram = result.payload.setdefault("histograms", {}).setdefault(column, [0] * tox.HISTOGRAM_BINS)
        for i, c in enumerate(tox.score_histogram(values)):
            histogram[i] += c
        above = result.payload.setdefault("above", {}).setdefault(column, {})
        for t, (docs, toks) in tox.threshold_counts(values, tokens, task.thresholds).items():
            prev = above.get(t, [0, 0])
            above[t] = [prev[0] + docs, prev[1] + toks]


def run_toxicity_task(task: ToxicityTask) -> TaskResult:
    result = TaskResult(counters={"tokens_scored": 0, "tokens_dropped": 0})
    tokenizer = load_tokenizer(task.options.tokenizer_path or default_tokenizer_path())
    schema = toxicity_schema(task.dimensions)
    with (
        ShardSink(task.out, task.kept_key, schema, names.DATA, task.partition_prefix) as kept_sink,
        ShardSink(task.out, task.dropped_key, schema, names.DROPPED, task.partition_prefix) as dropped_sink,
    ):
        for batch in iter_shard_batches(task.source, task.filtered_key, task.options.batch_rows):
            frame = pl.from_arrow(pa.Table.from_batches([batch]))
            if frame.is_empty():
                continue
            scored = tox.apply_policy(_scored_frame(frame, task.options), task.options.policy, task.dimensions)
            kept = scored["drop_reason"].is_null()
            kept_sink.write(conform(scored.filter(kept).to_arrow(), schema))
            dropped_sink.write(conform(scored.filter(~kept).to_arrow(), schema))
            _count(result, scored, count_tokens(scored["text"], tokenizer), task)
    result.shards = [kept_sink.info, dropped_sink.info]
    return result


def toxicity_schema(dimensions: tuple[str, ...]) -> pa.Schema:
    return tox.toxicity_schema(FILTERED, dimensions)


def _merge_payloads(results: list[TaskResult]) -> dict[str, Any]:
    histograms: dict[str, list[int]] = {}
    above: dict[str, dict[str, list[int]]] = {}
    for r in results:
        for column, counts in r.payload.get("histograms", {}).items():
            total = histograms.setdefault(column, [0] * len(counts))
            histograms[column] = [a + b for a, b in zip(total, counts)]
        for column, per_t in r.payload.get("above", {}).items():
            into = above.setdefault(column, {})
            for t, (docs, toks) in per_t.items():
                prev = into.get(t, [0, 0])
                into[t] = [prev[0] + docs, prev[1] + toks]
    return {"histograms": histograms, "above": above}


def summarize(
    report: StageReport, results: list[TaskResult], dimensions: tuple[str, ...], thresholds: dict[str, float]
) -> dict[str, Any]:
    """The metadata only this stage knows: histograms, share above each configured threshold,
    and the trade-off grid (documents and tokens above each threshold, per dimension)."""
    merged = _merge_payloads(results)
    n = max(report.rows_in, 1)
    edges = np.linspace(0.0, 1.0, tox.HISTOGRAM_BINS + 1)
    labels = [f"{edges[i]:.1f}-{edges[i + 1]:.1f}" for i in range(tox.HISTOGRAM_BINS)]
    columns = {d: tox.score_column(d) for d in dimensions} | {"any": tox.MAX_COLUMN}
    tradeoff = {d: merged["above"].get(c, {}) for d, c in columns.items()}
    share_above = {
        d: round(merged["above"].get(tox.score_column(d), {}).get(str(t), [0, 0])[0] / n, 4) for d, t in thresholds.items()
    }
    return {
        "dimensions": list(dimensions),
        "score_histograms": {d: dict(zip(labels, merged["histograms"].get(c, [0] * len(labels)))) for d, c in columns.items()},
        "thresholds": thresholds,
        "share_above_threshold": share_above,
        "tradeoff": tradeoff,
        "tradeoff_table": tox.tradeoff_markdown(tradeoff, report.rows_in, report.counters.get("tokens_scored", 0)),
    }


def scorer_identity(spec: tox.ScorerSpec) -> dict[str, Any]:
    """What the scorer is (its description with the model's sha256): part of the stage's
    fingerprint, so a replaced model file at the same path is not mistaken for up to date."""
    return tox.build_scorer(spec).describe()


def materialize_toxicity(
    store: DatasetStore,
    snapshot: str,
    executor: ShardExecutor,
    options: ToxicityOptions = ToxicityOptions(),
    progress: ProgressSink | None = None,
) -> StageReport:
    scorer = tox.build_scorer(options.scorer)  # a bad model path or a policy naming unknown dimensions fails here
    thresholds = options.policy.resolve(scorer.dimensions)
    if options.tokenizer_path and not Path(options.tokenizer_path).is_file():
        raise FileNotFoundError(f"toxicity tokenizer_path: no file at {options.tokenizer_path}")
    upstream = upstream_versions(store, [(names.FILTERED, snapshot)])
    config = {"options": options, "scorer": scorer_identity(options.scorer)}
    with StageRun(store, names.TOXICITY, snapshot, executor, config=config, upstream=upstream, progress=progress) as run:
        if run.up_to_date:
            return run.report
        schema = toxicity_schema(scorer.dimensions)
        run.declare(names.DATA, schema)
        run.declare(names.DROPPED, schema)
        grid = tuple(sorted(set(tox.THRESHOLD_GRID) | set(thresholds.values())))
        tasks = [
            ToxicityTask(
                i,
                store.location,
                key,
                store.location,
                run.prefix,
                run.shard_key(i),
                run.shard_key(i, names.DROPPED),
                options,
                scorer.dimensions,
                grid,
            )
            for i, key in enumerate(store.shard_keys(names.FILTERED, snapshot))
        ]
        results = run.map("score", run_toxicity_task, tasks)
        run.report.bytes_in = store.table_bytes(names.FILTERED, snapshot)
        return run.commit(
            {
                "scorer": scorer.describe(),
                "policy": options.policy.mode,
                **summarize(run.report, results, scorer.dimensions, thresholds),
            }
        )
