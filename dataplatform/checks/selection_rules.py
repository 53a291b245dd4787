"""Rules for the selection datasets: ``toxicity``, ``color_conditional_model`` and ``color_scores``
(no Dagster here)."""

from __future__ import annotations

from dataplatform import names
from dataplatform.checks.frames import scan_tables
from dataplatform.checks.gx_validation import between, columns_match, not_null
from dataplatform.checks.outcome import CheckOutcome, outcome
from dataplatform.checks.suites import gx_outcome, unique_over_partition
from dataplatform.core.toxicity import MAX_COLUMN, score_column
from dataplatform.io.datasets import DatasetStore
from dataplatform.stages.color_filter import COLOR_SCORES_SCHEMA
from dataplatform.stages.toxicity import toxicity_schema

SCORED_TABLES = (names.DATA, names.DROPPED)
SCORED_ROW = ("n_tokens_scored", ">", 0)  # color_scores rows the models scored


def toxicity_suite(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """toxicity: schema for the scorer's dimensions, doc_id unique over kept + dropped, every score
    present and in [0, 1] (on a seeded sample of both tables)."""
    dimensions = tuple(store.require_manifest(names.TOXICITY, snapshot)["metadata"].get("dimensions", ()))
    columns = [*map(score_column, dimensions), MAX_COLUMN]
    rules = [
        columns_match(toxicity_schema(dimensions).names),
        not_null("doc_id"),
        *unique_over_partition(store, names.TOXICITY, snapshot, SCORED_TABLES),
    ]
    rules += [rule for c in columns for rule in (not_null(c), between(c, 0.0, 1.0))]
    frame = scan_tables(store, names.TOXICITY, snapshot, SCORED_TABLES)
    return gx_outcome(frame if frame is not None else store.scan(names.TOXICITY, snapshot), rules, f"toxicity/{snapshot}")


MIN_TARGET_DOCUMENTS = 5


def color_target_readable(path: str | None) -> CheckOutcome:
    """The CoLoR-Filter target set parses (.txt blocks or .jsonl ``text``), and has enough documents
    to fine-tune on (a handful is the minimum for a loss that means anything)."""
    from dataplatform.core import color_filter as cf

    try:
        texts = cf.read_target_texts(path) if path else cf.default_target_texts()
    except (FileNotFoundError, ValueError) as exc:
        return outcome("color target unreadable", [str(exc)], {"path": path or "bundled"})
    problems = [] if len(texts) >= MIN_TARGET_DOCUMENTS else [f"only {len(texts)} target documents (< {MIN_TARGET_DOCUMENTS})"]
    return outcome(
        f"{len(texts)} target documents",
        problems,
        {"path": path or "bundled", "documents": len(texts), "characters": sum(map(len, texts))},
    )


def target_loss_reduced(store: DatasetStore) -> CheckOutcome:
    """Fine-tuning lowered the conditional model's loss on the target set (else its scores carry no
    target signal, and CoLoR-Filter would select by noise)."""
    result = store.require_manifest(names.COLOR_CONDITIONAL_MODEL, names.UNPARTITIONED)["metadata"].get("result", {})
    before, after = result.get("target_loss_before"), result.get("target_loss_after")
    problems = (
        []
        if before is not None and after is not None and after < before
        else [f"target loss {before} -> {after}: fine-tuning did not lower it"]
    )
    return outcome(f"target loss {before} -> {after}", problems, {"target_loss_before": before, "target_loss_after": after})


def color_scores_suite(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """color_scores: schema, doc_id unique over kept + dropped, both losses >= 0, and a score on every
    row whose tokens were scored."""
    rules = [
        columns_match(COLOR_SCORES_SCHEMA.names),
        not_null("doc_id"),
        *unique_over_partition(store, names.COLOR_SCORES, snapshot, SCORED_TABLES),
        between("loss_prior", 0.0, None),
        between("loss_conditional", 0.0, None),
        not_null("color_score", where=SCORED_ROW),
    ]
    frame = scan_tables(store, names.COLOR_SCORES, snapshot, SCORED_TABLES)
    return gx_outcome(frame if frame is not None else store.scan(names.COLOR_SCORES, snapshot), rules, f"color_scores/{snapshot}")
