"""Ingest assets: the crawl (external) -> ``raw_pages`` -> ``documents``, one partition per snapshot."""

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.metadata import report_metadata, stage_failures
from dataplatform.assets.partitions import OWNERS, crawl_snapshots, snapshot_of
from dataplatform.core.html_extraction import ExtractionOptions
from dataplatform.core.schemas import DOCUMENTS, RAW_PAGES
from dataplatform.core.warc_records import WarcReadOptions
from dataplatform.resources.storage import CrawlSourceResource, DatasetStorageResource, ShardExecutionResource
from dataplatform.stages.ingest import materialize_documents, materialize_raw_pages

crawl_warc_files = dg.AssetSpec(
    names.CRAWL_WARC_FILES,
    description="WARC files of one crawl snapshot, as published (Common Crawl layout, local or S3).",
    group_name="ingest",
    kinds={"warc"},
    owners=OWNERS,
    partitions_def=crawl_snapshots,
)


class RawPagesConfig(dg.Config):
    max_payload_mb: float = Field(default=10.0, gt=0, description="quarantine responses larger than this")
    verify_digests: bool = Field(default=True, description="check WARC-Block-Digest where present")


@dg.asset(
    partitions_def=crawl_snapshots,
    deps=[crawl_warc_files],
    group_name="ingest",
    kinds={"parquet", "python"},
    owners=OWNERS,
    tags={"stage": "ingest"},
    description="HTTP 200 HTML responses of a snapshot's WARCs; everything else quarantined with a reason.",
)
def raw_pages(
    context: dg.AssetExecutionContext,
    config: RawPagesConfig,
    crawl_source: CrawlSourceResource,
    dataset_storage: DatasetStorageResource,
    shard_execution: ShardExecutionResource,
) -> dg.MaterializeResult:
    snapshot = snapshot_of(context)
    store = dataset_storage.dataset_store()
    options = WarcReadOptions(max_payload_bytes=int(config.max_payload_mb * 1024 * 1024), verify_digests=config.verify_digests)
    with stage_failures("RawPagesConfig", FileNotFoundError):
        report = materialize_raw_pages(
            crawl_source.crawl_source(), store, snapshot, shard_execution.executor(), options, progress=context.log.info
        )
    context.log.info(f"raw_pages/{snapshot}: {report.rows_out} pages, {report.dropped} quarantined")
    return dg.MaterializeResult(
        metadata=report_metadata(report, store.object_store.uri(f"{names.RAW_PAGES}/{snapshot}"), RAW_PAGES)
    )


class DocumentsConfig(dg.Config):
    language_model_path: str | None = Field(default=None, description="fastText LID model; None = bundled lid.176.ftz")
    main_content: bool = Field(default=True, description="keep only the main content (drop menus, footers)")


@dg.asset(
    partitions_def=crawl_snapshots,
    deps=[raw_pages],
    group_name="ingest",
    kinds={"parquet", "fasttext"},
    owners=OWNERS,
    tags={"stage": "ingest"},
    description="Main text, title and language of every page, with a stable doc_id; unusable pages keep a drop_reason.",
)
def documents(
    context: dg.AssetExecutionContext,
    config: DocumentsConfig,
    dataset_storage: DatasetStorageResource,
    shard_execution: ShardExecutionResource,
) -> dg.MaterializeResult:
    snapshot = snapshot_of(context)
    store = dataset_storage.dataset_store()
    with stage_failures("DocumentsConfig"):
        report = materialize_documents(
            store,
            snapshot,
            shard_execution.executor(),
            config.language_model_path,
            ExtractionOptions(main_content=config.main_content),
            progress=context.log.info,
        )
    return dg.MaterializeResult(
        metadata=report_metadata(report, store.object_store.uri(f"{names.DOCUMENTS}/{snapshot}"), DOCUMENTS),
    )
