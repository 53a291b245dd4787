"""Builds real WARC bytes for tests: well-formed records and deliberately broken ones."""

from __future__ import annotations

import base64
import gzip
import hashlib
import uuid


def _digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def http_response(body: bytes, *, status: str = "200 OK", content_type: str = "text/html; charset=utf-8") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )


def warc_record(
    url: str,
    block: bytes,
    *,
    warc_type: str = "response",
    content_type: str = "application/http; msgtype=response",
    date: str = "2026-05-03T10:00:00Z",
    digest: bool = True,
    bad_digest: bool = False,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
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
    headers["Content-Length"] = str(len(block))
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return gzip.compress(head.encode() + block + b"\r\n\r\n", mtime=0)


def html_page(title: str, paragraphs: list[str]) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body><nav><a href='/'>Home</a></nav>"
        f"<main><article><h1>{title}</h1>{body}</article></main><footer>Contact us</footer></body></html>"
    ).encode()


def record_id_for(url: str, warc_type: str = "response") -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, warc_type + url)}>"
