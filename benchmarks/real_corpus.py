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
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", PYWB,
                        "-d", str(folder), "-q"], check=True)
        with tarfile.open(next(folder.glob("pywb-*.tar.gz"))) as tar:
            members = [m for m in tar.getmembers() if "/sample_archive/warcs/" in m.name and m.isfile()]
            tar.extractall(folder, members=members, filter="data")
    return sorted(folder.glob("pywb-*/sample_archive/warcs/*.warc.gz"))


def _digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def html_files_to_warc(files: list[Path], out: Path, url_prefix: str = "https://docs.example/") -> Path:
    """Wrap real HTML pages into HTTP-response WARC records (one gzip member each), as a crawler would."""
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for path in files:
            body = path.read_bytes()
            url = url_prefix + path.name
            http = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body)) + body
            rid = uuid.uuid5(uuid.NAMESPACE_URL, str(path))
            head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{rid}>\r\n"
                    f"WARC-Date: 2026-01-01T00:00:00Z\r\nWARC-Target-URI: {url}\r\n"
                    f"Content-Type: application/http; msgtype=response\r\nWARC-Block-Digest: {_digest(http)}\r\n"
                    f"Content-Length: {len(http)}\r\n\r\n").encode()
            f.write(gzip.compress(head + http + b"\r\n\r\n", compresslevel=6, mtime=0))
    os.replace(tmp, out)
    return out


def peak_rss_mb(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.processor() or platform.machine()}, Python {platform.python_version()}"
