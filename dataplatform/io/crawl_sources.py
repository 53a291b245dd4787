"""Where crawl snapshots come from: a local folder or an S3 prefix in Common Crawl's layout.

    <root>/crawl-data/<SNAPSHOT>/segments/<segment>/warc/<file>.warc.gz
    <root>/crawl-data/<SNAPSHOT>/warc.paths.gz     (optional listing, paths relative to <root>)

A root without ``crawl-data/`` is read as ``<root>/<SNAPSHOT>/**/*.warc[.gz]``, which is how people
drop a few files into a folder. Snapshot folders whose names are not valid partition keys are
reported, not processed.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging

from dataplatform.core.snapshot_keys import InvalidSnapshotKey, validate_snapshot_key
from dataplatform.io.object_store import ObjectStore, StoreLocation, _check_key

log = logging.getLogger(__name__)

CRAWL_DATA = "crawl-data"
PATHS_LISTING = "warc.paths.gz"
WARC_SUFFIXES = (".warc.gz", ".warc")


@dataclasses.dataclass(frozen=True)
class WarcFile:
    snapshot: str
    key: str  # relative to the crawl root; also the ``warc_file`` column value
    size: int | None = None


class CrawlSource:
    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self.store: ObjectStore = location.open()

    def _snapshots_base(self) -> str:
        return CRAWL_DATA if CRAWL_DATA in self.store.list_children("") else ""

    def list_snapshots(self) -> tuple[list[str], list[str]]:
        """Return ``(valid snapshot names, rejected folder names)``, both sorted."""
        valid, rejected = [], []
        for name in self.store.list_children(self._snapshots_base()):
            try:
                valid.append(validate_snapshot_key(name))
            except InvalidSnapshotKey:
                rejected.append(name)
        return valid, rejected

    def list_warc_files(self, snapshot: str) -> list[WarcFile]:
        validate_snapshot_key(snapshot)
        base = self._snapshots_base()
        folder = f"{base}/{snapshot}" if base else snapshot
        listing = self.store.get_bytes(f"{folder}/{PATHS_LISTING}")
        if listing is not None:
            keys = [line.strip() for line in gzip.decompress(listing).decode().splitlines() if line.strip()]
            for key in keys:
                _check_key(key)
            return [WarcFile(snapshot, key) for key in sorted(set(keys))]
        keys = [k for k in self.store.list_keys(folder) if k.endswith(WARC_SUFFIXES)]
        return [WarcFile(snapshot, key) for key in keys]

    def describe(self) -> str:
        return self.store.uri("")
