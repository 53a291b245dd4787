"""Rules for the synthesis datasets: REWIRE ``rewire_outputs``, ``rewrite_classifier`` and
``rewritten``, FineInstructions ``instruction_templates`` and ``instruction_pairs`` (no Dagster here).

Each rule names the columns it reads right here, so a schema change touches one place:
rewire_outputs ``data`` (``doc_id``, ``source_doc_id``, ``band``, ``text``, ``prompt_version``,
``model``) and ``failures`` (``source_doc_id``, ``reason``, ``prompt_version``, ``model``);
rewritten ``data``/``dropped`` (``doc_id``, ``source_doc_id``, ``rewrite_score``, ``drop_reason``);
templates (``template_id``, ``template`` with ``{slot}`` placeholders, ``slot_types`` as a JSON
object, ``fits``); pairs ``data`` (``pair_id``, ``source_doc_id``, ``template_id``, ``instruction``,
``answer``, ``grounding_score``, ``judge_rating``) and ``failures`` (``source_doc_id``, ``template_id``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import polars as pl

from dataplatform import names
from dataplatform.checks.frames import read_columns, table_rows
from dataplatform.checks.outcome import (
    CheckOutcome,
    band_problem,
    outcome,
    sample_values,
)
from dataplatform.core.synthesis.rewire import REASONS as REWIRE_REASONS
from dataplatform.io.datasets import DatasetStore
from dataplatform.stages.synthesis import BELOW_RANK_CUT

TEMPLATE_COLUMNS = ["template_id", "template", "slot_types", "fits"]
PAIR_COLUMNS = ["pair_id", "source_doc_id", "template_id", "instruction", "answer", "grounding_score", "judge_rating"]
SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
BELOW_QUALITY_CUT = "quality:below_threshold"  # scored: the low band REWIRE's default pool also rewrites


def _missing_sources(ids: pl.Series, upstream: pl.Series) -> list[str]:
    """Distinct values of ``ids`` that are not in ``upstream`` (``<null>`` for null ids)."""
    present = ids.drop_nulls()
    return sorted(set(present.filter(~present.is_in(upstream)).to_list())) + (["<null>"] if ids.null_count() else [])


def committed_file_problems(store: DatasetStore, asset: str, partition: str, manifest: dict[str, Any]) -> list[str]:
    """The manifest's ``model_file`` is among its files, and every committed file is in storage with its size."""
    model_file = manifest["metadata"].get("model_file")
    files = manifest.get("files", {})
    problems = [] if model_file in files else [f"model file {model_file!r} is not among the committed files {sorted(files)}"]
    for name, entry in files.items():
        try:
            size = store.object_store.size(f"{asset}/{partition}/{entry['path']}")
        except Exception:  # noqa: BLE001 - a missing file is a finding
            size = None
        if size != entry["bytes"]:
            problems.append(f"{name}: {size} bytes in storage, {entry['bytes']} committed")
    return problems


# ---------------------------------------------------------------------------------------- REWIRE
def _pool_bands(store: DatasetStore, snapshot: str) -> dict[str, pl.Series]:
    """The upstream documents of each REWIRE pool band (see ``stages.synthesis.rewire_pool``)."""
    low = read_columns(store, names.SCORED, snapshot, names.DROPPED, ["doc_id", "drop_reason"])
    return {
        "high_quality": read_columns(store, names.DECONTAMINATED, snapshot, names.DATA, ["doc_id"])["doc_id"],
        "rewrite_band": read_columns(store, names.DECONTAMINATED, snapshot, names.REWRITE_POOL, ["doc_id"])["doc_id"],
        "low_quality": low.filter(pl.col("drop_reason") == BELOW_QUALITY_CUT)["doc_id"],
    }


