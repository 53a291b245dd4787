"""Synthesis stages (REWIRE, FineInstructions, the Min-K% Prob audit), resumable.

REWIRE is three assets, in the paper's order:

* ``rewire_outputs`` (per snapshot): the LLM rewrites of the REWIRE pool (every parsed rewrite, and
  the failures with their reason);
* ``rewrite_classifier`` (unpartitioned): fastText, reference text (positives) vs a random sample of
  rewrites (negatives), trained like the quality classifier;
* ``rewritten`` (per snapshot): the rewrites ranked by that classifier, top ``keep_fraction`` kept.

Long generation runs are cut into work units of ``unit_docs`` input documents (sorted by doc_id, so
units are the same on every run). Each finished unit is written under
``<asset>/<snapshot>/_work/<run_key>/<table>/<unit>.parquet`` and marked done last
(``dataplatform.core.synthesis.resume`` has the contract); a crashed run resumes with the units
that have no marker, never redoing or duplicating finished ones. When all units are done the
partition is committed through the normal manifest and the work prefix removed.
"""

from __future__ import annotations

import dataclasses
import io
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa

from dataplatform import names
from dataplatform.core.decontamination import decontaminate
from dataplatform.core.dedup import INDEX_SCHEMA, DedupConfig, deduplicate
from dataplatform.core.eval_splits import stable_id_hash
from dataplatform.core.quality_classifier import default_positives, train_quality_classifier
from dataplatform.core.synthesis.fineinstructions import (
    FAILURES_SCHEMA as PAIR_FAILURES_SCHEMA,
)
from dataplatform.core.synthesis.fineinstructions import (
    PAIRS_SCHEMA,
    FineInstructionsConfig,
    TemplateIndex,
    generate_instruction_pairs,
    load_templates,
    templates_frame,
    templates_from_frame,
)
from dataplatform.core.synthesis.min_k_prob import calibrate_membership, flag_members, min_k_scores
from dataplatform.core.synthesis.query_templates import load_query_log, templates_from_queries
from dataplatform.core.synthesis.resume import done_marker_name, output_shard_name, plan_resume, work_fingerprint
from dataplatform.core.synthesis.rewire import FAILURES_SCHEMA, REWRITTEN_SCHEMA, RewireConfig, rewrite_documents, top_by_rank
from dataplatform.io.datasets import DatasetStore, iter_shard_batches
from dataplatform.stages.decontamination import load_benchmark_index
from dataplatform.stages.dedup import read_signature_index
from dataplatform.stages.runner import StageReport
from dataplatform.stages.scoring import cached_classifier, read_positives

DECONTAMINATED_ASSET, EVAL_BENCHMARKS_ASSET, ITEMS_TABLE = names.DECONTAMINATED, names.EVAL_BENCHMARKS, names.ITEMS
DEDUPLICATED_ASSET, REWRITE_POOL_TABLE, SIGNATURE_INDEX_ASSET = names.DEDUPLICATED, names.REWRITE_POOL, names.SIGNATURE_INDEX
DROPPED_TABLE, SCORED_ASSET, UNPARTITIONED = names.DROPPED, names.SCORED, names.UNPARTITIONED

REWIRE_OUTPUTS_ASSET, REWRITE_CLASSIFIER_ASSET, REWRITTEN_ASSET = names.REWIRE_OUTPUTS, names.REWRITE_CLASSIFIER, names.REWRITTEN
INSTRUCTION_TEMPLATES_ASSET, INSTRUCTION_PAIRS_ASSET = names.INSTRUCTION_TEMPLATES, names.INSTRUCTION_PAIRS
CONTAMINATION_AUDIT_ASSET = names.CONTAMINATION_AUDIT
EVAL_SPLITS_ASSET = "eval_splits"
FAILURES_TABLE = names.FAILURES
WORK = "_work"
BELOW_RANK_CUT = "rewire:below_rank_cut"
EXAMPLES = 3  # examples shown in materialization metadata
EXAMPLE_CHARS = 400

