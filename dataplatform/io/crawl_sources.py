"""Where crawl snapshots come from: a local folder or an S3 prefix in Common Crawl's layout.

    <root>/crawl-data/<SNAPSHOT>/segments/<segment>/warc/<file>.warc.gz
    <root>/crawl-data/<SNAPSHOT>/warc.paths.gz     (optional listing, paths relative to <root>)

A root without ``crawl-data/`` is read as ``<root>/<SNAPSHOT>/**/*.warc[.gz]``, which is how people
drop a few files into a folder. Snapshot folders whose names are not valid partition keys are
reported, not processed. Symbolic links to folders are not followed below a snapshot folder (so a
link loop cannot make listing endless), and a listing that cannot be read or inflates past
``max_listing_bytes`` fails with a :class:`CrawlListingError` naming the file.
"""

from __future__ import annotations

import dataclasses
import logging
import zlib

from dataplatform.core.snapshot_keys import InvalidSnapshotKey, validate_snapshot_key
from dataplatform.io.object_store import ObjectStore, StoreLocation, check_key

log = logging.getLogger(__name__)

CRAWL_DATA = "crawl-data"
PATHS_LISTING = "warc.paths.gz"
WARC_SUFFIXES = (".warc.gz", ".warc")


@dataclasses.dataclass(frozen=True)
class WarcFile:
    snapshot: str
    key: str  # relative to the crawl root; also the ``warc_file`` column value
    size: int | None = None


class CrawlListingError(ValueError):
    """A crawl listing that cannot be used; the message names the file."""


class CrawlSource:
    DEFAULT_MAX_LISTING_BYTES = 64 * 1024 * 1024

    def __init__(self, location: StoreLocation, max_listing_bytes: int = DEFAULT_MAX_LISTING_BYTES) -> None:
        """``max_listing_bytes`` bounds the inflated size of a ``warc.paths.gz`` (Common Crawl's are
        about 15 MB for ~90,000 files), so a hostile listing costs neither memory nor minutes."""
        if max_listing_bytes <= 0:
            raise ValueError(f"CrawlSource.max_listing_bytes must be > 0, got {max_listing_bytes}")
        self.location = location
        self.max_listing_bytes = max_listing_bytes
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
        keys = self._read_paths_listing(f"{folder}/{PATHS_LISTING}")
        if keys is not None:
            return [WarcFile(snapshot, key) for key in sorted(set(keys))]
        keys = [k for k in self.store.list_keys(folder) if k.endswith(WARC_SUFFIXES)]
        return [WarcFile(snapshot, key) for key in keys]

    def _read_paths_listing(self, key: str) -> list[str] | None:
        """The keys named by a ``warc.paths.gz``, or None if there is none."""
        where = self.store.uri(key)
        try:
            compressed = self.store.get_bytes(key)
        except OSError as exc:  # a symlink loop, a folder of that name, no permission
            raise CrawlListingError(f"cannot read the crawl listing {where}: {exc}") from exc
        if compressed is None:
            return None
        text = inflate_listing(compressed, self.max_listing_bytes, where)
        try:
            keys = [line.strip() for line in text.decode().splitlines() if line.strip()]
            for listed in keys:
                check_key(listed)
        except ValueError as exc:  # not UTF-8, or a key escaping the crawl root
            raise CrawlListingError(f"crawl listing {where}: {exc}") from exc
        return keys

    def describe(self) -> str:
        return self.store.uri("")


def inflate_listing(compressed: bytes, limit: int, where: str) -> bytes:
    """Inflate a gzip listing (one or more members), never holding more than ``limit`` bytes of it."""
    out = bytearray()
    data = compressed
    while data:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise CrawlListingError(f"crawl listing {where} is not valid gzip: {exc}") from exc
        if len(out) > limit:
            raise CrawlListingError(
                f"crawl listing {where} inflates to more than max_listing_bytes={limit} bytes "
                f"({len(compressed)} bytes compressed); Common Crawl's listings are about 15 MB"
            )
        if not inflater.eof:
            raise CrawlListingError(f"crawl listing {where} is cut off ({len(compressed)} bytes of gzip)")
        data = inflater.unused_data
    return bytes(out)
