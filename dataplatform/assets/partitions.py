"""The partitioning shared by every per-snapshot asset."""

import dagster as dg

from dataplatform import names
from dataplatform.core.snapshot_keys import InvalidSnapshotKey, validate_snapshot_key

crawl_snapshots = dg.DynamicPartitionsDefinition(name=names.SNAPSHOT_PARTITIONS)

OWNERS = ["team:data-platform"]
# Cross-snapshot (unpartitioned) assets share this pool: the instance configs under deploy/ give it
# one slot, so two runs that both rebuild, say, the classifier run those steps one after the other
# even when they were launched from the UI without the corpus run tag.
CORPUS_POOL = "corpus"


def snapshot_of(context: dg.AssetExecutionContext) -> str:
    """The run's partition key, refused with a clear failure if it is not a safe snapshot name."""
    try:
        return validate_snapshot_key(context.partition_key)
    except InvalidSnapshotKey as exc:
        raise dg.Failure(description=str(exc)) from exc