RewirePool = Literal["filtered_and_deduplicated", "below_quality_cut", "rewrite_band"]
POOL_BANDS: dict[str, tuple[str, ...]] = {
    "filtered_and_deduplicated": ("high_quality", "rewrite_band", "low_quality"),
    "below_quality_cut": ("rewrite_band", "low_quality"),
    "rewrite_band": ("rewrite_band",),
}


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    return buffer.getvalue()


def _read(store: DatasetStore, asset: str, partition: str, table: str, schema: dict[str, Any]) -> pl.DataFrame:
    """The table's columns of ``schema`` (an empty frame of that schema when the table has no rows)."""
    frame = store.read_frame(asset, partition, table)
    if frame.height == 0 or not set(schema) <= set(frame.columns):
        return pl.DataFrame(schema=schema)
    return frame.select(list(schema)).cast(schema)


def stable_sample(frame: pl.DataFrame, n: int | None, salt: str) -> pl.DataFrame:
    """At most ``n`` rows: those with the smallest XXH3 of ``salt`` + doc_id (all rows if ``n`` is None).
    The same documents are chosen on every run, and a larger ``n`` extends the choice."""
    if n is None or frame.height <= n:
        return frame
    return frame.with_columns(pl.Series("_h", stable_id_hash(frame["doc_id"], salt))).sort("_h", "doc_id").head(n).drop("_h")


def stable_sample_of_shards(
    store: DatasetStore, asset: str, partitions: Sequence[str], schema: dict[str, Any], n: int, salt: str
) -> pl.DataFrame:
    """:func:`stable_sample` of every partition's ``data`` rows, read one batch at a time: holds at
    most ``n`` rows plus a batch, however many rewrites the snapshots hold."""
    kept = pl.DataFrame(schema={**schema, "_h": pl.UInt64})
    for partition in partitions:
        for key in store.shard_keys(asset, partition):
            for batch in iter_shard_batches(store.location, key, 10_000, columns=list(schema)):
                frame = pl.from_arrow(pa.Table.from_batches([batch])).cast(schema)
                frame = frame.with_columns(pl.Series("_h", stable_id_hash(frame["doc_id"], salt), dtype=pl.UInt64))
                kept = pl.concat([kept, frame]).sort("_h", "doc_id").head(n)
    return kept.drop("_h")


def run_units(
    store: DatasetStore,
    asset: str,
    snapshot: str,
    frame: pl.DataFrame,
    run_key: str,
    unit_docs: int,
    work: Callable[[pl.DataFrame], dict[str, pl.DataFrame]],
) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:
    """Run ``work`` over units of ``frame`` (sorted by doc_id), resuming finished units."""
    frame = frame.sort("doc_id")
    units = {f"unit-{i // unit_docs:05d}": frame.slice(i, unit_docs) for i in range(0, frame.height, unit_docs)}
    prefix = f"{asset}/{snapshot}/{WORK}/{run_key}"
    objects = store.object_store
    listing = [k[len(prefix) + 1 :] for k in objects.list_keys(prefix)]
    plan = plan_resume(list(units), listing)
    for unit in plan.todo:
        outputs = work(units[unit])
        for table, result in outputs.items():
            objects.put_bytes(f"{prefix}/{output_shard_name(unit, table)}", _parquet_bytes(result))
        objects.put_bytes(f"{prefix}/{done_marker_name(unit)}", b"done")
    tables: dict[str, list[pl.DataFrame]] = {}
    written = sorted(k[len(prefix) + 1 :] for k in objects.list_keys(prefix) if k.endswith(".parquet"))
    for unit in units:  # input order: unit ids sort like the units
        for relative in [r for r in written if r.rsplit("/", 1)[-1] == f"{unit}.parquet"]:
            table = relative.split("/", 1)[0]
            tables.setdefault(table, []).append(pl.read_parquet(io.BytesIO(objects.get_bytes(f"{prefix}/{relative}"))))
    merged = {t: pl.concat(parts, how="diagonal_relaxed") for t, parts in tables.items()}
    return merged, {"units": len(units), "resumed_units": len(plan.done), "computed_units": len(plan.todo)}


def clear_work(store: DatasetStore, asset: str, snapshot: str) -> None:
    store.object_store.delete_prefix(f"{asset}/{snapshot}/{WORK}")


