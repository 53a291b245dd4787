"""Real web/crawl data for the benchmarks, fetched at run time from package registries.

Nothing here is committed: pages come from Debian documentation packages (real English HTML,
thousands of pages: `apt-get download`, then `dpkg-deb -x`) and real WARC files from the pywb
sdist on PyPI (its `sample_archive/warcs/`). Everything is cached under `benchmarks/_data/`
(git-ignored).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import platform
import resource
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

DATA = Path(__file__).resolve().parent / "_data"
DOC_PACKAGES = ("python3.11-doc", "postgresql-doc-15", "git-doc")
PYWB = "pywb==2.10.0"


def debian_html_files(packages: tuple[str, ...] = DOC_PACKAGES) -> list[Path]:
    """HTML files of Debian documentation packages, downloaded and unpacked once."""
    debs = DATA / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for pkg in packages:
        if not list(debs.glob(f"{pkg}_*.deb")):
            try:
                subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True, capture_output=True)
            except subprocess.CalledProcessError:
                subprocess.run(["apt-get", "update"], check=True, capture_output=True)
                subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True, capture_output=True)
        deb = sorted(debs.glob(f"{pkg}_*.deb"))[0]
        out = DATA / "unpacked" / pkg
        if not out.exists():
            out.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(out)], check=True)
        files.extend(sorted(p for p in out.rglob("*.htm*") if p.is_file()))
    return files


def pywb_sample_warcs() -> list[Path]:
    """The real crawl WARCs shipped in the pywb sdist (`sample_archive/warcs/*.warc.gz`)."""
    folder = DATA / "pywb"
    if not folder.exists():
        folder.mkdir(parents=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", PYWB, "-d", str(folder), "-q"],
            check=True,
        )
        with tarfile.open(next(folder.glob("pywb-*.tar.gz"))) as tar:
            members = [m for m in tar.getmembers() if "/sample_archive/warcs/" in m.name and m.isfile()]
            tar.extractall(folder, members=members, filter="data")
    return sorted(folder.glob("pywb-*/sample_archive/warcs/*.warc.gz"))


def _digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def html_files_to_warc(
    files: list[Path], out: Path, url_prefix: str = "https://docs.example/", payload_type: str | None = None
) -> Path:
    """Wrap real HTML pages into HTTP-response WARC records (one gzip member each), as a crawler would.

    ``payload_type``: also write ``WARC-Identified-Payload-Type`` (Common Crawl does; readers such as
    datatrove's WarcReader sniff the payload with libmagic when it is absent, and skip XHTML pages that
    libmagic calls ``text/xml``)."""
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for path in files:
            body = path.read_bytes()
            url = url_prefix + path.name
            http = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
            rid = uuid.uuid5(uuid.NAMESPACE_URL, str(path))
            extra = f"WARC-Identified-Payload-Type: {payload_type}\r\n" if payload_type else ""
            head = (
                f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{rid}>\r\n"
                f"WARC-Date: 2026-01-01T00:00:00Z\r\nWARC-Target-URI: {url}\r\n"
                f"Content-Type: application/http; msgtype=response\r\nWARC-Block-Digest: {_digest(http)}\r\n"
                f"{extra}"
                f"Content-Length: {len(http)}\r\n\r\n"
            ).encode()
            f.write(gzip.compress(head + http + b"\r\n\r\n", compresslevel=6, mtime=0))
    os.replace(tmp, out)
    return out


def peak_rss_mb(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.processor() or platform.machine()}, Python {platform.python_version()}"


# ----------------------------------------------------------------- helpers for the pipeline benches
def doc_warcs(packages: tuple[str, ...] = ("python3.11-doc", "postgresql-doc-15"), parts: int = 4) -> list[Path]:
    """Each package's HTML pages wrapped into ``parts`` WARC files (round-robin split, so the parts are
    about the same size): several files, so that shard-per-file executors have work for every core."""
    out: list[Path] = []
    for pkg in packages:
        files = debian_html_files((pkg,))
        for i in range(parts):
            out.append(
                html_files_to_warc(
                    files[i::parts],
                    DATA / "warcs" / f"{pkg}-{i + 1}of{parts}.warc.gz",
                    url_prefix=f"https://{pkg}.docs.example/",
                    payload_type="text/html",
                )
            )
    return out


def count_warc_responses(paths: list[Path]) -> int:
    """WARC ``response`` records in ``paths`` (the common denominator for docs/s across systems)."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    n = 0
    for path in paths:
        with open(path, "rb") as f:
            n += sum(1 for _ in ArchiveIterator(f, record_types=WarcRecordType.response, parse_http=False))
    return n


