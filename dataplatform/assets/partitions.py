"""The partitioning shared by every per-snapshot asset."""

import dagster as dg

from dataplatform import names

from dataplatform.core.snapshot_keys import InvalidSnapshotKey, validate_snapshot_key

crawl_snapshots = dg.DynamicPartitionsDefinition(name=names.SNAPSHOT_PARTITIONS)

OWNERS = ["team:data-platform"]


def snapshot_of(context: dg.AssetExecutionContext) -> str:
    """The run's partition key, refused with a clear failure if it is not a safe snapshot name."""
    try:
        return validate_snapshot_key(context.partition_key)
    except InvalidSnapshotKey as exc:
        raise dg.Failure(description=str(exc)) from exc