def _examples(frame: pl.DataFrame, columns: tuple[str, ...]) -> list[dict[str, str]]:
    return [{c: str(row[c])[:EXAMPLE_CHARS] for c in columns} for row in frame.head(EXAMPLES).iter_rows(named=True)]


def _throughput(tokens: int, seconds: float) -> float:
    return round(tokens / max(seconds, 1e-9), 2)


# ------------------------------------------------------------------------------------ REWIRE pool
POOL_SCHEMA = {"doc_id": pl.String, "text": pl.String, "snapshot": pl.String, "quality_score": pl.Float32}


def _low_quality_band(store: DatasetStore, snapshot: str) -> tuple[pl.DataFrame, dict[str, int]]:
    """``scored``'s below-threshold documents, deduplicated and decontaminated here.

    The dedup stage only clusters the top half of the quality ranking; the rest never met dedup or
    decontamination. They are checked against the signature index of this and every earlier
    snapshot (so a copy of a kept document is dropped) and among themselves, then against the
    benchmark n-grams, with the settings those stages committed.
    """
    low = store.read_frame(SCORED_ASSET, snapshot, DROPPED_TABLE)
    if low.height == 0:
        return pl.DataFrame(schema=POOL_SCHEMA), {}
    low = low.filter(pl.col("drop_reason") == "quality:below_threshold").select(list(POOL_SCHEMA)).cast(POOL_SCHEMA)
    dedup_meta = store.require_manifest(DEDUPLICATED_ASSET, snapshot)["metadata"]
    config = DedupConfig(**dedup_meta.get("dedup_config", {}))
    # This snapshot's index segment and every earlier one (whole: the low band is small next to them).
    segments = [read_signature_index(store, s) for s in store.partitions(SIGNATURE_INDEX_ASSET) if s <= snapshot]
    segments = [t.cast(INDEX_SCHEMA) for t in segments if t.num_rows]
    index = pa.concat_tables(segments) if segments else None
    deduped = deduplicate(low, index=index, config=config).frame
    mode = store.require_manifest(DECONTAMINATED_ASSET, snapshot)["metadata"].get("mode", "drop")
    checked = decontaminate(deduped, load_benchmark_index(store), mode=mode)
    counts = {
        str(k): int(v) for k, v in checked.filter(pl.col("drop_reason").is_not_null())["drop_reason"].value_counts().iter_rows()
    }
    return checked.filter(pl.col("drop_reason").is_null()).select(list(POOL_SCHEMA)), counts