def cpu_seconds() -> float:
    """User + system CPU time of this process and of every child it has waited for."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class TreeRssSampler:
    """Samples the summed RSS of this process and all its descendants (from ``/proc``) in a thread.

    ``ru_maxrss`` of RUSAGE_CHILDREN is the peak of the *largest* child, not of the whole tree; with a
    pool of workers the machine holds their sum, which is what ``peak_mb`` reports.
    """

    def __init__(self, interval: float = 0.2) -> None:
        import threading

        self.interval = interval
        self.peak_mb = 0.0
        # Sampled: ru_maxrss of RUSAGE_CHILDREN cannot say this, since a spawned worker starts from a
        # fork of the driver and inherits its high-water mark.
        self.largest_child_mb = 0.0
        self.samples: list[tuple[float, float, float]] = []  # (unix time, driver MB, largest worker MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _children(pid: int) -> list[int] | None:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return []
        out: list[int] = []
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out.extend(int(c) for c in f.read().split())
            except FileNotFoundError:
                return None  # kernel without CONFIG_PROC_CHILDREN
            except OSError:
                continue
        return out

    @staticmethod
    def _rss_kb(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/statm") as f:
                return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
        except (OSError, ValueError, IndexError):
            return 0

    @classmethod
    def _tree(cls, root: int) -> set[int]:
        tree, frontier = {root}, [root]
        while frontier:
            pid = frontier.pop()
            children = cls._children(pid)
            if children is None:  # no children files: parent links from a full /proc scan
                children = []
                for entry in filter(str.isdigit, os.listdir("/proc")):
                    try:
                        with open(f"/proc/{entry}/stat") as f:
                            if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                                children.append(int(entry))
                    except (OSError, ValueError, IndexError):
                        continue
            for child in children:
                if child not in tree:
                    tree.add(child)
                    frontier.append(child)
        return tree

    def _run(self) -> None:
        root = os.getpid()
        while not self._stop.is_set():
            sizes = {pid: self._rss_kb(pid) for pid in self._tree(root)}
            self.peak_mb = max(self.peak_mb, sum(sizes.values()) / 1024)
            children = [kb for pid, kb in sizes.items() if pid != root]
            self.largest_child_mb = max(self.largest_child_mb, max(children, default=0) / 1024)
            self.samples.append((time.time(), sizes.get(root, 0) / 1024, max(children, default=0) / 1024))
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_ingest_filter_chain(files: list[str], workers: int) -> dict:
    """Our WARC -> documents -> filtered chain on ``files`` into a temporary store, timed.

    The measured unit shared by the datatrove comparison and the scaling benchmark: the same stage
    functions the assets run, a process pool of ``workers`` (inline for 1).
    """
    import tempfile
    import time

    from dataplatform.execution.engines import make_executor
    from dataplatform.io.crawl_sources import CrawlSource
    from dataplatform.io.datasets import DatasetStore
    from dataplatform.io.object_store import LocalLocation
    from dataplatform.stages.filtering import materialize_filtered
    from dataplatform.stages.ingest import materialize_documents_from_warcs

    keys = [Path(f).absolute().relative_to("/").as_posix() for f in files]
    executor = make_executor("process" if workers > 1 else "inline", workers)
    with tempfile.TemporaryDirectory() as out, TreeRssSampler() as tree:
        store = DatasetStore.local(out)
        start = time.perf_counter()
        documents = materialize_documents_from_warcs(CrawlSource(LocalLocation("/")), keys, store, "bench", executor)
        mid = time.perf_counter()
        filtered = materialize_filtered(store, "bench", executor)
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "documents_s": mid - start,
        "filtered_s": seconds - (mid - start),
        "cpu_s": cpu_seconds(),
        "records": documents.rows_in,
        "extracted": documents.rows_out,
        "kept": filtered.rows_out,
        "bytes": documents.bytes_in,
        "rss_self_mb": peak_rss_mb(),
        "rss_children_mb": peak_rss_mb(children=True),
        "tree_rss_mb": tree.peak_mb,
    }
