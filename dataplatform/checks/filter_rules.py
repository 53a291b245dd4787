"""Rules for ``filtered``, ``quality_classifier`` and ``scored`` (no Dagster here)."""

from __future__ import annotations

import polars as pl

from dataplatform import names
from dataplatform.checks.frames import read_columns
from dataplatform.checks.outcome import CheckOutcome, outcome
from dataplatform.core.schemas import FILTER_FLAGS
from dataplatform.io.datasets import DatasetStore

# The quality label each table of `scored` holds.
SCORED_LABELS = {
    names.DATA: names.HIGH_QUALITY,
    names.REWRITE_CANDIDATES: names.REWRITE_CANDIDATE,
    names.DROPPED: names.LOW_QUALITY,
}


def kept_rows_pass_every_rule(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """Every kept row of ``filtered`` passes every rule family (all ``passes_*`` flags true, no
    drop_reason) and every row of ``dropped`` names its reason as ``<stage>:<rule>``."""
    kept = read_columns(store, names.FILTERED, snapshot, names.DATA, ["doc_id", "drop_reason", *FILTER_FLAGS])
    dropped = read_columns(store, names.FILTERED, snapshot, names.DROPPED, ["doc_id", "drop_reason"])
    failing = kept.filter(
        ~pl.all_horizontal([pl.col(f).fill_null(False) for f in FILTER_FLAGS]) | pl.col("drop_reason").is_not_null()
    )
    unnamed = dropped.filter(~pl.col("drop_reason").fill_null("").str.contains(r"^[a-z0-9_]+:\S+$"))
    problems = []
    if failing.height:
        problems.append(
            f"{failing.height} kept row(s) failed a rule family or carry a drop_reason: "
            f"{', '.join(failing['doc_id'].head(5).to_list())}"
        )
    if unnamed.height:
        problems.append(f"{unnamed.height} dropped row(s) without a '<stage>:<rule>' reason")
    return outcome(
        f"{kept.height} kept rows pass every rule family; {dropped.height} rejects have reasons",
        problems,
        {"kept": kept.height, "dropped": dropped.height, "kept_failing": failing.height, "unnamed_rejects": unnamed.height},
    )


def classifier_heldout_auc(store: DatasetStore, min_auc: float) -> CheckOutcome:
    """The committed classifier's held-out ROC AUC is at least ``min_auc`` and its model file (and
    sidecar) are in storage with the recorded size."""
    manifest = store.require_manifest(names.QUALITY_CLASSIFIER, names.UNPARTITIONED)
    metrics = manifest["metadata"].get("metrics") or {}
    auc = metrics.get("roc_auc")
    problems = []
    if auc is None:
        problems.append("no held-out ROC AUC recorded")
    elif auc < min_auc:
        problems.append(f"held-out ROC AUC {auc:.3f} < {min_auc:g}")
    model_file = manifest["metadata"].get("model_file")
    files = manifest.get("files", {})
    if model_file not in files:
        problems.append(f"model file {model_file!r} is not among the committed files {sorted(files)}")
    for name, entry in files.items():
        key = f"{names.QUALITY_CLASSIFIER}/{names.UNPARTITIONED}/{entry['path']}"
        try:
            size = store.object_store.size(key)
        except Exception:  # noqa: BLE001 - a missing file is a finding
            size = None
        if size != entry["bytes"]:
            problems.append(f"{name}: {size} bytes in storage, {entry['bytes']} committed")
    return outcome(
        f"held-out ROC AUC {auc} >= {min_auc:g}",
        problems,
        {
            "roc_auc": auc,
            "min_auc": min_auc,
            "n_test": metrics.get("n_test", 0),
            "model_file": model_file,
            "source": manifest["metadata"].get("source", "trained"),
        },
    )


def ranked_by_score(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """``scored`` splits by rank: every kept score >= every REWIRE-pool score >= every dropped score,
    each table holds only its quality label, and the recorded high-quality cut is <= the lowest kept score."""
    problems, bounds = [], {}
    for table, label in SCORED_LABELS.items():
        frame = read_columns(store, names.SCORED, snapshot, table, ["quality_score", "quality_label"])
        wrong = frame.filter(pl.col("quality_label").ne_missing(label)).height
        if wrong:
            problems.append(f"{wrong} row(s) of {table} are not labelled {label}")
        if frame["quality_score"].null_count():
            problems.append(f"{frame['quality_score'].null_count()} row(s) of {table} have no quality_score")
        bounds[table] = (frame["quality_score"].min(), frame["quality_score"].max())
    order = [t for t in SCORED_LABELS if bounds[t][0] is not None]
    for higher, lower in zip(order, order[1:]):
        if bounds[higher][0] < bounds[lower][1]:
            problems.append(f"lowest {higher} score {bounds[higher][0]:.4f} < highest {lower} score {bounds[lower][1]:.4f}")
    cut = store.require_manifest(names.SCORED, snapshot)["metadata"].get("high_quality_threshold")
    if cut is not None and bounds[names.DATA][0] is not None and bounds[names.DATA][0] < cut - 1e-4:
        problems.append(f"kept score {bounds[names.DATA][0]:.4f} below the recorded cut {cut}")
    return outcome(
        "kept >= REWIRE pool >= dropped by quality_score",
        problems,
        {"score_ranges": {t: [b[0], b[1]] for t, b in bounds.items()}, "high_quality_threshold": cut},
    )
