"""Rules for the synthesis datasets: REWIRE ``rewritten``, FineInstructions ``instruction_templates``
and ``instruction_pairs`` (no Dagster here).

Written against the tables as committed today; each rule names the columns it reads right here, so
a schema change touches one constant: rewritten ``data``/``dropped`` (``doc_id``, ``source_doc_id``,
``quality_score``, ``drop_reason``) and ``failures`` (``source_doc_id``); templates (``template_id``,
``template`` with ``{slot}`` placeholders, ``slot_types`` as a JSON object, ``fits``); pairs ``data``
(``pair_id``, ``source_doc_id``, ``template_id``, ``instruction``, ``answer``, ``grounding_score``)
and ``failures`` (``source_doc_id``).
"""

from __future__ import annotations

import json
import re

import polars as pl

from dataplatform import names
from dataplatform.checks.frames import read_columns, table_rows
from dataplatform.checks.outcome import CheckOutcome, band_problem, outcome, sample_values
from dataplatform.io.datasets import DatasetStore

REWRITTEN_ROWS = ["doc_id", "source_doc_id", "quality_score"]
TEMPLATE_COLUMNS = ["template_id", "template", "slot_types", "fits"]
PAIR_COLUMNS = ["pair_id", "source_doc_id", "template_id", "instruction", "answer", "grounding_score"]
SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
BELOW_CUT = "quality:below_threshold"


def _missing_sources(ids: pl.Series, upstream: pl.Series) -> list[str]:
    """Distinct values of ``ids`` that are not in ``upstream`` (``<null>`` for null ids)."""
    present = ids.drop_nulls()
    return sorted(set(present.filter(~present.is_in(upstream)).to_list())) + (["<null>"] if ids.null_count() else [])


