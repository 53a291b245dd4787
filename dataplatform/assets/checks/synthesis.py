"""Checks of REWIRE (``rewire_outputs`` -> ``rewrite_classifier`` -> ``rewritten``) and FineInstructions
(``instruction_templates``, ``instruction_pairs``); the rules are in :mod:`dataplatform.checks.synthesis_rules`.

``rewritten`` keeps the top ``keep_fraction`` *by rank*, so its kept share is fixed by the
configuration (checked exactly by ``kept_top_by_rank``); the acceptance rate that says whether the
model works is ``rewire_outputs``' share of attempted documents that gave a usable rewrite."""

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.quality_gates import WARN, run_rule
from dataplatform.checks import synthesis_rules
from dataplatform.resources.storage import DatasetStorageResource


# ------------------------------------------------------------------------ REWIRE step 1: rewire_outputs
@dg.asset_check(
    asset=names.REWIRE_OUTPUTS,
    name="sources_in_pool",
    blocking=True,
    additional_deps=[names.DECONTAMINATED, names.SCORED],
    description="Every rewrite's source_doc_id is a document of the REWIRE pool band it records (high_quality: "
    "decontaminated data, rewrite_band: decontaminated rewrite_pool, low_quality: scored below the "
    "quality cut) and the pool the stage reports includes that band; every failure's source is in "
    "the pool; each attempted document appears once; the reported band sizes match upstream.",
)
def rewire_outputs_sources_in_pool(
    context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context, store, names.REWIRE_OUTPUTS, lambda s: synthesis_rules.rewire_sources_in_pool(store, s), partitioned=True
    )


@dg.asset_check(
    asset=names.REWIRE_OUTPUTS,
    name="provenance_recorded",
    blocking=True,
    description="Every rewrite and failure records the prompt_version and model of the materialization, every "
    "rewrite has text, and every failure has a known rewire:<rule> reason, so rewrites of two "
    "configurations never train the rewrite classifier together unnoticed.",
)
def rewire_outputs_provenance(
    context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.REWIRE_OUTPUTS, lambda s: synthesis_rules.rewire_provenance(store, s), partitioned=True)


class AcceptanceConfig(dg.Config):
    min_rate: float = Field(default=0.1, ge=0, le=1, description="warn below this share of attempted documents rewritten")
    max_rate: float = Field(default=1.0, ge=0, le=1, description="warn above this share (1.0: never)")
    min_documents: int = Field(default=20, ge=0, description="judge the rate from this many attempted documents on")


@dg.asset_check(
    asset=names.REWIRE_OUTPUTS,
    name="acceptance_rate_in_band",
    description="WARN when the share of attempted documents that gave a usable rewrite leaves [min_rate, "
    "max_rate] (judged from min_documents attempts): near 0 means the model, prompt profile or "
    "token budget does not work; the failures table says which rule rejected the outputs.",
)
def rewire_outputs_acceptance(
    context: dg.AssetCheckExecutionContext, config: AcceptanceConfig, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context,
        store,
        names.REWIRE_OUTPUTS,
        lambda s: synthesis_rules.rewire_acceptance(store, s, config.min_rate, config.max_rate, config.min_documents),
        partitioned=True,
        severity=WARN,
    )


# -------------------------------------------------------------------- REWIRE step 2: rewrite_classifier
class RewriteClassifierAucConfig(dg.Config):
    min_auc: float = Field(default=0.8, ge=0, le=1, description="held-out ROC AUC below this blocks rewritten")
    min_heldout: int = Field(default=20, ge=1, description="held-out rewrites and references each needed to judge the AUC")


@dg.asset_check(
    asset=names.REWRITE_CLASSIFIER,
    name="min_heldout_auc",
    blocking=True,
    description="The committed rewrite classifier separates reference text from rewrites on held-out data "
    "(ROC AUC >= min_auc) and its model file and sidecar are in storage with the committed size; "
    "WARN when fewer than min_heldout rewrites or references were held out (the AUC is no evidence).",
)
def rewrite_classifier_min_auc(
    context: dg.AssetCheckExecutionContext, config: RewriteClassifierAucConfig, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context,
        store,
        names.REWRITE_CLASSIFIER,
        lambda _: synthesis_rules.rewrite_classifier_auc(store, config.min_auc, config.min_heldout),
        partitioned=False,
    )


