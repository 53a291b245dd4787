"""GPU synthesis stages (REWIRE rewriting, FineInstructions pairs, Min-K% audit), resumable.

Long generation runs are cut into work units of ``unit_docs`` input documents (sorted by
doc_id, so units are the same on every run). Each finished unit is written under
``<asset>/<snapshot>/_work/<run_key>/<table>/<unit>.parquet`` and marked done last
(``dataplatform.core.synthesis.resume`` has the contract); a crashed run resumes with the units
that have no marker, never redoing or duplicating finished ones. When all units are done the
partition is committed through the normal manifest and the work prefix removed.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from dataplatform.core.synthesis.fineinstructions import (
    FAILURES_SCHEMA as PAIR_FAILURES_SCHEMA,
    PAIRS_SCHEMA,
    FineInstructionsConfig,
    TemplateIndex,
    generate_instruction_pairs,
    load_templates,
)
from dataplatform.core.synthesis.min_k_prob import min_k_audit
from dataplatform.core.synthesis.resume import done_marker_name, output_shard_name, plan_resume, work_fingerprint
from dataplatform.core.synthesis.rewire import FAILURES_SCHEMA, REWRITTEN_SCHEMA, RewireConfig, rewrite_documents
from dataplatform import names
from dataplatform.io.datasets import DatasetStore
from dataplatform.stages.runner import StageReport
from dataplatform.stages.scoring import cached_classifier, committed_classifier

DECONTAMINATED_ASSET, EVAL_BENCHMARKS_ASSET, ITEMS_TABLE = names.DECONTAMINATED, names.EVAL_BENCHMARKS, names.ITEMS
REWRITE_POOL_TABLE, SCORED_ASSET, UNPARTITIONED = names.REWRITE_POOL, names.SCORED, names.UNPARTITIONED

REWRITTEN_ASSET = "rewritten"
INSTRUCTION_TEMPLATES_ASSET = "instruction_templates"
INSTRUCTION_PAIRS_ASSET = "instruction_pairs"
CONTAMINATION_AUDIT_ASSET = "contamination_audit"
FAILURES_TABLE = "failures"
WORK = "_work"


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    return buffer.getvalue()


def run_units(
    store: DatasetStore, asset: str, snapshot: str, frame: pl.DataFrame, run_key: str, unit_docs: int,
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


# ------------------------------------------------------------------------------------ REWIRE
@dataclasses.dataclass(frozen=True)
class RewriteOptions:
    rewire: RewireConfig = RewireConfig()
    unit_docs: int = 64
    min_quality_score: float | None = None  # None: the snapshot's own high-quality cut from `scored`


def materialize_rewritten(store: DatasetStore, snapshot: str, engine, options: RewriteOptions = RewriteOptions()) -> StageReport:
    started = time.perf_counter()
    report = StageReport("rewritten", snapshot)
    pool = store.read_frame(DECONTAMINATED_ASSET, snapshot, REWRITE_POOL_TABLE, columns=["doc_id", "text", "quality_score"])
    upstream = store.require_manifest(DECONTAMINATED_ASSET, snapshot)["version"]
    model = cached_classifier(*committed_classifier(store))
    run_key = work_fingerprint(stage="rewire", upstream=upstream, model=engine.model_id, config=repr(options.rewire),
                               unit=options.unit_docs)

    def work(unit: pl.DataFrame) -> dict[str, pl.DataFrame]:
        rewritten, failures = rewrite_documents(unit.select("doc_id", "text"), engine, options.rewire)
        scores = model.score(rewritten["text"]) if rewritten.height else np.zeros(0, dtype=np.float32)
        return {"data": rewritten.with_columns(pl.Series("quality_score", scores, dtype=pl.Float32)),
                FAILURES_TABLE: failures}

    outputs, progress = run_units(store, REWRITTEN_ASSET, snapshot, pool, run_key, options.unit_docs, work)
    rewritten = outputs.get("data", pl.DataFrame(schema={**REWRITTEN_SCHEMA, "quality_score": pl.Float32}))
    failures = outputs.get(FAILURES_TABLE, pl.DataFrame(schema=FAILURES_SCHEMA))
    threshold = options.min_quality_score
    if threshold is None:
        threshold = store.require_manifest(SCORED_ASSET, snapshot)["metadata"].get("high_quality_threshold") or 0.0
    rewritten = rewritten.with_columns(pl.lit(snapshot).alias("snapshot"))
    keep = rewritten["quality_score"] >= threshold
    kept, below = rewritten.filter(keep), rewritten.filter(~keep).with_columns(pl.lit("quality:below_threshold").alias("drop_reason"))
    with store.write_partition(REWRITTEN_ASSET, snapshot) as writer:
        writer.write_table("data", kept.to_arrow())
        writer.write_table("dropped", below.to_arrow())
        writer.write_table(FAILURES_TABLE, failures.to_arrow())
        tokens = int(rewritten["n_generated_tokens"].sum() or 0) + int(failures["n_generated_tokens"].sum() or 0)
        seconds = time.perf_counter() - started
        report.rows_in, report.rows_out = pool.height, kept.height
        report.drop_counts = {**{f"rewire:{r}" if ":" not in r else r: int(c) for r, c in failures["reason"].value_counts().iter_rows()},
                              **({"quality:below_threshold": below.height} if below.height else {})}
        report.wall_seconds = seconds
        report.shards = progress["units"]
        report.extra = {
            **progress,
            "acceptance_rate": round(kept.height / pool.height, 4) if pool.height else None,
            "tokens_generated": tokens,
            "tokens_per_s": round(tokens / max(seconds, 1e-9), 1),
            "quality_threshold": round(float(threshold), 4),
            "mean_quality_before": round(float(pool["quality_score"].mean()), 4) if pool.height else None,
            "mean_quality_after": round(float(rewritten["quality_score"].mean()), 4) if rewritten.height else None,
            "model": engine.model_id,
            "prompt_version": options.rewire.prompt_version,
        }
        writer.commit(report.as_metadata())
    clear_work(store, REWRITTEN_ASSET, snapshot)
    return report


# ---------------------------------------------------------------------------- FineInstructions
def materialize_instruction_templates(store: DatasetStore, extra_paths: tuple[str, ...] = ()) -> dict[str, Any]:
    templates = load_templates(extra_paths)
    frame = pl.DataFrame(
        {"template_id": [t.template_id for t in templates], "template": [t.template for t in templates],
         "slot_types": [json.dumps(t.slot_types, sort_keys=True) for t in templates], "fits": [t.fits for t in templates]},
        schema={"template_id": pl.String, "template": pl.String, "slot_types": pl.String, "fits": pl.String})
    with store.write_partition(INSTRUCTION_TEMPLATES_ASSET, UNPARTITIONED) as writer:
        writer.write_table("data", frame.to_arrow())
        metadata = {"templates": len(templates), "extra_files": [str(p) for p in extra_paths]}
        writer.commit(metadata)
    return metadata


@dataclasses.dataclass(frozen=True)
class InstructionOptions:
    fineinstructions: FineInstructionsConfig = FineInstructionsConfig()
    unit_docs: int = 64
    extra_template_paths: tuple[str, ...] = ()


def materialize_instruction_pairs(store: DatasetStore, snapshot: str, engine, embedder,
                                  options: InstructionOptions = InstructionOptions()) -> StageReport:
    started = time.perf_counter()
    report = StageReport("instruction_pairs", snapshot)
    docs = store.read_frame(DECONTAMINATED_ASSET, snapshot, "data", columns=["doc_id", "text"])
    templates = load_templates(options.extra_template_paths)
    index = TemplateIndex(templates, embedder)
    upstream = store.require_manifest(DECONTAMINATED_ASSET, snapshot)["version"]
    run_key = work_fingerprint(stage="fineinstructions", upstream=upstream, model=engine.model_id,
                               config=repr(options.fineinstructions), templates=[t.template_id for t in templates],
                               unit=options.unit_docs)

    def work(unit: pl.DataFrame) -> dict[str, pl.DataFrame]:
        pairs, failures = generate_instruction_pairs(unit, index, None, engine, options.fineinstructions)
        return {"data": pairs, FAILURES_TABLE: failures}

    outputs, progress = run_units(store, INSTRUCTION_PAIRS_ASSET, snapshot, docs, run_key, options.unit_docs, work)
    pairs = outputs.get("data", pl.DataFrame(schema=PAIRS_SCHEMA)).with_columns(pl.lit(snapshot).alias("snapshot"))
    failures = outputs.get(FAILURES_TABLE, pl.DataFrame(schema=PAIR_FAILURES_SCHEMA))
    with store.write_partition(INSTRUCTION_PAIRS_ASSET, snapshot) as writer:
        writer.write_table("data", pairs.to_arrow())
        writer.write_table(FAILURES_TABLE, failures.to_arrow())
        seconds = time.perf_counter() - started
        tokens = int(pairs["n_generated_tokens"].sum() or 0) + (int(failures["n_generated_tokens"].sum() or 0)
                                                               if "n_generated_tokens" in failures.columns else 0)
        report.rows_in, report.rows_out = docs.height, pairs.height
        report.drop_counts = {r: int(c) for r, c in failures["reason"].value_counts().iter_rows()}
        report.wall_seconds = seconds
        report.shards = progress["units"]
        report.extra = {**progress, "templates": len(templates), "tokens_generated": tokens,
                        "tokens_per_s": round(tokens / max(seconds, 1e-9), 1),
                        "acceptance_rate": round(pairs.height / max(pairs.height + failures.height, 1), 4),
                        "mean_grounding": round(float(pairs["grounding_score"].mean()), 4) if pairs.height else None,
                        "model": engine.model_id}
        writer.commit(report.as_metadata())
    clear_work(store, INSTRUCTION_PAIRS_ASSET, snapshot)
    return report


# ------------------------------------------------------------------------------------ Min-K% Prob
def perturbed_controls(texts: list[str], seed: int = 0) -> list[str]:
    """Known-unseen controls: each item with its words shuffled (seeded). Same vocabulary and
    length as the benchmark, but a word order no model can have memorised."""
    rng = np.random.default_rng(seed)
    out = []
    for text in texts:
        words = text.split()
        out.append(" ".join(words[i] for i in rng.permutation(len(words))))
    return out


def materialize_contamination_audit(store: DatasetStore, engine, k: float = 0.2, controls_path: str | None = None,
                                    seed: int = 0) -> dict[str, Any]:
    started = time.perf_counter()
    items = store.read_frame(EVAL_BENCHMARKS_ASSET, UNPARTITIONED, ITEMS_TABLE)
    if controls_path:
        controls = [line.strip() for line in open(controls_path, encoding="utf-8") if line.strip()]
    else:
        controls = perturbed_controls(items["text"].to_list(), seed)
    control_lps = engine.prompt_logprobs(controls)
    per_benchmark: dict[str, Any] = {}
    rows = []
    for (benchmark,), group in items.group_by(["benchmark"], maintain_order=True):
        audit = min_k_audit(engine.prompt_logprobs(group["text"].to_list()), control_lps, k)
        per_benchmark[benchmark] = {"auc": None if np.isnan(audit.auc) else round(float(audit.auc), 4),
                                    "mean_min_k": round(audit.mean_benchmark, 4), "mean_min_k_controls": round(audit.mean_control, 4),
                                    "items": audit.n_benchmark, "controls": audit.n_control}
        rows.append(group.select("benchmark", "item_id").with_columns(pl.Series("min_k_score", audit.benchmark_scores, dtype=pl.Float64)))
    scores = pl.concat(rows) if rows else pl.DataFrame()
    with store.write_partition(CONTAMINATION_AUDIT_ASSET, UNPARTITIONED) as writer:
        writer.write_table("data", scores.to_arrow())
        metadata = {"k": k, "model": engine.model_id, "per_benchmark": per_benchmark,
                    "controls": "file" if controls_path else "word-shuffled benchmark items",
                    "wall_seconds": round(time.perf_counter() - started, 3)}
        writer.commit(metadata)
    return metadata