# ---------------------------------------------------------------------------------------- REWIRE
def rewrites_trace_upstream(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """Every rewrite (kept, below the cut, or failed) names in ``source_doc_id`` a document of this
    snapshot's REWIRE pool (``decontaminated``/``rewrite_pool``); kept rewrites have unique doc_ids."""
    pool = read_columns(store, names.DECONTAMINATED, snapshot, names.REWRITE_POOL, ["doc_id"])["doc_id"]
    sources = pl.concat([read_columns(store, names.REWRITTEN, snapshot, t, ["source_doc_id"])["source_doc_id"]
                         for t in (names.DATA, names.DROPPED, names.FAILURES)])
    missing = _missing_sources(sources, pool)
    kept = read_columns(store, names.REWRITTEN, snapshot, names.DATA, ["doc_id"])["doc_id"]
    problems = [f"{len(missing)} source_doc_id(s) not in the REWIRE pool of {snapshot}: {sample_values(missing)}"] if missing else []
    if kept.n_unique() != kept.len() or kept.null_count():
        problems.append(f"kept rewrites have duplicate or null doc_ids ({kept.len() - kept.n_unique()} repeated)")
    return outcome(f"{sources.len()} rewrites trace to the REWIRE pool ({pool.len()} documents)", problems,
                   {"rewrites": sources.len(), "pool": pool.len(), "untraced": len(missing)})


def rewrites_above_cut(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """Every kept rewrite was re-scored at or above the recorded quality cut, every rewrite set
    aside as ``quality:below_threshold`` scored below it."""
    meta = store.require_manifest(names.REWRITTEN, snapshot)["metadata"]
    cut = meta.get("quality_threshold")
    kept = read_columns(store, names.REWRITTEN, snapshot, names.DATA, REWRITTEN_ROWS)
    below = read_columns(store, names.REWRITTEN, snapshot, names.DROPPED, [*REWRITTEN_ROWS, "drop_reason"])
    if cut is None:
        return outcome("", ["no quality_threshold recorded"], {})
    low = kept.filter(pl.col("quality_score").is_null() | (pl.col("quality_score") < cut))
    high = below.filter((pl.col("drop_reason") == BELOW_CUT) & (pl.col("quality_score") >= cut))
    problems = []
    if low.height:
        problems.append(f"{low.height} kept rewrite(s) score below the cut {cut}: {sample_values(low['doc_id'].to_list())}")
    if high.height:
        problems.append(f"{high.height} rewrite(s) set aside as below the cut score >= {cut}")
    return outcome(f"{kept.height} kept rewrites score >= {cut}", problems,
                   {"quality_threshold": cut, "kept": kept.height, "below_cut_kept": low.height})


def rewrite_acceptance(store: DatasetStore, snapshot: str, low: float, high: float, min_rows: int) -> CheckOutcome:
    """Share of the REWIRE pool kept after re-scoring lies in [low, high] (0% means the model's
    outputs were all rejected, ~100% that the quality cut does not filter); judged from ``min_rows``
    pool documents on."""
    manifest = store.require_manifest(names.REWRITTEN, snapshot)
    pool = manifest["metadata"].get("rows_in", 0)
    kept = table_rows(manifest, names.DATA)
    rate = kept / pool if pool else None
    reasons = manifest["metadata"].get("drop_counts", {})
    problems = band_problem("acceptance rate", rate, low, high) if pool >= min_rows else []
    if problems:
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
        problems[0] += f" ({kept} of {pool} kept; set aside: {', '.join(f'{r} {c}' for r, c in top) or 'none'}; " \
                       f"model {manifest['metadata'].get('model')})"
    return outcome(f"{kept} of {pool} pool documents kept" + ("" if pool >= min_rows else f" (fewer than {min_rows}: not judged)"),
                   problems, {"acceptance_rate": rate, "kept": kept, "pool": pool, "band": [low, high], "set_aside": reasons})


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


def pairs_grounded(store: DatasetStore, snapshot: str, min_grounding: float) -> CheckOutcome:
    """Every pair has an instruction and an answer and a grounding score (share of the answer
    quoted from the source) of at least the configured minimum (the recorded ``min_grounding`` when
    the stage records one)."""
    meta = store.require_manifest(names.INSTRUCTION_PAIRS, snapshot)["metadata"]
    threshold = meta.get("min_grounding", min_grounding)
    pairs = read_columns(store, names.INSTRUCTION_PAIRS, snapshot, names.DATA, PAIR_COLUMNS)
    weak = pairs.filter(pl.col("grounding_score").is_null() | (pl.col("grounding_score") < threshold))
    blank = pairs.filter((pl.col("instruction").fill_null("").str.strip_chars() == "") | (pl.col("answer").fill_null("").str.strip_chars() == ""))
    problems = []
    if weak.height:
        problems.append(f"{weak.height} pair(s) grounded below {threshold}: {sample_values(weak['pair_id'].to_list())}")
    if blank.height:
        problems.append(f"{blank.height} pair(s) with an empty instruction or answer")
    return outcome(f"{pairs.height} pairs grounded >= {threshold}", problems,
                   {"pairs": pairs.height, "min_grounding": threshold, "below": weak.height,
                    "min_grounding_score": pairs["grounding_score"].cast(pl.Float64).min()})


def pairs_traceable(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """Pair ids are present and unique; every pair's ``template_id`` is in ``instruction_templates``
    and every pair's (and failure's) ``source_doc_id`` is a ``decontaminated`` document of this snapshot."""
    pairs = read_columns(store, names.INSTRUCTION_PAIRS, snapshot, names.DATA, PAIR_COLUMNS)
    failures = read_columns(store, names.INSTRUCTION_PAIRS, snapshot, names.FAILURES, ["source_doc_id"])
    docs = read_columns(store, names.DECONTAMINATED, snapshot, names.DATA, ["doc_id"])["doc_id"]
    templates = read_columns(store, names.INSTRUCTION_TEMPLATES, names.UNPARTITIONED, names.DATA, ["template_id"])["template_id"]
    problems = []
    ids = pairs["pair_id"]
    if ids.null_count() or ids.n_unique() != ids.len():
        problems.append(f"pair ids missing ({ids.null_count()}) or repeated ({ids.len() - ids.n_unique()})")
    unknown_templates = _missing_sources(pairs["template_id"], templates)
    if unknown_templates:
        problems.append(f"{len(unknown_templates)} template_id(s) not in instruction_templates: {sample_values(unknown_templates)}")
    untraced = _missing_sources(pl.concat([pairs["source_doc_id"], failures["source_doc_id"]]), docs)
    if untraced:
        problems.append(f"{len(untraced)} source_doc_id(s) not decontaminated documents of {snapshot}: {sample_values(untraced)}")
    return outcome(f"{pairs.height} pairs and {failures.height} failures trace to templates and documents", problems,
                   {"pairs": pairs.height, "failures": failures.height, "unknown_templates": len(unknown_templates),
                    "untraced_sources": len(untraced)})
