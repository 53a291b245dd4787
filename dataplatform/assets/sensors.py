"""Snapshot discovery: a new folder (or S3 prefix) under the crawl root becomes a partition and a run."""

import os
from collections.abc import Mapping

import dagster as dg

from dataplatform.assets.partitions import crawl_snapshots
from dataplatform.resources.storage import CrawlSourceResource

SENSOR_INTERVAL_ENV = "DATAPLATFORM_SENSOR_INTERVAL_S"
DEFAULT_SENSOR_INTERVAL_S = 60


def sensor_interval_seconds(env: Mapping[str, str] | None = None) -> int:
    """Seconds between two listings of the crawl source: ``DATAPLATFORM_SENSOR_INTERVAL_S`` (default 60).

    Read when the code location loads; a value that is not a whole number of seconds >= 1 fails the
    load, naming the variable. The daemon's sensor loop runs every 5 s, so shorter values act as 5.
    """
    env = os.environ if env is None else env
    raw = env.get(SENSOR_INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_SENSOR_INTERVAL_S
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise dg.DagsterInvalidConfigError(f"{SENSOR_INTERVAL_ENV}={raw!r}: must be a whole number of seconds >= 1", [], None)
    return value


def build_snapshot_sensor(job, minimum_interval_seconds: int | None = None) -> dg.SensorDefinition:
    @dg.sensor(
        name="crawl_snapshot_sensor",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds or sensor_interval_seconds(),
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
