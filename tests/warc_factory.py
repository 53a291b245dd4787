"""Builds real WARC bytes for tests: well-formed records and deliberately broken ones."""

from __future__ import annotations

import base64
import gzip
import hashlib
import uuid
import zlib


def _digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def http_response(body: bytes, *, status: str = "200 OK", content_type: str = "text/html; charset=utf-8") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def raw_warc_record(
    url: str,
    block: bytes,
    *,
    warc_type: str = "response",
    content_type: str = "application/http; msgtype=response",
    date: str = "2026-05-03T10:00:00Z",
    digest: bool = True,
    bad_digest: bool = False,
    extra_headers: dict[str, str] | None = None,
    content_length: int | str | None = None,
) -> bytes:
    """One uncompressed WARC record; ``content_length`` overrides the true block length (to break it)."""
    record_id = f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, warc_type + url)}>"
    headers = {
        "WARC-Type": warc_type,
        "WARC-Record-ID": record_id,
        "WARC-Date": date,
        "WARC-Target-URI": url,
        "Content-Type": content_type,
    }
    if digest:
        headers["WARC-Block-Digest"] = _digest(block + (b"tampered" if bad_digest else b""))
    headers.update(extra_headers or {})
    headers["Content-Length"] = str(len(block) if content_length is None else content_length)
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + block + b"\r\n\r\n"


def warc_record(url: str, block: bytes, **kwargs) -> bytes:
    """One WARC record as its own gzip member, as Common Crawl writes them (see :func:`raw_warc_record`)."""
    return gzip.compress(raw_warc_record(url, block, **kwargs), mtime=0)


def gzip_bomb_record(url: str, inflated_bytes: int, *, content_length: int | None = None, filler: bytes = b"\x00") -> bytes:
    """A gzip member holding a response whose block is ``inflated_bytes`` of ``filler`` (about 1000:1).

    Compressed in 1 MiB steps, so building a multi-gigabyte bomb costs no memory. With
    ``content_length`` given, the header declares that instead of the true block length.
    """
    http_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
    block_length = len(http_head) + inflated_bytes
    head = raw_warc_record(url, b"", digest=False, content_length=content_length or block_length)[:-4]
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(head + http_head)]
    chunk = (filler * (1 << 20))[: 1 << 20]
    remaining = inflated_bytes
    while remaining:
        step = min(remaining, len(chunk))
        parts.append(compressor.compress(chunk[:step]))
        remaining -= step
    parts.append(compressor.compress(b"\r\n\r\n") + compressor.flush())
    return b"".join(parts)


def html_page(title: str, paragraphs: list[str]) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body><nav><a href='/'>Home</a></nav>"
        f"<main><article><h1>{title}</h1>{body}</article></main><footer>Contact us</footer></body></html>"
    ).encode()


def record_id_for(url: str, warc_type: str = "response") -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, warc_type + url)}>"


ENGLISH = (
    "The river valley was settled by farmers who grew barley and kept sheep on the hills above the town. "
    "Over the centuries the market grew, and merchants built stone warehouses along the northern bank. "
    "Today the old quarter is a quiet place where visitors walk between the cathedral and the bridge."
)
GERMAN = (
    "Das Dorf liegt am Rande eines großen Waldes, und im Sommer kommen viele Wanderer hierher. "
    "Die Bewohner verkaufen Käse und Brot auf dem kleinen Markt, der jeden Samstag stattfindet."
)


def build_snapshot_warcs(folder, snapshot: str, *, n_files: int = 2, pages_per_file: int = 6, broken: bool = True) -> list[str]:
    """Write ``n_files`` WARCs for one snapshot in Common Crawl layout under ``folder``.

    Each file holds English pages (unique URLs), one German page, and, when ``broken``, a 404,
    a non-HTML response, a revisit and a record with a bad digest. Returns the URLs of the pages.
    """
    from pathlib import Path

    warc_dir = Path(folder) / "crawl-data" / snapshot / "segments" / "0001" / "warc"
    warc_dir.mkdir(parents=True, exist_ok=True)
    urls = []
    for f in range(n_files):
        records = [
            warc_record(
                f"https://{snapshot.lower()}.example/",
                b"software: test\r\n",
                warc_type="warcinfo",
                content_type="application/warc-fields",
            )
        ]
        for p in range(pages_per_file):
            url = f"https://site{f}.example/{snapshot}/article-{p}"
            urls.append(url)
            records.append(warc_record(url, http_response(html_page(f"Article {f}-{p}", [ENGLISH, f"Page {p} of file {f}."]))))
        de = f"https://site{f}.example/{snapshot}/de"
        urls.append(de)
        records.append(warc_record(de, http_response(html_page("Das Dorf", [GERMAN]))))
        if broken:
            records.append(
                warc_record(f"https://site{f}.example/{snapshot}/missing", http_response(b"gone", status="404 Not Found"))
            )
            records.append(
                warc_record(
                    f"https://site{f}.example/{snapshot}/logo.png",
                    http_response(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, content_type="image/png"),
                )
            )
            records.append(
                warc_record(
                    f"https://site{f}.example/{snapshot}/again",
                    b"HTTP/1.1 200 OK\r\n\r\n",
                    warc_type="revisit",
                    extra_headers={"WARC-Profile": "http://netpreserve.org/warc/1.0/revisit/identical-payload-digest"},
                )
            )
            records.append(
                warc_record(
                    f"https://site{f}.example/{snapshot}/tampered", http_response(html_page("T", [ENGLISH])), bad_digest=True
                )
            )
        (warc_dir / f"file-{f:03d}.warc.gz").write_bytes(b"".join(records))
    return urls
