"""The one Definitions object of the code location: assets, jobs, sensors and resources."""

from __future__ import annotations

import dagster as dg

from dataplatform.assets import dedup, filtering, ingest
from dataplatform.assets.partitions import crawl_snapshots
from dataplatform.assets.sensors import build_snapshot_sensor
from dataplatform.resources.settings import resources_from_env

snapshot_pipeline_job = dg.define_asset_job(
    "snapshot_pipeline",
    # Every partitioned asset downstream of the crawl; unpartitioned ones (the classifier) are
    # refreshed by their own schedule or by hand.
    selection=dg.AssetSelection.all().materializable() - dg.AssetSelection.assets("quality_classifier"),
    partitions_def=crawl_snapshots,
    description="Everything one crawl snapshot flows through, for the sensor and for manual backfills.",
)

all_assets = [
    ingest.crawl_warc_files,
    ingest.raw_pages,
    ingest.documents,
    filtering.filtered,
    filtering.quality_classifier,
    filtering.scored,
    dedup.deduplicate_snapshot,
]

defs = dg.Definitions(
    assets=all_assets,
    jobs=[snapshot_pipeline_job],
    sensors=[build_snapshot_sensor(snapshot_pipeline_job)],
    resources=resources_from_env(),
)
