"""The one Definitions object of the code location: assets, checks, jobs, schedules, sensors, resources."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from dataplatform import names
from dataplatform.assets import color_filter, dedup, eval, filtering, ingest, mix, synthesis, toxicity
from dataplatform.assets.checks import ALL_CHECKS
from dataplatform.assets.partitions import crawl_snapshots
from dataplatform.assets.sensors import build_snapshot_sensor
from dataplatform.resources.settings import resources_from_env

WEEKLY_REFRESH_CRON = "0 4 * * 1"  # Mondays 04:00 UTC
# Freshness (Dagster's FreshnessPolicy, evaluated by the daemon that `dagster dev` runs; the asset page
# and the catalog show an asset whose policy fails as overdue). The weekly refresh must have rebuilt the
# splits and the mix between the Monday 04:00 tick and 12:00 UTC; the per-snapshot chain must have
# processed some snapshot within 45 days (Common Crawl publishes about monthly), warning after 35.
WEEKLY_REFRESH_POLICY = dg.FreshnessPolicy.cron(deadline_cron="0 12 * * 1", lower_bound_delta=dt.timedelta(hours=8))
SNAPSHOT_CHAIN_POLICY = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(days=45), warn_window=dt.timedelta(days=35))
WEEKLY_REFRESHED = (names.EVAL_SPLITS, names.TRAINING_MIX)

_assets = [
    ingest.crawl_warc_files,
    ingest.raw_pages,
    ingest.documents,
    filtering.filtered,
    toxicity.toxicity,
    filtering.quality_classifier,
    filtering.scored,
    dedup.deduplicate_snapshot,
    eval.benchmark_files,
    eval.eval_benchmarks,
    eval.decontaminated,
    eval.eval_splits,
    synthesis.rewire_outputs,
    synthesis.rewrite_classifier,
    synthesis.rewritten,
    synthesis.instruction_templates,
    synthesis.instruction_pairs,
    synthesis.contamination_audit,
    mix.training_mix,
    color_filter.color_target_files,
    color_filter.color_conditional_model,
    color_filter.color_scores,
]

# Runs of cross-snapshot (unpartitioned) jobs carry this tag; the instance configs under deploy/ queue
# them one at a time (runs of a snapshot are serialised by their `dagster/partition` tag instead).
CORPUS_RUN_TAG = "dataplatform/corpus"


def _with_freshness(spec: dg.AssetSpec) -> dg.AssetSpec:
    if spec.key.to_user_string() in WEEKLY_REFRESHED:
        return dg.apply_freshness_policy(spec, WEEKLY_REFRESH_POLICY)
    if spec.partitions_def is not None:
        return dg.apply_freshness_policy(spec, SNAPSHOT_CHAIN_POLICY)
    return spec


# External AssetSpecs (the crawl, the benchmark files) are not materialized here: no freshness policy.
all_assets = [a if isinstance(a, dg.AssetSpec) else dg.map_asset_specs(_with_freshness, [a])[0] for a in _assets]
all_asset_checks = ALL_CHECKS

_per_snapshot = dg.AssetSelection.all().materializable() & dg.AssetSelection.assets(
    *[key for a in all_assets if isinstance(a, dg.AssetsDefinition) and a.partitions_def is not None for key in a.keys]
)

snapshot_pipeline_job = dg.define_asset_job(
    "snapshot_pipeline",
    selection=_per_snapshot,
    partitions_def=crawl_snapshots,
    description="Everything one crawl snapshot flows through (run by the snapshot sensor; use it for backfills).",
)


def _group_job(group: str, description: str) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        f"{group}_job",
        selection=dg.AssetSelection.groups(group) & _per_snapshot,
        partitions_def=crawl_snapshots,
        description=description,
    )


stage_jobs = [
    _group_job("ingest", "WARC -> raw_pages -> documents for chosen snapshots (manual backfills)."),
    _group_job("filter", "filtered, toxicity and scored for chosen snapshots; needs a materialized quality_classifier."),
    _group_job("dedup", "deduplicated + signature index for chosen snapshots, oldest first."),
    _group_job("synthesis", "REWIRE rewriting and FineInstructions pairs for chosen snapshots (GPU pool)."),
    _group_job(
        "color_filter", "CoLoR-Filter scores for chosen snapshots (GPU pool); needs a materialized color_conditional_model."
    ),
]

corpus_refresh_job = dg.define_asset_job(
    "corpus_refresh",
    selection=dg.AssetSelection.assets(
        names.QUALITY_CLASSIFIER,
        names.EVAL_BENCHMARKS,
        names.INSTRUCTION_TEMPLATES,
        names.REWRITE_CLASSIFIER,
        names.EVAL_SPLITS,
        names.TRAINING_MIX,
        names.CONTAMINATION_AUDIT,
        names.COLOR_CONDITIONAL_MODEL,
    ),
    description="Cross-snapshot assets: retrain the classifier, reload benchmarks, recompute splits and the mix.",
    tags={CORPUS_RUN_TAG: "true"},
)

data_quality_checks_job = dg.define_asset_job(
    "data_quality_checks",
    selection=dg.AssetSelection.all_asset_checks(),
    description="Every data-quality check on its own, against the committed datasets (each per-snapshot check "
    "covers every committed snapshot); re-run after fixing a cause.",
)

weekly_training_mix = dg.ScheduleDefinition(
    name="weekly_training_mix",
    job=dg.define_asset_job(
        "training_mix_job", selection=dg.AssetSelection.assets(*WEEKLY_REFRESHED), tags={CORPUS_RUN_TAG: "true"}
    ),
    cron_schedule=WEEKLY_REFRESH_CRON,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Rebuilds eval splits and the training mix every Monday 04:00 UTC from whatever snapshots are done.",
)

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_asset_checks,
    jobs=[snapshot_pipeline_job, corpus_refresh_job, data_quality_checks_job, *stage_jobs],
    schedules=[weekly_training_mix],
    sensors=[build_snapshot_sensor(snapshot_pipeline_job)],
    resources=resources_from_env(),
)
