"""The one Definitions object of the code location: assets, checks, jobs, schedules, sensors, resources."""

from __future__ import annotations

import dagster as dg

from dataplatform.assets import dedup, eval_mix, filtering, ingest, synthesis
from dataplatform.assets.partitions import crawl_snapshots
from dataplatform.assets.sensors import build_snapshot_sensor
from dataplatform.resources.settings import resources_from_env

all_assets = [
    ingest.crawl_warc_files,
    ingest.raw_pages,
    ingest.documents,
    filtering.filtered,
    filtering.quality_classifier,
    filtering.scored,
    dedup.deduplicate_snapshot,
    eval_mix.benchmark_files,
    eval_mix.eval_benchmarks,
    eval_mix.decontaminated,
    eval_mix.eval_splits,
    synthesis.rewire_outputs,
    synthesis.rewrite_classifier,
    synthesis.rewritten,
    synthesis.instruction_templates,
    synthesis.instruction_pairs,
    synthesis.contamination_audit,
    eval_mix.training_mix,
]

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
    return dg.define_asset_job(f"{group}_job", selection=dg.AssetSelection.groups(group) & _per_snapshot,
                               partitions_def=crawl_snapshots, description=description)


stage_jobs = [
    _group_job("ingest", "WARC -> raw_pages -> documents for chosen snapshots (manual backfills)."),
    _group_job("filter", "filtered and scored for chosen snapshots; needs a materialized quality_classifier."),
    _group_job("dedup", "deduplicated + signature index for chosen snapshots, oldest first."),
    _group_job("synthesis", "REWIRE rewriting and FineInstructions pairs for chosen snapshots (GPU pool)."),
]

corpus_refresh_job = dg.define_asset_job(
    "corpus_refresh",
    selection=dg.AssetSelection.assets("quality_classifier", "eval_benchmarks", "instruction_templates", "rewrite_classifier",
                                       "eval_splits", "training_mix", "contamination_audit"),
    description="Cross-snapshot assets: retrain the classifier, reload benchmarks, recompute splits and the mix.",
)

weekly_training_mix = dg.ScheduleDefinition(
    name="weekly_training_mix",
    job=dg.define_asset_job("training_mix_job", selection=dg.AssetSelection.assets("eval_splits", "training_mix")),
    cron_schedule="0 4 * * 1",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Rebuilds eval splits and the training mix every Monday 04:00 UTC from whatever snapshots are done.",
)

defs = dg.Definitions(
    assets=all_assets,
    jobs=[snapshot_pipeline_job, corpus_refresh_job, *stage_jobs],
    schedules=[weekly_training_mix],
    sensors=[build_snapshot_sensor(snapshot_pipeline_job)],
    resources=resources_from_env(),
)
