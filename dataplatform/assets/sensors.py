"""Snapshot discovery: a new folder (or S3 prefix) under the crawl root becomes a partition and a run."""


import dagster as dg

from dataplatform.assets.partitions import crawl_snapshots
from dataplatform.resources.storage import CrawlSourceResource


def build_snapshot_sensor(job) -> dg.SensorDefinition:
    @dg.sensor(
        name="crawl_snapshot_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Adds a crawl_snapshots partition for every new snapshot under the crawl source and runs it.",
    )
    def crawl_snapshot_sensor(context: dg.SensorEvaluationContext, crawl_source: CrawlSourceResource) -> dg.SensorResult:
        snapshots, rejected = crawl_source.crawl_source().list_snapshots()
        if rejected:
            context.log.warning(f"ignoring crawl folders that are not valid snapshot keys: {rejected}")
        known = set(context.instance.get_dynamic_partitions(crawl_snapshots.name))
        new = [s for s in snapshots if s not in known]
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"snapshot:{s}", partition_key=s) for s in new],
            dynamic_partitions_requests=[crawl_snapshots.build_add_request(new)] if new else [],
            cursor=",".join(sorted(known | set(new)))[-4000:] or None,
        )

    return crawl_snapshot_sensor
