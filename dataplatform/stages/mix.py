"""Eval splits and the training mix (unpartitioned: they span every snapshot).

``eval_splits``: each decontaminated document gets train/validation/test from a salted hash of
its doc_id (stable when snapshots arrive), or, in temporal mode, the newest snapshot(s) become
the test split (Longpre et al., "A Pretrainer's Guide": temporal shift between training and
evaluation data matters and fine-tuning does not undo it).

``training_mix``: curated raw text (train split only), rewritten text and instruction pairs,
chosen by token proportions with a configurable tokenizer; written as shards plus a canonical
manifest (sources, counts, config, tokenizer and shard hashes) that makes the mix reproducible.
The selection runs shard by shard (:mod:`dataplatform.stages.mix_selection`); :func:`mix_sources`
and :func:`color_selected_source` are its whole-frame definition, which the tests hold it to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa

from dataplatform import names
from dataplatform.core.eval_splits import hash_split, temporal_split
from dataplatform.core.schemas import MIX
from dataplatform.core.tokenizer_utils import load_tokenizer, tokenizer_sha256
from dataplatform.core.training_mix import MixBudget, MixPlan, build_manifest, plan_budgets
from dataplatform.execution.shard_executor import InlineExecutor, ShardExecutor
from dataplatform.io.datasets import DatasetStore, ShardSink, iter_shard_batches
from dataplatform.io.object_store import StoreLocation
from dataplatform.stages.decontamination import ngram_index_location
from dataplatform.stages.mix_selection import select_and_write, source_shards
from dataplatform.stages.runner import ProgressSink, ShardTask, StageReport, StageRun, TaskResult, upstream_versions

SplitMode = Literal["hash", "temporal"]
OnMissing = Literal["redistribute", "error"]


def default_tokenizer_path() -> str:
    from dataplatform.sample_data import SAMPLE_DATA_DIR

    return str(SAMPLE_DATA_DIR / "tokenizer" / "sample-bpe-4k.json")


@dataclasses.dataclass(frozen=True)
class SplitOptions:
    mode: SplitMode = "hash"
    fractions: tuple[tuple[str, float], ...] = (("train", 0.98), ("validation", 0.01), ("test", 0.01))
    salt: str = "dataplatform-v1"
    holdout_snapshots: int = 1


CURATED_COLUMNS = ["doc_id", "snapshot", "url", "text"]
SPLIT_SCHEMA = pa.schema([pa.field(c, pa.large_string()) for c in (*CURATED_COLUMNS, "split")])


@dataclasses.dataclass(frozen=True)
class SplitTask(ShardTask):
    source: StoreLocation
    curated_key: str
    options: SplitOptions
    snapshots: tuple[str, ...]  # every snapshot, for temporal mode (the newest are held out)
    out: StoreLocation
    partition_prefix: str
    outputs: tuple[tuple[str, str], ...]  # (split, shard key)


def assign_splits(curated: pl.DataFrame, options: SplitOptions, snapshots: Sequence[str]) -> pl.DataFrame:
    """``curated`` with its ``split``: a salted hash of doc_id (stable as snapshots arrive), or the
    newest snapshots as test (temporal). Depends only on each row, so shards are split on their own."""
    if options.mode == "hash":
        return curated.with_columns(hash_split(curated["doc_id"], dict(options.fractions), salt=options.salt).alias("split"))
    return temporal_split(curated, options.holdout_snapshots, snapshots=snapshots)


def run_split_task(task: SplitTask) -> TaskResult:
    batches = list(iter_shard_batches(task.source, task.curated_key, 10_000, columns=CURATED_COLUMNS))
    curated = (
        pl.from_arrow(pa.Table.from_batches(batches))
        if batches
        else pl.DataFrame(schema=dict.fromkeys(CURATED_COLUMNS, pl.String))
    )
    split = (
        assign_splits(curated, task.options, task.snapshots)
        if curated.height
        else curated.with_columns(pl.lit("").alias("split"))
    )
    counts = {}
    shards = []
    for name, key in task.outputs:
        rows = split.filter(pl.col("split") == name).sort("doc_id")
        with ShardSink(task.out, key, SPLIT_SCHEMA, name, task.partition_prefix) as sink:
            sink.write(rows.to_arrow().cast(SPLIT_SCHEMA))
        shards.append(sink.info)
        counts[name] = rows.height
    routed = {name: n for name, n in counts.items() if name != "train"}
    snapshot_counts = dict(curated["snapshot"].value_counts().iter_rows()) if curated.height else {}
    return TaskResult(
        shards=shards,
        rows_in=curated.height,
        rows_out=counts.get("train", 0),
        routed=routed,
        tallies={"snapshot_documents": snapshot_counts},
    )


def _upstream_snapshots(store: DatasetStore) -> dict[str, str]:
    return upstream_versions(store, [(names.DECONTAMINATED, s) for s in store.partitions(names.DECONTAMINATED)])


def materialize_eval_splits(
    store: DatasetStore, executor: ShardExecutor, options: SplitOptions = SplitOptions(), progress: ProgressSink | None = None
) -> StageReport:
    """train / validation / test tables of every curated document, split shard by shard."""
    if options.mode not in ("hash", "temporal"):
        raise ValueError(f"eval_splits mode must be 'hash' or 'temporal', got {options.mode!r}")
    snapshots = tuple(store.partitions(names.DECONTAMINATED))
    with StageRun(
        store,
        names.EVAL_SPLITS,
        names.UNPARTITIONED,
        executor,
        config=options,
        upstream=_upstream_snapshots(store),
        progress=progress,
    ) as run:
        if run.up_to_date:
            return run.report
        for name in names.SPLITS:
            run.declare(name, SPLIT_SCHEMA)
        keys = [key for s in snapshots for key in store.shard_keys(names.DECONTAMINATED, s)]
        run.map_into_report(
            "split",
            run_split_task,
            [
                SplitTask(
                    i,
                    store.location,
                    key,
                    options,
                    snapshots,
                    store.location,
                    run.prefix,
                    tuple((name, run.shard_key(i, name)) for name in names.SPLITS),
                )
                for i, key in enumerate(keys)
            ],
            output_table="train",
        )
        counts = {name: run.report.routed.get(name, 0) for name in names.SPLITS}
        counts["train"] = run.report.rows_out
        return run.commit(
            {
                "mode": options.mode,
                "counts": counts,
                "snapshots": sorted(s for s, n in run.report.tallies.get("snapshot_documents", {}).items() if n),
                "salt": options.salt,
                "fractions": dict(options.fractions),
            }
        )


@dataclasses.dataclass(frozen=True)
class MixOptions:
    proportions: tuple[tuple[str, float], ...] = (("curated_raw", 0.45), ("rewritten", 0.45), ("instructions", 0.1))
    total_tokens: int | None = None
    seed: int = 0
    tokenizer_path: str | None = None  # None: the bundled sample tokenizer
    on_missing: OnMissing = "redistribute"  # sources not materialized yet (no GPU stages) give their share to the rest
    range_rows: int = 100_000  # candidates per range of the mix order: bounds each task's and the driver's memory

    def __post_init__(self) -> None:
        if self.range_rows < 1:
            raise ValueError(f"range_rows must be >= 1, got {self.range_rows}")


def _all_partitions(store: DatasetStore, asset: str, columns: list[str]) -> pl.DataFrame | None:
    frames = [store.read_frame(asset, s, columns=columns) for s in store.partitions(asset)]
    frames = [f for f in frames if f.height]
    return pl.concat(frames) if frames else None


def held_out_doc_ids(store: DatasetStore) -> pl.Series:
    """doc_ids of the eval validation and test splits."""
    return pl.concat(
        [
            store.read_frame(names.EVAL_SPLITS, names.UNPARTITIONED, split, columns=["doc_id"])["doc_id"]
            for split in names.SPLITS
            if split != "train"
        ]
    )


def mix_sources(store: DatasetStore) -> dict[str, pl.DataFrame]:
    """The mix's candidate rows per source: the train split (curated raw text), and the rewrites and
    instruction pairs of every snapshot except those made from a validation or test document
    (held-out documents never reach training, not even rewritten or as a pair's answer)."""
    curated = store.read_frame(names.EVAL_SPLITS, names.UNPARTITIONED, "train", columns=["doc_id", "snapshot", "text"])
    sources = {"curated_raw": curated.select("doc_id", pl.col("doc_id").alias("source_doc_id"), "snapshot", "text")}
    not_held_out = ~pl.col("source_doc_id").is_in(held_out_doc_ids(store).implode())
    rewritten = _all_partitions(store, names.REWRITTEN, ["doc_id", "source_doc_id", "snapshot", "text"])
    if rewritten is not None:
        sources["rewritten"] = rewritten.filter(not_held_out)
    pairs = _all_partitions(store, names.INSTRUCTION_PAIRS, ["pair_id", "source_doc_id", "snapshot", "instruction", "answer"])
    if pairs is not None:
        sources["instructions"] = pairs.filter(not_held_out).select(
            pl.col("pair_id").alias("doc_id"),
            "source_doc_id",
            "snapshot",
            (pl.col("instruction") + "\n\n" + pl.col("answer")).alias("text"),
        )
    return sources


# --- CoLoR-Filter source (issue 15): only when the proportions name it, so other mixes are unchanged.
def color_selected_source(store: DatasetStore, exclude_curated: bool) -> pl.DataFrame | None:
    """Documents CoLoR-Filter selected (``color_scores/data`` of every snapshot), minus eval
    validation/test documents (held-out text never reaches training) and, when curated raw text is
    also in the mix, minus its candidates (the train split): a document chosen by both stays in
    curated_raw only, so no document enters the mix twice."""
    color = _all_partitions(store, names.COLOR_SCORES, ["doc_id", "snapshot", "text"])
    if color is None:
        return None
    splits = [t for t in names.SPLITS if t != "train" or exclude_curated]
    excluded = pl.concat(
        [store.read_frame(names.EVAL_SPLITS, names.UNPARTITIONED, t, columns=["doc_id"])["doc_id"] for t in splits]
    )
    return color.filter(~pl.col("doc_id").is_in(excluded.implode())).select(
        "doc_id", pl.col("doc_id").alias("source_doc_id"), "snapshot", "text"
    )


def _mix_upstream(store: DatasetStore, with_color: bool = False) -> dict[str, str]:
    inputs = [(names.EVAL_SPLITS, names.UNPARTITIONED), (names.EVAL_BENCHMARKS, names.UNPARTITIONED)]
    inputs += [(a, s) for a in (names.DECONTAMINATED, names.REWRITTEN, names.INSTRUCTION_PAIRS) for s in store.partitions(a)]
    if with_color:
        inputs += [(names.COLOR_SCORES, s) for s in store.partitions(names.COLOR_SCORES)]
    return upstream_versions(store, inputs)


def _write_mix_manifest(run: StageRun, plan: MixPlan, options: MixOptions, tokenizer_path: str, shard_hashes: list[str]) -> bytes:
    config = {
        "proportions": dict(options.proportions),
        "total_tokens": options.total_tokens,
        "seed": options.seed,
        "on_missing": options.on_missing,
        "tokenizer": Path(tokenizer_path).name,
    }
    manifest = build_manifest(plan, config=config, shard_hashes=shard_hashes, tokenizer_hash=tokenizer_sha256(tokenizer_path))
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / names.MIX_MANIFEST
        file.write_bytes(manifest)
        run.writer.add_file(file)
    return manifest


def materialize_training_mix(
    store: DatasetStore,
    options: MixOptions = MixOptions(),
    executor: ShardExecutor | None = None,
    progress: ProgressSink | None = None,
) -> StageReport:
    """The mix of :func:`~dataplatform.core.training_mix.plan_mix` over :func:`mix_sources` (plus
    CoLoR's selection when named), computed shard by shard (:mod:`dataplatform.stages.mix_selection`):
    one shard per source and range of the mix order, sources in name order, each in mix order."""
    tokenizer_path = options.tokenizer_path or default_tokenizer_path()
    proportions = dict(options.proportions)
    with_color = names.COLOR_SELECTED in proportions
    load_tokenizer(tokenizer_path)  # a missing or broken tokenizer fails before any work
    with StageRun(
        store,
        names.TRAINING_MIX,
        names.UNPARTITIONED,
        executor or InlineExecutor(),
        config=options,
        upstream=_mix_upstream(store, with_color),
        progress=progress,
    ) as run:
        if run.up_to_date:
            return run.report
        run.declare(names.DATA, MIX)

        def budget_of(available: dict[str, int]) -> MixBudget:
            return plan_budgets(
                available,
                {k: v for k, v in proportions.items() if k in available or options.on_missing == "redistribute"},
                total_tokens=options.total_tokens,
                on_missing=options.on_missing,
            )

        selections, budget, written = select_and_write(
            run,
            source_shards(store, list(proportions)),
            budget_of,
            seed=options.seed,
            tokenizer_path=tokenizer_path,
            exclude_curated=proportions.get("curated_raw", 0) > 0,
            benchmark_index=ngram_index_location(store),
            range_rows=options.range_rows,
        )
        plan = MixPlan(selections, {}, budget.requested, options.total_tokens, budget.total, options.seed, budget.missing)
        manifest = _write_mix_manifest(run, plan, options, tokenizer_path, [r.shards[0].sha256 for r in written])
        overlaps: dict[str, int] = {}
        for result in written:
            for benchmark, n in result.payload["overlaps"].items():
                overlaps[benchmark] = overlaps.get(benchmark, 0) + n
        available = sum(s.available_docs for s in selections.values())
        run.report.rows_in, run.report.rows_out = available, plan.total_docs
        run.report.routed = {"not_selected": available - plan.total_docs}
        return run.commit(
            {
                "rows": plan.total_docs,
                "tokens": plan.total_tokens,
                "tokens_per_source": {k: v.tokens for k, v in plan.sources.items()},
                "docs_per_source": {k: v.docs for k, v in plan.sources.items()},
                "achieved_proportions": {k: round(v, 4) for k, v in plan.achieved_proportions.items()},
                "redistributed": list(plan.redistributed),
                "benchmark_overlaps": overlaps,
                "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
            }
        )
