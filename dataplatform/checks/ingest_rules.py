"""Rules for the crawl, ``raw_pages`` and ``documents`` (no Dagster here)."""

from __future__ import annotations

import polars as pl

from dataplatform import names
from dataplatform.checks.frames import read_columns, table_rows
from dataplatform.checks.outcome import CheckOutcome, band_problem, outcome, sample_values
from dataplatform.io.crawl_sources import CrawlSource
from dataplatform.io.datasets import DatasetStore

GZIP_MAGIC = b"\x1f\x8b"
WARC_MAGIC = b"WARC/"


def warc_files_readable(source: CrawlSource, snapshot: str, store: DatasetStore | None = None) -> CheckOutcome:
    """The snapshot lists at least one WARC file; every listed file exists, is not empty and starts
    like a WARC (gzip member or ``WARC/``); when ``raw_pages`` is committed, it read every listed file."""
    files = source.list_warc_files(snapshot)
    problems = [] if files else [f"no WARC file listed for {snapshot} in {source.describe()}"]
    unreadable = []
    for warc in files:
        try:
            with source.store.open_read(warc.key) as stream:
                head = stream.read(len(WARC_MAGIC))
        except Exception as exc:  # noqa: BLE001 - any file that cannot be read is a finding, not a crash
            unreadable.append(f"{warc.key} ({type(exc).__name__})")
            continue
        if not head.startswith(GZIP_MAGIC) and not head.startswith(WARC_MAGIC):
            unreadable.append(f"{warc.key} ({'empty' if not head else 'not a WARC'})")
    if unreadable:
        problems.append(f"{len(unreadable)} WARC file(s) missing or unreadable: {sample_values(unreadable)}")
    read = None
    manifest = store.manifest(names.RAW_PAGES, snapshot) if store is not None else None
    if manifest is not None:
        read = manifest["metadata"].get("warc_files")
        if read is not None and read != len(files):
            problems.append(f"raw_pages/{snapshot} read {read} WARC files but the crawl lists {len(files)}")
    return outcome(
        f"{len(files)} WARC files listed and readable", problems, {"warc_files": len(files), "read_by_raw_pages": read}
    )


def quarantine_share(store: DatasetStore, snapshot: str, low: float, high: float) -> CheckOutcome:
    """Share of response records quarantined (quarantine / (pages + quarantine)) lies in [low, high]."""
    manifest = store.require_manifest(names.RAW_PAGES, snapshot)
    pages, quarantined = table_rows(manifest, names.DATA), table_rows(manifest, names.QUARANTINE)
    total = pages + quarantined
    share = quarantined / total if total else None
    reasons = manifest["metadata"].get("drop_counts", {})
    return outcome(
        f"{share:.1%} of {total} records quarantined" if share is not None else "no records",
        band_problem("quarantine share", share, low, high),
        {"quarantine_share": share, "quarantined": quarantined, "pages": pages, "reasons": reasons},
    )


def every_page_accounted_for(store: DatasetStore, snapshot: str) -> CheckOutcome:
    """Every raw page has exactly one ``documents`` row (kept, or with its ``drop_reason``) and every
    document comes from a raw page: no page silently lost between WARC and text."""
    pages = read_columns(store, names.RAW_PAGES, snapshot, names.DATA, ["warc_record_id"])
    docs = read_columns(store, names.DOCUMENTS, snapshot, names.DATA, ["warc_record_id"])
    lost = pages.join(docs, on="warc_record_id", how="anti")["warc_record_id"].to_list()
    unknown = docs.join(pages, on="warc_record_id", how="anti")["warc_record_id"].to_list()
    doubled = docs.filter(pl.col("warc_record_id").is_duplicated())["warc_record_id"].unique().to_list()
    problems = []
    if lost:
        problems.append(f"{len(lost)} raw page(s) have no documents row: {sample_values(sorted(lost))}")
    if unknown:
        problems.append(f"{len(unknown)} document(s) name no raw page of {snapshot}: {sample_values(sorted(unknown))}")
    if doubled:
        problems.append(f"{len(doubled)} raw page(s) have several documents rows: {sample_values(sorted(doubled))}")
    return outcome(
        f"all {pages.height} raw pages have a documents row",
        problems,
        {"raw_pages": pages.height, "documents": docs.height, "lost": len(lost), "unknown": len(unknown)},
    )
