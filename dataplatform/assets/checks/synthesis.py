"""Checks of REWIRE ``rewritten`` and FineInstructions ``instruction_templates`` / ``instruction_pairs``,
written against the tables as committed today (see :mod:`dataplatform.checks.synthesis_rules`)."""

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.quality_gates import WARN, run_rule
from dataplatform.checks import synthesis_rules
from dataplatform.resources.storage import DatasetStorageResource


@dg.asset_check(asset=names.REWRITTEN, name="sources_exist_upstream", blocking=True, additional_deps=[names.DECONTAMINATED],
                description="Every rewrite (kept, below the cut or failed) names in source_doc_id a document of the "
                            "snapshot's REWIRE pool; kept rewrites have unique doc_ids.")
def rewritten_sources_exist(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.REWRITTEN, lambda s: synthesis_rules.rewrites_trace_upstream(store, s), partitioned=True)


@dg.asset_check(asset=names.REWRITTEN, name="quality_above_cut", blocking=True,
                description="Every kept rewrite was re-scored at or above the recorded quality cut; every rewrite set "
                            "aside as quality:below_threshold scored below it.")
def rewritten_quality_above_cut(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.REWRITTEN, lambda s: synthesis_rules.rewrites_above_cut(store, s), partitioned=True)


class AcceptanceConfig(dg.Config):
    min_rate: float = Field(default=0.01, ge=0, le=1, description="warn below this share of the pool kept (outputs rejected)")
    max_rate: float = Field(default=0.9, ge=0, le=1, description="warn above this share (the quality cut does not filter)")
    min_documents: int = Field(default=20, ge=0, description="judge the rate from this many pool documents on")


@dg.asset_check(asset=names.REWRITTEN, name="acceptance_rate_in_band",
                description="WARN when the share of the REWIRE pool kept after re-scoring leaves [min_rate, max_rate]: "
                            "0% means every output was rejected (see the failures table; the bundled tiny test model "
                            "writes gibberish, so the demo shows this WARN), ~100% that the cut does not filter.")
def rewritten_acceptance(context: dg.AssetCheckExecutionContext, config: AcceptanceConfig,
                         dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.REWRITTEN, lambda s: synthesis_rules.rewrite_acceptance(
        store, s, config.min_rate, config.max_rate, config.min_documents), partitioned=True, severity=WARN)


@dg.asset_check(asset=names.INSTRUCTION_TEMPLATES, name="templates_well_formed", blocking=True,
                description="Template ids present and unique; every {slot} is a well-formed name typed in slot_types "
                            "and every typed slot appears in the template; no stray braces; 'fits' is described.")
def templates_well_formed(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.INSTRUCTION_TEMPLATES, lambda _: synthesis_rules.templates_well_formed(store),
                    partitioned=False)


class GroundingConfig(dg.Config):
    min_grounding: float = Field(default=0.8, ge=0, le=1, description="share of the answer quoted from the source "
                                 "(paper: >= 80%); the stage's recorded min_grounding wins when present")


@dg.asset_check(asset=names.INSTRUCTION_PAIRS, name="pairs_grounded", blocking=True,
                description="Every pair has an instruction and an answer, and a grounding score (share of the answer "
                            "quoted from the source document) of at least the configured minimum.")
def pairs_grounded(context: dg.AssetCheckExecutionContext, config: GroundingConfig,
                   dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.INSTRUCTION_PAIRS,
                    lambda s: synthesis_rules.pairs_grounded(store, s, config.min_grounding), partitioned=True)


@dg.asset_check(asset=names.INSTRUCTION_PAIRS, name="pairs_traceable", blocking=True,
                additional_deps=[names.INSTRUCTION_TEMPLATES, names.DECONTAMINATED],
                description="Pair ids present and unique; every template_id exists in instruction_templates; every "
                            "pair's and failure's source_doc_id is a decontaminated document of the snapshot.")
def pairs_traceable(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.INSTRUCTION_PAIRS, lambda s: synthesis_rules.pairs_traceable(store, s), partitioned=True)


CHECKS = [rewritten_sources_exist, rewritten_quality_above_cut, rewritten_acceptance, templates_well_formed,
          pairs_grounded, pairs_traceable]
