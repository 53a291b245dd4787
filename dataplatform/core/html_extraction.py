"""HTML bytes -> (main text, title), with charset handling that refuses to invent text.

Main-content extraction uses Resiliparse (Bevendorff et al.), which FineWeb-scale pipelines use in
place of trafilatura because it is an order of magnitude faster; see benchmarks/RESULTS.md.
"""

from __future__ import annotations

import codecs
import dataclasses

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import detect_encoding
from resiliparse.parse.html import HTMLTree

from dataplatform.core import drop_reasons as R


@dataclasses.dataclass(frozen=True)
class ExtractionOptions:
    """``max_invalid_fraction``: share of undecodable bytes (as U+FFFD) tolerated in a page that
    declares a valid charset before the page counts as undecodable."""

    main_content: bool = True
    max_invalid_fraction: float = 0.01
    max_title_chars: int = 512


@dataclasses.dataclass(frozen=True)
class Extracted:
    text: str | None
    title: str | None
    drop_reason: str | None
    detail: str | None = None


def charset_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'").lower() or None
    return None


def decode_html(payload: bytes, declared: str | None, options: ExtractionOptions) -> tuple[str | None, str | None]:
    """Return ``(html, None)`` or ``(None, why)``.

    Policy: a declared charset that Python knows is trusted and must decode with at most
    ``max_invalid_fraction`` bad bytes. A declared charset nobody knows (``x-klingon``) means we
    cannot know how the author encoded the page, so only bytes that are valid UTF-8 are accepted;
    guessing would emit mojibake into a training set. With nothing declared, the HTML meta tag and
    then uchardet decide, as a browser would.
    """
    if declared:
        try:
            codec = codecs.lookup(declared).name
        except LookupError:
            try:
                return payload.decode("utf-8"), None
            except UnicodeDecodeError:
                return None, f"unknown charset {declared!r} and the bytes are not UTF-8"
        return _decode_tolerant(payload, codec, options, f"declared charset {declared!r}")
    try:
        return payload.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    detected = detect_encoding(payload, from_html_meta=True)
    try:
        codec = codecs.lookup(detected).name
    except LookupError:
        return None, f"detected charset {detected!r} is unknown"
    return _decode_tolerant(payload, codec, options, f"detected charset {detected!r}")


def _decode_tolerant(payload: bytes, codec: str, options: ExtractionOptions, what: str) -> tuple[str | None, str | None]:
    try:
        return payload.decode(codec), None
    except UnicodeDecodeError:
        pass
    text = payload.decode(codec, errors="replace")
    bad = text.count("\ufffd")
    if bad > options.max_invalid_fraction * max(len(text), 1):
        return None, f"{what}: {bad} of {len(text)} characters undecodable"
    return text, None


def extract_document(payload: bytes, content_type: str | None, options: ExtractionOptions = ExtractionOptions()) -> Extracted:
    html, why = decode_html(payload, charset_from_content_type(content_type), options)
    if html is None:
        return Extracted(None, None, R.UNDECODABLE_CHARSET, why)
    try:
        tree = HTMLTree.parse(html)
        title = tree.title or None
        text = extract_plain_text(tree, main_content=options.main_content, alt_texts=False)
    except Exception as exc:  # resiliparse raises its own parser exceptions; any is a bad page
        return Extracted(None, None, R.HTML_PARSE_ERROR, f"{type(exc).__name__}: {exc}")
    if title:
        title = " ".join(title.split())[: options.max_title_chars] or None
    text = text.strip()
    if not text:
        return Extracted("", title, R.EMPTY_TEXT, "no visible text after main-content extraction")
    return Extracted(text, title, None)