# ------------------------------------------------------------------------------ REWIRE step 3: rewritten
@dg.asset_check(
    asset=names.REWRITTEN,
    name="sources_exist_upstream",
    blocking=True,
    additional_deps=[names.REWIRE_OUTPUTS],
    description="Every kept and set-aside row is a rewrite of the snapshot's rewire_outputs with the same "
    "source_doc_id, every rewrite is ranked exactly once, and kept rewrites have unique doc_ids.",
)
def rewritten_sources_exist(
    context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context, store, names.REWRITTEN, lambda s: synthesis_rules.rewritten_trace_upstream(store, s), partitioned=True
    )


@dg.asset_check(
    asset=names.REWRITTEN,
    name="kept_top_by_rank",
    blocking=True,
    description="REWIRE's rank cut held: the kept rewrites are the ceil(keep_fraction * n) best by the rewrite "
    "classifier's score (every kept score >= every score set aside) with the recorded keep_fraction, "
    "and every row set aside says rewire:below_rank_cut.",
)
def rewritten_top_by_rank(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.REWRITTEN, lambda s: synthesis_rules.rewritten_top_by_rank(store, s), partitioned=True)


# ------------------------------------------------------------------------------------ FineInstructions
@dg.asset_check(
    asset=names.INSTRUCTION_TEMPLATES,
    name="templates_well_formed",
    blocking=True,
    description="Template ids present and unique; every {slot} is a well-formed name typed in slot_types "
    "and every typed slot appears in the template; no stray braces; 'fits' is described.",
)
def templates_well_formed(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context, store, names.INSTRUCTION_TEMPLATES, lambda _: synthesis_rules.templates_well_formed(store), partitioned=False
    )


class GroundingConfig(dg.Config):
    min_grounding: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="share of the answer quoted from the source "
        "(paper: >= 80%); the stage's recorded min_grounding wins when present",
    )
    min_judge_rating: int = Field(
        default=4,
        ge=1,
        le=5,
        description="judge rating every kept pair reaches (paper: 4); the stage's recorded min_judge_rating wins when present",
    )


@dg.asset_check(
    asset=names.INSTRUCTION_PAIRS,
    name="pairs_grounded",
    blocking=True,
    description="Every pair has an instruction and an answer, a grounding score (share of the answer "
    "quoted from the source document) of at least min_grounding and, when the judge ran, a judge "
    "rating of at least min_judge_rating (the thresholds the stage recorded win).",
)
def pairs_grounded(
    context: dg.AssetCheckExecutionContext, config: GroundingConfig, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context,
        store,
        names.INSTRUCTION_PAIRS,
        lambda s: synthesis_rules.pairs_grounded(store, s, config.min_grounding, config.min_judge_rating),
        partitioned=True,
    )


@dg.asset_check(
    asset=names.INSTRUCTION_PAIRS,
    name="pairs_traceable",
    blocking=True,
    additional_deps=[names.INSTRUCTION_TEMPLATES, names.DECONTAMINATED],
    description="Pair ids present and unique; every pair's and failure's template_id exists in the committed "
    "instruction_templates (seed, file and query-log templates) and its source_doc_id is a "
    "decontaminated document (data or rewrite_pool) of the snapshot.",
)
def pairs_traceable(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context, store, names.INSTRUCTION_PAIRS, lambda s: synthesis_rules.pairs_traceable(store, s), partitioned=True
    )


CHECKS = [
    rewire_outputs_sources_in_pool,
    rewire_outputs_provenance,
    rewire_outputs_acceptance,
    rewrite_classifier_min_auc,
    rewritten_sources_exist,
    rewritten_top_by_rank,
    templates_well_formed,
    pairs_grounded,
    pairs_traceable,
]