def rewire_pool(store: DatasetStore, snapshot: str, pool: RewirePool) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The documents REWIRE rewrites, with a ``band`` column, and counts per band.

    ``filtered_and_deduplicated`` (the paper: every document that passed the heuristic filters and
    dedup) = the snapshot's top quality band + the rewrite band (both deduplicated and
    decontaminated upstream) + the low band (checked here, :func:`_low_quality_band`).
    ``below_quality_cut`` leaves out the top band; ``rewrite_band`` is the 10-50% rank band alone
    (this project's earlier behaviour).
    """
    if pool not in POOL_BANDS:
        raise ValueError(f"REWIRE pool must be one of {sorted(POOL_BANDS)}, got {pool!r}")
    frames, info = [], {}
    for band in POOL_BANDS[pool]:
        if band == "low_quality":
            frame, dropped = _low_quality_band(store, snapshot)
            info["low_quality_set_aside"] = dropped
        else:
            table = "data" if band == "high_quality" else REWRITE_POOL_TABLE
            frame = _read(store, DECONTAMINATED_ASSET, snapshot, table, POOL_SCHEMA)
        info[f"pool_{band}"] = frame.height
        frames.append(frame.with_columns(pl.lit(band).alias("band")))
    return pl.concat(frames), info


# ------------------------------------------------------------------------------------ REWIRE
@dataclasses.dataclass(frozen=True)
class RewireOptions:
    rewire: RewireConfig = RewireConfig()
    pool: RewirePool = "filtered_and_deduplicated"
    max_docs: int | None = None  # documents rewritten per snapshot (a stable sample of the pool); None = all
    unit_docs: int = 64


def materialize_rewire_outputs(
    store: DatasetStore, snapshot: str, engine, options: RewireOptions = RewireOptions()
) -> StageReport:
    started = time.perf_counter()
    report = StageReport(REWIRE_OUTPUTS_ASSET, snapshot)
    pool, pool_info = rewire_pool(store, snapshot, options.pool)
    chosen = stable_sample(pool, options.max_docs, f"rewire:{snapshot}")
    upstream = store.require_manifest(DECONTAMINATED_ASSET, snapshot)["version"]
    run_key = work_fingerprint(
        stage="rewire",
        upstream=upstream,
        model=engine.model_id,
        config=repr(options.rewire),
        pool=options.pool,
        docs=chosen["doc_id"].sort().to_list(),
        unit=options.unit_docs,
    )

    def work(unit: pl.DataFrame) -> dict[str, pl.DataFrame]:
        rewritten, failures = rewrite_documents(unit.select("doc_id", "text"), engine, options.rewire)
        return {"data": rewritten, FAILURES_TABLE: failures}

    generation_started = time.perf_counter()
    outputs, progress = run_units(store, REWIRE_OUTPUTS_ASSET, snapshot, chosen, run_key, options.unit_docs, work)
    generation_seconds = time.perf_counter() - generation_started
    bands = chosen.select(pl.col("doc_id").alias("source_doc_id"), "band", pl.col("quality_score").alias("source_quality_score"))
    rewrites = outputs.get("data", pl.DataFrame(schema=REWRITTEN_SCHEMA)).join(bands, on="source_doc_id", how="left")
    rewrites = rewrites.with_columns(pl.lit(snapshot).alias("snapshot"))
    failures = outputs.get(FAILURES_TABLE, pl.DataFrame(schema=FAILURES_SCHEMA))
    with store.write_partition(REWIRE_OUTPUTS_ASSET, snapshot) as writer:
        writer.write_table("data", rewrites.to_arrow())
        writer.write_table(FAILURES_TABLE, failures.to_arrow())
        tokens = int(rewrites["n_generated_tokens"].sum() or 0) + int(failures["n_generated_tokens"].sum() or 0)
        report.rows_in, report.rows_out = chosen.height, rewrites.height
        report.drop_counts = {r: int(c) for r, c in failures["reason"].value_counts().iter_rows()}
        report.wall_seconds = time.perf_counter() - started
        report.shards = progress["units"]
        report.extra = {
            **progress,
            **pool_info,
            "pool": options.pool,
            "pool_size": pool.height,
            "attempted": chosen.height,
            "max_docs": options.max_docs,
            "acceptance_rate": round(rewrites.height / chosen.height, 4) if chosen.height else None,
            "tokens_generated": tokens,
            "tokens_per_s": _throughput(tokens, generation_seconds) if progress["computed_units"] else None,
            "rewrites_per_band": dict(sorted(rewrites["band"].value_counts().iter_rows())) if rewrites.height else {},
            "model": engine.model_id,
            "prompt_version": options.rewire.prompt_version,
            "sampling": dataclasses.asdict(options.rewire.sampling),
            "examples": _examples(rewrites, ("source_doc_id", "text")),
        }
        writer.commit(report.as_metadata())
    clear_work(store, REWIRE_OUTPUTS_ASSET, snapshot)
    return report


@dataclasses.dataclass(frozen=True)
class RewriteClassifierOptions:
    positives_path: str | None = None  # text file, one document per line; None = the bundled reference set
    max_negatives: int = 20_000
    seed: int = 0


def materialize_rewrite_classifier(
    store: DatasetStore, options: RewriteClassifierOptions = RewriteClassifierOptions()
) -> dict[str, Any]:
    """REWIRE's rewrite-quality classifier: reference text (positives) vs random rewrites (negatives)."""
    started = time.perf_counter()
    snapshots = store.partitions(REWIRE_OUTPUTS_ASSET)
    rewrites = stable_sample_of_shards(
        store,
        REWIRE_OUTPUTS_ASSET,
        snapshots,
        {"doc_id": pl.String, "text": pl.String},
        options.max_negatives,
        f"rewrite_classifier:{options.seed}",
    )
    if rewrites.height == 0:
        raise ValueError(
            f"rewrite_classifier needs rewrites as negatives; rewire_outputs of {snapshots or 'no snapshot'} has none: "
            "materialize rewire_outputs (with a model that produces rewrites) first"
        )
    positives = read_positives(options.positives_path) if options.positives_path else default_positives()
    model, lr = _train_without_nan(positives, rewrites.sort("doc_id")["text"], options.seed)
    with store.write_partition(REWRITE_CLASSIFIER_ASSET, UNPARTITIONED) as writer, tempfile.TemporaryDirectory() as tmp:
        bin_path = model.save(tmp)
        writer.add_file(bin_path)
        writer.add_file(bin_path.with_suffix(".json"))
        metadata = {
            "model_file": bin_path.name,
            "training_hash": model.training_hash,
            "learning_rate": lr,
            "metrics": model.metrics.to_dict() if model.metrics else {},
            "snapshots": snapshots,
            "positives": len(positives),
            "negatives": rewrites.height,
            "wall_seconds": round(time.perf_counter() - started, 3),
        }
        writer.commit(metadata)
    return metadata


def _train_without_nan(positives: list[str], negatives: pl.Series, seed: int, rates: tuple[float, ...] = (0.5, 0.1, 0.02)):
    """fastText's supervised training can diverge ("Encountered NaN") on a few negatives against a
    large reference set (seen in a long-running process with 4 rewrites vs 175 references at the
    quality classifier's lr 0.5); a smaller learning rate trains the same classifier family."""
    for lr in rates:
        try:
            return train_quality_classifier(positives, negatives, seed=seed, lr=lr), lr
        except RuntimeError as exc:
            if "NaN" not in str(exc) or lr == rates[-1]:
                raise
    raise AssertionError("unreachable")


def load_rewrite_classifier(store: DatasetStore):
    name = store.require_manifest(REWRITE_CLASSIFIER_ASSET, UNPARTITIONED)["metadata"]["model_file"]
    return cached_classifier(
        store.location,
        store.file_key(REWRITE_CLASSIFIER_ASSET, UNPARTITIONED, name),
        store.file_key(REWRITE_CLASSIFIER_ASSET, UNPARTITIONED, name.removesuffix(".bin") + ".json"),
    )


def materialize_rewritten(store: DatasetStore, snapshot: str, keep_fraction: float = 0.10) -> StageReport:
    """Score the snapshot's rewrites with the rewrite classifier and keep the top ``keep_fraction``
    by rank (the paper's top 10%; at least one rewrite when there are any, see ``top_by_rank``)."""
    started = time.perf_counter()
    report = StageReport(REWRITTEN_ASSET, snapshot)
    rewrites = store.read_frame(REWIRE_OUTPUTS_ASSET, snapshot)
    if rewrites.height == 0:
        rewrites = pl.DataFrame(
            schema={**REWRITTEN_SCHEMA, "band": pl.String, "source_quality_score": pl.Float32, "snapshot": pl.String}
        )
    classifier = load_rewrite_classifier(store)
    scores = classifier.score(rewrites["text"]) if rewrites.height else np.zeros(0, dtype=np.float32)
    keep = top_by_rank(scores, rewrites["doc_id"].to_list(), keep_fraction)
    scored = rewrites.with_columns(pl.Series("rewrite_score", scores, dtype=pl.Float32))
    kept = scored.filter(pl.Series(keep)).sort("rewrite_score", descending=True)
    below = scored.filter(~pl.Series(keep, dtype=pl.Boolean)).with_columns(pl.lit(BELOW_RANK_CUT).alias("drop_reason"))
    with store.write_partition(REWRITTEN_ASSET, snapshot) as writer:
        writer.write_table("data", kept.to_arrow())
        writer.write_table("dropped", below.to_arrow())
        report.rows_in, report.rows_out = rewrites.height, kept.height
        report.drop_counts = {BELOW_RANK_CUT: below.height} if below.height else {}
        report.wall_seconds = time.perf_counter() - started
        report.shards = 1
        report.extra = {
            "keep_fraction": keep_fraction,
            "classifier": classifier.name,
            "score_cut": round(float(kept["rewrite_score"].min()), 4) if kept.height else None,
            "kept_per_band": dict(sorted(kept["band"].value_counts().iter_rows())) if kept.height else {},
            "examples": _examples(kept, ("source_doc_id", "rewrite_score", "text")),
        }
        writer.commit(report.as_metadata())
    return report


# ---------------------------------------------------------------------------- FineInstructions
def materialize_instruction_templates(
    store: DatasetStore, extra_paths: tuple[str, ...] = (), query_logs: tuple[str, ...] = (), engine=None, profile: str = "paper"
) -> dict[str, Any]:
    """The seed bank + extra template files + templates the LLM made from ``query_logs``."""
    started = time.perf_counter()
    seed = load_templates()
    extra = load_templates(extra_paths, include_seed=False)
    queries = load_query_log(query_logs)
    generated, failures = templates_from_queries(queries, engine, profile) if queries else ([], pl.DataFrame())
    known = {t.template_id for t in seed + extra}
    generated = [t for t in generated if t.template_id not in known]
    frame = templates_frame(
        seed + extra + generated, ["seed"] * len(seed) + ["file"] * len(extra) + ["query_log"] * len(generated)
    )
    with store.write_partition(INSTRUCTION_TEMPLATES_ASSET, UNPARTITIONED) as writer:
        writer.write_table("data", frame.to_arrow())
        if failures.height:
            writer.write_table(FAILURES_TABLE, failures.to_arrow())
        metadata = {
            "templates": frame.height,
            "seed_templates": len(seed),
            "file_templates": len(extra),
            "queries": len(queries),
            "query_templates": len(generated),
            "query_failures": {r: int(c) for r, c in failures["reason"].value_counts().iter_rows()} if failures.height else {},
            "extra_files": [str(p) for p in extra_paths],
            "query_logs": [str(p) for p in query_logs],
            "model": engine.model_id if queries else None,
            "profile": profile if queries else None,
            "examples": _examples(pl.from_arrow(frame.to_arrow()).filter(pl.col("origin") == "query_log"), ("template", "fits")),
            "wall_seconds": round(time.perf_counter() - started, 3),
        }
        writer.commit(metadata)
    return metadata


def committed_templates(store: DatasetStore):
    """The committed ``instruction_templates`` bank (seed bank only when it was never materialized)."""
    if store.manifest(INSTRUCTION_TEMPLATES_ASSET, UNPARTITIONED) is None:
        return load_templates()
    return templates_from_frame(store.read_frame(INSTRUCTION_TEMPLATES_ASSET, UNPARTITIONED))


@dataclasses.dataclass(frozen=True)
class InstructionOptions:
    fineinstructions: FineInstructionsConfig = FineInstructionsConfig()
    max_docs: int | None = None  # matched documents instantiated per snapshot (a stable sample); None = all
    unit_docs: int = 64


def materialize_instruction_pairs(
    store: DatasetStore, snapshot: str, engine, embedder, options: InstructionOptions = InstructionOptions()
) -> StageReport:
    started = time.perf_counter()
    report = StageReport(INSTRUCTION_PAIRS_ASSET, snapshot)
    fi = options.fineinstructions
    docs = pl.concat(
        [
            _read(store, DECONTAMINATED_ASSET, snapshot, t, {"doc_id": pl.String, "text": pl.String})
            for t in ("data", REWRITE_POOL_TABLE)
        ]
    )
    index = TemplateIndex(committed_templates(store), embedder)
    matched_ids = index.search(docs, fi.top_k, fi.min_match_score, fi.match_doc_chars)["doc_id"].unique()
    chosen = stable_sample(
        docs.filter(pl.col("doc_id").is_in(matched_ids.implode())), options.max_docs, f"fineinstructions:{snapshot}"
    )
    upstream = store.require_manifest(DECONTAMINATED_ASSET, snapshot)["version"]
    run_key = work_fingerprint(
        stage="fineinstructions",
        upstream=upstream,
        model=engine.model_id,
        config=repr(fi),
        templates=sorted(index.by_id),
        docs=chosen["doc_id"].sort().to_list(),
        unit=options.unit_docs,
    )

    def work(unit: pl.DataFrame) -> dict[str, pl.DataFrame]:
        pairs, failures = generate_instruction_pairs(unit, index, None, engine, fi)
        return {"data": pairs, FAILURES_TABLE: failures}

    generation_started = time.perf_counter()
    outputs, progress = run_units(store, INSTRUCTION_PAIRS_ASSET, snapshot, chosen, run_key, options.unit_docs, work)
    generation_seconds = time.perf_counter() - generation_started
    pairs = outputs.get("data", pl.DataFrame(schema=PAIRS_SCHEMA)).with_columns(pl.lit(snapshot).alias("snapshot"))
    failures = outputs.get(FAILURES_TABLE, pl.DataFrame(schema=PAIR_FAILURES_SCHEMA))
    with store.write_partition(INSTRUCTION_PAIRS_ASSET, snapshot) as writer:
        writer.write_table("data", pairs.to_arrow())
        writer.write_table(FAILURES_TABLE, failures.to_arrow())
        tokens = int(pairs["n_generated_tokens"].sum() or 0) + int(failures["n_generated_tokens"].sum() or 0)
        attempts = pairs.height + failures.height
        report.rows_in, report.rows_out = attempts, pairs.height
        report.drop_counts = {r: int(c) for r, c in failures["reason"].value_counts().iter_rows()}
        report.wall_seconds = time.perf_counter() - started
        report.shards = progress["units"]
        report.extra = {
            **progress,
            "documents": docs.height,
            "documents_matched": matched_ids.len(),
            "documents_attempted": chosen.height,
            "max_docs": options.max_docs,
            "templates": len(index),
            "min_match_score": fi.min_match_score,
            "top_k": fi.top_k,
            "min_grounding": fi.min_grounding,
            "min_judge_rating": fi.min_judge_rating,  # the thresholds its checks verify
            "tokens_generated": tokens,
            "tokens_per_s": _throughput(tokens, generation_seconds) if progress["computed_units"] else None,
            "acceptance_rate": round(pairs.height / attempts, 4) if attempts else None,
            "mean_grounding": round(float(pairs["grounding_score"].mean()), 4) if pairs.height else None,
            "judge_ratings": {
                str(k): int(v)
                for k, v in pl.concat([pairs["judge_rating"], failures["judge_rating"]])
                .drop_nulls()
                .value_counts()
                .sort("judge_rating")
                .iter_rows()
            },
            "model": engine.model_id,
            "prompt_version": fi.prompt_version,
            "judge_prompt_version": fi.judge_prompt_version,
            "examples": _examples(pairs, ("template_id", "instruction", "answer", "judge_rating")),
        }
        writer.commit(report.as_metadata())
    clear_work(store, INSTRUCTION_PAIRS_ASSET, snapshot)
    return report


# ------------------------------------------------------------------------------------ Min-K% Prob
@dataclasses.dataclass(frozen=True)
class AuditOptions:
    k: float = 0.2
    members_path: str | None = None  # texts the reference model was trained on, one per line
    non_members_path: str | None = None  # texts it cannot have seen, one per line
    max_texts: int | None = 200  # per side (a stable sample) and per benchmark
    max_chars: int = 2000  # characters of each text scored
    false_positive_rate: float = 0.05
    n_resamples: int = 1000
    seed: int = 0


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def membership_sets(store: DatasetStore, options: AuditOptions) -> tuple[list[str], list[str], str]:
    """Known members and non-members, and a description of where they came from.

    Files when given. Otherwise the default (WikiMIA's temporal split applied to the crawl):
    members = the ``eval_splits`` train documents of the snapshots older than the newest one (what
    this platform published for training before that snapshot arrived; a reference model trained
    on it has seen them), non-members = the newest snapshot's decontaminated documents. Any other
    reference model needs member and non-member files: nothing else says what it has seen.
    """

    def sample(frame: pl.DataFrame, salt: str) -> list[str]:
        return [t[: options.max_chars] for t in stable_sample(frame, options.max_texts, salt)["text"].to_list()]

    if options.members_path or options.non_members_path:
        if not (options.members_path and options.non_members_path):
            raise ValueError("members_path and non_members_path go together: give both files, or neither for the default sets")
        members = pl.DataFrame({"text": _lines(options.members_path)}).with_row_index("doc_id").cast({"doc_id": pl.String})
        others = pl.DataFrame({"text": _lines(options.non_members_path)}).with_row_index("doc_id").cast({"doc_id": pl.String})
        return sample(members, "members"), sample(others, "non_members"), "files"
    snapshots = store.partitions(DECONTAMINATED_ASSET)
    if len(snapshots) < 2 or store.manifest(EVAL_SPLITS_ASSET, UNPARTITIONED) is None:
        return [], [], "unavailable: needs two snapshots and eval_splits, or member/non-member files"
    newest = snapshots[-1]
    train = store.read_frame(EVAL_SPLITS_ASSET, UNPARTITIONED, "train")
    members = train.filter(pl.col("snapshot") < newest).select("doc_id", "text") if train.height else train
    others = _read(store, DECONTAMINATED_ASSET, newest, "data", {"doc_id": pl.String, "text": pl.String})
    return (
        sample(members, "members"),
        sample(others, "non_members"),
        f"train split before {newest} (members) vs {newest} documents (non-members)",
    )


def materialize_contamination_audit(store: DatasetStore, engine, options: AuditOptions = AuditOptions()) -> dict[str, Any]:
    started = time.perf_counter()
    members, non_members, source = membership_sets(store, options)
    calibration = None
    if members and non_members:
        calibration = calibrate_membership(
            engine.prompt_logprobs(members),
            engine.prompt_logprobs(non_members),
            options.k,
            false_positive_rate=options.false_positive_rate,
            n_resamples=options.n_resamples,
            seed=options.seed,
        )
    items = store.read_frame(EVAL_BENCHMARKS_ASSET, UNPARTITIONED, ITEMS_TABLE)
    rows, per_benchmark = [], {}
    for (benchmark,), group in items.group_by(["benchmark"], maintain_order=True):
        group = group.head(options.max_texts) if options.max_texts else group
        scores = min_k_scores(engine.prompt_logprobs([t[: options.max_chars] for t in group["text"].to_list()]), options.k)
        flagged = flag_members(scores, calibration) if calibration else np.zeros(len(scores), dtype=bool)
        per_benchmark[benchmark] = {
            "items": len(scores),
            "mean_min_k": round(float(np.nanmean(scores)), 4) if len(scores) else None,
            "flagged": int(flagged.sum()) if calibration else None,
            "expected_false_flags": round(options.false_positive_rate * len(scores), 2) if calibration else None,
        }
        rows.append(
            group.select("benchmark", "item_id").with_columns(
                pl.Series("min_k_score", scores, dtype=pl.Float64),
                pl.Series("flagged", flagged if calibration else [None] * len(scores), dtype=pl.Boolean),
            )
        )
    status = "not_calibrated" if calibration is None else ("calibrated" if calibration.has_signal else "no_membership_signal")
    with store.write_partition(CONTAMINATION_AUDIT_ASSET, UNPARTITIONED) as writer:
        writer.write_table("data", (pl.concat(rows) if rows else pl.DataFrame()).to_arrow())
        if calibration is not None:
            writer.write_table(
                "calibration",
                pl.DataFrame(
                    {
                        "role": ["member"] * len(calibration.member_scores) + ["non_member"] * len(calibration.non_member_scores),
                        "min_k_score": np.concatenate([calibration.member_scores, calibration.non_member_scores]),
                    }
                ).to_arrow(),
            )
        metadata = {
            "k": options.k,
            "model": engine.model_id,
            "status": status,
            "membership_sets": source,
            "members": len(members),
            "non_members": len(non_members),
            "per_benchmark": per_benchmark,
            **(_calibration_metadata(calibration) if calibration else {}),
            "wall_seconds": round(time.perf_counter() - started, 3),
        }
        writer.commit(metadata)
    return metadata


def _calibration_metadata(calibration) -> dict[str, Any]:
    def r(x: float) -> float | None:
        return None if not math.isfinite(x) else round(float(x), 4)

    return {
        "auc": r(calibration.auc),
        "auc_ci": [r(calibration.auc_low), r(calibration.auc_high)],
        "auc_ci_level": calibration.confidence,
        "threshold": r(calibration.threshold),
        "false_positive_rate": calibration.false_positive_rate,
        "true_positive_rate": r(calibration.true_positive_rate),
    }
