"""Checks of the crawl (external), ``raw_pages`` and ``documents``."""

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.quality_gates import ERROR, GX_CHECK, WARN, check_result, evaluate, run_rule
from dataplatform.checks import ingest_rules, suites
from dataplatform.resources.storage import CrawlSourceResource, DatasetStorageResource


@dg.asset_check(
    asset=names.CRAWL_WARC_FILES,
    name="warc_files_readable",
    description="The snapshot lists at least one WARC file; each exists, is not empty and starts like a "
    "WARC (gzip or WARC/); when raw_pages is committed it read every listed file.",
)
def crawl_warc_files_readable(
    context: dg.AssetCheckExecutionContext, crawl_source: CrawlSourceResource, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    source, store = crawl_source.crawl_source(), dataset_storage.dataset_store()
    run = context.op_execution_context
    snapshots = [run.partition_key] if run.has_partition_key else source.list_snapshots()[0]
    if not snapshots:
        return dg.AssetCheckResult(passed=False, description=f"no snapshot in the crawl source {source.describe()}")
    outcomes = {s: evaluate(lambda p: ingest_rules.warc_files_readable(source, p, store), s) for s in snapshots}
    return check_result(outcomes, ERROR, partitioned=True)


@dg.asset_check(
    asset=names.RAW_PAGES,
    name=GX_CHECK,
    blocking=True,
    description="great-expectations on a seeded sample: raw_pages schema, HTTP 200 responses with URL and "
    "payload size >= 0; over the whole snapshot: unique WARC record ids, quarantine rows in the "
    "quarantine schema with quarantine:* reasons.",
)
def raw_pages_suite(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.RAW_PAGES, lambda s: suites.raw_pages_suite(store, s), partitioned=True)


class QuarantineShareConfig(dg.Config):
    min_share: float = Field(default=0.0, ge=0, le=1, description="warn below this share of records quarantined")
    max_share: float = Field(default=0.2, ge=0, le=1, description="warn above this share (a reader bug, a bad crawl)")


@dg.asset_check(
    asset=names.RAW_PAGES,
    name="quarantine_share_in_band",
    description="WARN when the share of response records quarantined (not HTTP 200 HTML, broken, "
    "oversized...) leaves [min_share, max_share]: a person should look at the reasons.",
)
def raw_pages_quarantine_share(
    context: dg.AssetCheckExecutionContext, config: QuarantineShareConfig, dataset_storage: DatasetStorageResource
) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(
        context,
        store,
        names.RAW_PAGES,
        lambda s: ingest_rules.quarantine_share(store, s, config.min_share, config.max_share),
        partitioned=True,
        severity=WARN,
    )


@dg.asset_check(
    asset=names.DOCUMENTS,
    name=GX_CHECK,
    blocking=True,
    description="great-expectations on a seeded sample: documents schema, text on kept rows, "
    "language_score in [0, 1], n_chars >= 0; doc_id unique and not null over the whole snapshot.",
)
def documents_suite(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.DOCUMENTS, lambda s: suites.documents_suite(store, s), partitioned=True)


@dg.asset_check(
    asset=names.DOCUMENTS,
    name="every_page_accounted_for",
    blocking=True,
    additional_deps=[names.RAW_PAGES],
    description="Every raw page has exactly one documents row (kept or with its drop_reason) and every "
    "document comes from a raw page of the snapshot: no page silently lost.",
)
def documents_every_page(context: dg.AssetCheckExecutionContext, dataset_storage: DatasetStorageResource) -> dg.AssetCheckResult:
    store = dataset_storage.dataset_store()
    return run_rule(context, store, names.DOCUMENTS, lambda s: ingest_rules.every_page_accounted_for(store, s), partitioned=True)


CHECKS = [crawl_warc_files_readable, raw_pages_suite, raw_pages_quarantine_share, documents_suite, documents_every_page]
