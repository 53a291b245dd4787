"""Dedup assets: ``deduplicated`` (kept documents, REWIRE pool, duplicates with ``duplicate_of``)
and ``dedup_signature_index`` (the per-snapshot MinHash band index later snapshots are checked against)."""

from typing import Literal

import dagster as dg
from pydantic import Field

from dataplatform.assets.filtering import scored
from dataplatform.assets.metadata import report_metadata, stage_failures
from dataplatform.assets.partitions import OWNERS, crawl_snapshots, snapshot_of
from dataplatform.core.dedup import DedupConfig
from dataplatform.core.schemas import DEDUPLICATED
from dataplatform.resources.storage import DatasetStorageResource, ShardExecutionResource
from dataplatform.stages.dedup import (
    DEDUPLICATED_ASSET,
    SIGNATURE_INDEX_ASSET,
    DedupRunOptions,
    IncompatibleSignatureIndex,
    materialize_deduplicated,
)

_DEFAULT = DedupConfig()
_RUN = DedupRunOptions()


class DeduplicatedConfig(dg.Config):
    ngram: int = Field(default=_DEFAULT.ngram, gt=0, description="word n-gram shingle size")
    num_perm: int = Field(default=_DEFAULT.num_perm, gt=0, description="MinHash permutations (>= bands x rows)")
    bands: int = Field(default=_DEFAULT.bands, gt=0, description="LSH bands")
    rows: int = Field(default=_DEFAULT.rows, gt=0, description="signature values per LSH band")
    threshold: float = Field(
        default=_DEFAULT.threshold,
        gt=0,
        le=1,
        description="word 5-gram Jaccard at or above which two documents are near-duplicates",
    )
    verify: Literal["exact", "signature", "none"] = Field(
        default=_DEFAULT.verify,
        description="candidate pairs checked by the exact Jaccard of their shingle sets, the signature estimate, "
        "or not at all (any shared band, FineWeb's behaviour)",
    )
    partition_rows: int = Field(
        default=_RUN.partition_rows, gt=0, description="target exact + band rows per bucket task (sets the memory of one task)"
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            DEDUPLICATED_ASSET,
            deps=[scored],
            group_name="dedup",
            kinds={"parquet", "numpy"},
            owners=OWNERS,
            tags={"stage": "dedup"},
            description="Kept documents after exact + MinHash dedup across snapshots; REWIRE pool in `rewrite_pool`, "
            "duplicates in `dropped` with `duplicate_of`.",
        ),
        dg.AssetSpec(
            SIGNATURE_INDEX_ASSET,
            deps=[scored],
            group_name="dedup",
            kinds={"parquet"},
            owners=OWNERS,
            tags={"stage": "dedup"},
            description="MinHash band hashes of the documents each snapshot kept; later snapshots dedup against it.",
        ),
    ],
    partitions_def=crawl_snapshots,
)
def deduplicate_snapshot(
    context: dg.AssetExecutionContext,
    config: DeduplicatedConfig,
    dataset_storage: DatasetStorageResource,
    shard_execution: ShardExecutionResource,
):
    snapshot = snapshot_of(context)
    store = dataset_storage.dataset_store()
    with stage_failures("DeduplicatedConfig", ValueError):
        dedup_config = DedupConfig(
            ngram=config.ngram,
            num_perm=config.num_perm,
            bands=config.bands,
            rows=config.rows,
            threshold=config.threshold,
            verify=config.verify,
        )
        options = DedupRunOptions(partition_rows=config.partition_rows)
    with stage_failures(DEDUPLICATED_ASSET, IncompatibleSignatureIndex):
        report, index_info = materialize_deduplicated(
            store, snapshot, shard_execution.executor(), dedup_config, options, progress=context.log.info
        )
    yield dg.MaterializeResult(
        asset_key=DEDUPLICATED_ASSET,
        metadata=report_metadata(report, store.object_store.uri(f"{DEDUPLICATED_ASSET}/{snapshot}"), DEDUPLICATED),
    )
    yield dg.MaterializeResult(
        asset_key=SIGNATURE_INDEX_ASSET,
        metadata={
            "dagster/row_count": index_info["rows"],
            "documents_indexed": index_info["documents"],
            "prior_index_rows": index_info["prior_index_rows"],
            "deduplicated_version": index_info.get("deduplicated_version"),
            "dagster/uri": store.object_store.uri(f"{SIGNATURE_INDEX_ASSET}/{snapshot}"),
        },
    )