def _pool_size_problems(meta: dict, upstream: dict[str, pl.Series]) -> list[str]:
    """The pool the stage reports matches upstream: the two upper bands whole, the low band less
    what the stage's own dedup/decontamination set aside (``low_quality_set_aside``)."""
    problems = []
    for band, docs in upstream.items():
        if f"pool_{band}" not in meta:
            continue
        expected = docs.len() - (sum(meta.get("low_quality_set_aside", {}).values()) if band == "low_quality" else 0)
        if meta[f"pool_{band}"] != expected:
            problems.append(f"pool_{band} is {meta[f'pool_{band}']} but upstream gives {expected}")
    return problems


def rewire_sources_in_pool(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """Every rewrite's ``source_doc_id`` is a document of the band of this snapshot's REWIRE pool it
    records in ``band`` (``high_quality``: ``decontaminated``/data, ``rewrite_band``:
    ``decontaminated``/rewrite_pool, ``low_quality``: ``scored``'s below-threshold documents), and a
    band the reported pool includes; every failure's source is in the pool; each attempted document
    appears once (rewrites + failures = attempted); rewrite doc_ids are unique; the reported band
    sizes match upstream."""
    manifest = store.require_manifest(names.REWIRE_OUTPUTS, snapshot)
    meta = manifest["metadata"]
    rewrites = read_columns(store, names.REWIRE_OUTPUTS, snapshot, names.DATA, ["doc_id", "source_doc_id", "band"])
    failures = read_columns(store, names.REWIRE_OUTPUTS, snapshot, names.FAILURES, ["source_doc_id"])
    upstream = _pool_bands(store, snapshot)
    reported = {k.removeprefix("pool_") for k in meta if k.startswith("pool_") and k != "pool_size"}
    in_pool = pl.concat([docs for band, docs in upstream.items() if band in reported])
    problems = _pool_size_problems(meta, upstream)
    outside = sorted(set(rewrites["band"].drop_nulls()) - reported) + (["<null>"] if rewrites["band"].null_count() else [])
    if outside:
        problems.append(f"rewrites from band(s) {outside}, not in the reported pool {sorted(reported)} ({meta.get('pool')})")
    untraced = []
    for (band,), group in rewrites.group_by(["band"]):
        untraced += _missing_sources(group["source_doc_id"], upstream.get(band, pl.Series([], dtype=pl.String)))
    untraced += _missing_sources(failures["source_doc_id"], in_pool)
    if untraced:
        problems.append(
            f"{len(untraced)} source_doc_id(s) not in their band of the REWIRE pool of {snapshot}: "
            f"{sample_values(sorted(set(untraced)))}"
        )
    attempted = pl.concat([rewrites["source_doc_id"], failures["source_doc_id"]])
    if attempted.n_unique() != attempted.len():
        problems.append(f"{attempted.len() - attempted.n_unique()} document(s) attempted more than once")
    if attempted.len() != meta.get("attempted", attempted.len()):
        problems.append(f"{attempted.len()} rewrites + failures for {meta.get('attempted')} attempted documents")
    ids = rewrites["doc_id"]
    if ids.null_count() or ids.n_unique() != ids.len():
        problems.append(f"rewrite doc_ids missing ({ids.null_count()}) or repeated ({ids.len() - ids.n_unique()})")
    return outcome(
        f"{rewrites.height} rewrites and {failures.height} failures trace to the REWIRE pool "
        f"({in_pool.len()} documents in {sorted(reported)})",
        problems,
        {
            "rewrites": rewrites.height,
            "failures": failures.height,
            "pool": in_pool.len(),
            "untraced": len(untraced),
            "bands": sorted(reported),
        },
    )


def rewire_provenance(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """Every row (rewrite and failure) records the ``prompt_version`` and ``model`` of the
    materialization (so rewrites of two configurations never mix unnoticed); every rewrite has text;
    every failure has a known ``rewire:<rule>`` reason."""
    meta = store.require_manifest(names.REWIRE_OUTPUTS, snapshot)["metadata"]
    expected = {"prompt_version": meta.get("prompt_version"), "model": meta.get("model")}
    rewrites = read_columns(store, names.REWIRE_OUTPUTS, snapshot, names.DATA, ["doc_id", "text", *expected])
    failures = read_columns(store, names.REWIRE_OUTPUTS, snapshot, names.FAILURES, ["source_doc_id", "reason", *expected])
    problems = [f"no {column} recorded in the manifest" for column, value in expected.items() if not value]
    for table, frame in (("rewrites", rewrites), ("failures", failures)):
        for column, value in expected.items():
            wrong = frame.filter(pl.col(column).is_null() | (pl.col(column) != value)).height if value else 0
            if wrong:
                problems.append(
                    f"{wrong} {table} without {column} {value!r}: "
                    f"{sample_values(sorted(set(frame[column].drop_nulls()) - {value}) or ['<null>'])}"
                )
    blank = rewrites.filter(pl.col("text").fill_null("").str.strip_chars() == "")
    if blank.height:
        problems.append(f"{blank.height} rewrite(s) with empty text: {sample_values(blank['doc_id'].to_list())}")
    unknown = sorted(set(failures["reason"].fill_null("<null>")) - set(REWIRE_REASONS))
    if unknown:
        problems.append(f"failures with unknown reasons: {sample_values(unknown)}")
    return outcome(
        f"{rewrites.height} rewrites and {failures.height} failures record {expected}",
        problems,
        {**expected, "failure_reasons": dict(failures["reason"].fill_null("<null>").value_counts().iter_rows())},
    )


def rewire_acceptance(store: DatasetStore, snapshot: str, low: float, high: float, min_documents: int) -> CheckOutcome:
    """Share of the attempted documents that gave a usable rewrite lies in [low, high]; judged from
    ``min_documents`` attempts on. Near 0 means the model, prompt profile or token budget does not
    work (every output truncated or malformed: the failures table says which)."""
    manifest = store.require_manifest(names.REWIRE_OUTPUTS, snapshot)
    attempted = manifest["metadata"].get("attempted", manifest["metadata"].get("rows_in", 0))
    accepted = table_rows(manifest, names.DATA)
    rate = accepted / attempted if attempted else None
    reasons = manifest["metadata"].get("drop_counts", {})
    problems = band_problem("acceptance rate", rate, low, high) if attempted >= min_documents else []
    if problems:
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
        problems[0] += (
            f" ({accepted} of {attempted} attempted documents rewritten; failures: "
            f"{', '.join(f'{r} {c}' for r, c in top) or 'none'}; model {manifest['metadata'].get('model')}, "
            f"prompt {manifest['metadata'].get('prompt_version')})"
        )
    judged = "" if attempted >= min_documents else f" (fewer than {min_documents} attempts: not judged)"
    return outcome(
        f"{accepted} of {attempted} attempted documents rewritten{judged}",
        problems,
        {"acceptance_rate": rate, "accepted": accepted, "attempted": attempted, "band": [low, high], "failures": reasons},
    )


def rewrite_classifier_auc(store: DatasetStore, min_auc: float, min_heldout: int) -> CheckOutcome:
    """The committed rewrite classifier's held-out ROC AUC is at least ``min_auc``, and its model file
    and sidecar are in storage with the committed size. An AUC measured on fewer than ``min_heldout``
    held-out rewrites or references is no evidence either way: a WARN asking for more rewrites."""
    manifest = store.require_manifest(names.REWRITE_CLASSIFIER, names.UNPARTITIONED)
    metrics = manifest["metadata"].get("metrics") or {}
    auc = metrics.get("roc_auc")
    negatives, positives = int(metrics.get("n_test_negative", 0)), int(metrics.get("n_test_positive", 0))
    problems = committed_file_problems(store, names.REWRITE_CLASSIFIER, names.UNPARTITIONED, manifest)
    figures = {
        "roc_auc": auc,
        "min_auc": min_auc,
        "heldout_rewrites": negatives,
        "heldout_references": positives,
        "negatives": manifest["metadata"].get("negatives"),
        "model_file": manifest["metadata"].get("model_file"),
    }
    if problems or auc is None:
        return outcome("", problems or ["no held-out ROC AUC recorded"], figures)
    if min(negatives, positives) < min_heldout:
        thin = (
            f"held-out ROC AUC {auc:.3f} rests on {negatives} held-out rewrites and {positives} references (fewer than "
            f"{min_heldout}): not evidence that the classifier ranks rewrites; materialize more rewrites "
            "(rewire_outputs max_docs) and retrain"
        )
        return outcome("", [thin], figures, severity="warn")
    problems = [f"held-out ROC AUC {auc:.3f} < {min_auc:g}"] if auc < min_auc else []
    return outcome(
        f"held-out ROC AUC {auc:.3f} >= {min_auc:g} ({negatives} rewrites, {positives} references held out)", problems, figures
    )


def rewritten_trace_upstream(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """Every row of ``rewritten`` (kept and below the rank cut) is a rewrite of this snapshot's
    ``rewire_outputs`` with the same ``source_doc_id``, and every rewrite is in exactly one of them;
    kept doc_ids are unique."""
    outputs = read_columns(store, names.REWIRE_OUTPUTS, snapshot, names.DATA, ["doc_id", "source_doc_id"])
    ranked = pl.concat(
        [read_columns(store, names.REWRITTEN, snapshot, t, ["doc_id", "source_doc_id"]) for t in (names.DATA, names.DROPPED)]
    )
    kept = read_columns(store, names.REWRITTEN, snapshot, names.DATA, ["doc_id"])["doc_id"]
    traced = ranked.join(outputs, on=["doc_id", "source_doc_id"], how="semi")
    untraced = ranked.join(traced, on=["doc_id", "source_doc_id"], how="anti")
    problems = []
    if untraced.height or ranked["doc_id"].null_count():
        problems.append(
            f"{untraced.height} row(s) are not rewrites of rewire_outputs/{snapshot} with that source_doc_id: "
            f"{sample_values(untraced['doc_id'].fill_null('<null>').to_list())}"
        )
    missing = _missing_sources(outputs["doc_id"], ranked["doc_id"])
    if missing:
        problems.append(f"{len(missing)} rewrite(s) of rewire_outputs neither kept nor set aside: {sample_values(missing)}")
    if ranked["doc_id"].n_unique() != ranked.height:
        problems.append(f"{ranked.height - ranked['doc_id'].n_unique()} rewrite(s) appear more than once")
    if kept.n_unique() != kept.len() or kept.null_count():
        problems.append(f"kept rewrites have duplicate or null doc_ids ({kept.len() - kept.n_unique()} repeated)")
    return outcome(
        f"{ranked.height} ranked rewrites trace to rewire_outputs ({outputs.height} rewrites)",
        problems,
        {"ranked": ranked.height, "rewrites": outputs.height, "untraced": untraced.height, "unranked": len(missing)},
    )


def rewritten_top_by_rank(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """REWIRE's rank cut held: the kept rewrites are the ``ceil(keep_fraction * n)`` best by
    ``rewrite_score`` (every kept score >= every score set aside; NaN scores rank last), with the
    recorded ``keep_fraction``; every row set aside says ``rewire:below_rank_cut``."""
    keep_fraction = store.require_manifest(names.REWRITTEN, snapshot)["metadata"].get("keep_fraction")
    kept = read_columns(store, names.REWRITTEN, snapshot, names.DATA, ["doc_id", "rewrite_score"])
    below = read_columns(store, names.REWRITTEN, snapshot, names.DROPPED, ["doc_id", "rewrite_score", "drop_reason"])
    if keep_fraction is None:
        return outcome("", ["no keep_fraction recorded"], {})
    n = kept.height + below.height
    expected = min(n, math.ceil(keep_fraction * n - 1e-9))
    score = pl.col("rewrite_score").cast(pl.Float64).fill_nan(None)
    lowest_kept = kept.select(score.fill_null(-math.inf).min()).item()
    overtaken = below.filter(score > lowest_kept) if kept.height else below.head(0)
    problems = []
    if kept.height != expected:
        problems.append(f"{kept.height} of {n} rewrites kept, the top {keep_fraction:g} by rank is {expected}")
    if overtaken.height:
        problems.append(
            f"{overtaken.height} rewrite(s) set aside score above the lowest kept score {lowest_kept:.4f}: "
            f"{sample_values(overtaken['doc_id'].to_list())}"
        )
    reasons = sorted(set(below["drop_reason"].fill_null("<null>")) - {BELOW_RANK_CUT})
    if reasons:
        problems.append(f"rows set aside with reasons other than {BELOW_RANK_CUT}: {sample_values(reasons)}")
    return outcome(
        f"{kept.height} of {n} rewrites kept, top {keep_fraction:g} by rewrite_score",
        problems,
        {
            "keep_fraction": keep_fraction,
            "kept": kept.height,
            "rewrites": n,
            "expected_kept": expected,
            "lowest_kept_score": lowest_kept,
            "overtaken": overtaken.height,
        },
    )


# ------------------------------------------------------------------------------- FineInstructions
def _template_problems(row: dict) -> list[str]:
    tid, text = row["template_id"], row["template"] or ""
    try:
        slot_types = json.loads(row["slot_types"] or "")
    except (TypeError, ValueError):
        return [f"{tid}: slot_types is not JSON"]
    if not isinstance(slot_types, dict) or not all(isinstance(v, str) and v.strip() for v in slot_types.values()):
        return [f"{tid}: slot_types must map each slot to a type name"]
    slots = set(SLOT.findall(text))
    problems = []
    if not text.strip():
        problems.append(f"{tid}: empty template")
    if slots != set(slot_types):
        problems.append(f"{tid}: slots {sorted(slots)} != slot_types {sorted(slot_types)}")
    if "{" in SLOT.sub("", text) or "}" in SLOT.sub("", text):
        problems.append(f"{tid}: unbalanced or malformed braces")
    if not (row["fits"] or "").strip():
        problems.append(f"{tid}: no 'fits' description")
    return problems


def templates_well_formed(store: DatasetStore) -> CheckOutcome:
    """Template ids are present and unique; every ``{slot}`` is a well-formed name with a type in
    ``slot_types`` and every typed slot appears in the template; no stray braces; ``fits`` is set."""
    templates = read_columns(store, names.INSTRUCTION_TEMPLATES, names.UNPARTITIONED, names.DATA, TEMPLATE_COLUMNS)
    ids = templates["template_id"]
    problems = []
    if ids.null_count() or ids.n_unique() != ids.len():
        repeated = ids.filter(ids.is_duplicated()).unique().sort().to_list()
        problems.append(f"template ids missing ({ids.null_count()}) or repeated: {sample_values(repeated)}")
    for row in templates.iter_rows(named=True):
        problems += _template_problems(row)
    if not templates.height:
        problems.append("no templates")
    return outcome(f"{templates.height} templates well formed", problems, {"templates": templates.height})


def pairs_grounded(store: DatasetStore, snapshot: str, min_grounding: float, min_judge_rating: int) -> CheckOutcome:
    """Every pair has an instruction and an answer, a grounding score (share of the answer quoted
    from the source) of at least the minimum and, when the judge ran (``judge_prompt_version``
    recorded), a judge rating of at least the minimum. The thresholds the stage recorded win over
    the configured ones."""
    meta = store.require_manifest(names.INSTRUCTION_PAIRS, snapshot)["metadata"]
    threshold = meta.get("min_grounding", min_grounding)
    judged = meta.get("judge_prompt_version") is not None
    min_rating = meta.get("min_judge_rating", min_judge_rating)
    pairs = read_columns(store, names.INSTRUCTION_PAIRS, snapshot, names.DATA, PAIR_COLUMNS)
    weak = pairs.filter(pl.col("grounding_score").is_null() | (pl.col("grounding_score").cast(pl.Float64) < threshold))
    blank = pairs.filter(
        (pl.col("instruction").fill_null("").str.strip_chars() == "") | (pl.col("answer").fill_null("").str.strip_chars() == "")
    )
    rejected = (
        pairs.filter(pl.col("judge_rating").is_null() | (pl.col("judge_rating").cast(pl.Int64) < min_rating))
        if judged
        else pairs.head(0)
    )
    problems = []
    if weak.height:
        problems.append(f"{weak.height} pair(s) grounded below {threshold}: {sample_values(weak['pair_id'].to_list())}")
    if blank.height:
        problems.append(f"{blank.height} pair(s) with an empty instruction or answer")
    if rejected.height:
        problems.append(
            f"{rejected.height} pair(s) rated below {min_rating} by the judge ({meta.get('judge_prompt_version')}) "
            f"or not rated: {sample_values(rejected['pair_id'].to_list())}"
        )
    return outcome(
        f"{pairs.height} pairs grounded >= {threshold}" + (f", rated >= {min_rating}" if judged else " (no judge)"),
        problems,
        {
            "pairs": pairs.height,
            "min_grounding": threshold,
            "below": weak.height,
            "min_grounding_score": pairs["grounding_score"].cast(pl.Float64).min(),
            "min_judge_rating": min_rating if judged else None,
            "below_judge_rating": rejected.height,
        },
    )


def pairs_traceable(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """Pair ids are present and unique; every pair's and failure's ``template_id`` is in the
    committed ``instruction_templates`` (seed bank, template files and query-log templates alike)
    and every ``source_doc_id`` is a document the stage instantiates templates on: this snapshot's
    ``decontaminated`` documents (``data`` and ``rewrite_pool``)."""
    pairs = read_columns(store, names.INSTRUCTION_PAIRS, snapshot, names.DATA, PAIR_COLUMNS)
    failures = read_columns(store, names.INSTRUCTION_PAIRS, snapshot, names.FAILURES, ["source_doc_id", "template_id"])
    docs = pl.concat(
        [read_columns(store, names.DECONTAMINATED, snapshot, t, ["doc_id"])["doc_id"] for t in (names.DATA, names.REWRITE_POOL)]
    )
    templates = read_columns(store, names.INSTRUCTION_TEMPLATES, names.UNPARTITIONED, names.DATA, ["template_id"])["template_id"]
    problems = []
    ids = pairs["pair_id"]
    if ids.null_count() or ids.n_unique() != ids.len():
        problems.append(f"pair ids missing ({ids.null_count()}) or repeated ({ids.len() - ids.n_unique()})")
    unknown_templates = _missing_sources(pl.concat([pairs["template_id"], failures["template_id"]]), templates)
    if unknown_templates:
        problems.append(
            f"{len(unknown_templates)} template_id(s) not in instruction_templates: {sample_values(unknown_templates)}"
        )
    untraced = _missing_sources(pl.concat([pairs["source_doc_id"], failures["source_doc_id"]]), docs)
    if untraced:
        problems.append(f"{len(untraced)} source_doc_id(s) not decontaminated documents of {snapshot}: {sample_values(untraced)}")
    return outcome(
        f"{pairs.height} pairs and {failures.height} failures trace to {templates.len()} templates and {docs.len()} documents",
        problems,
        {
            "pairs": pairs.height,
            "failures": failures.height,
            "unknown_templates": len(unknown_templates),
            "untraced_sources": len(untraced),
        },
    )
