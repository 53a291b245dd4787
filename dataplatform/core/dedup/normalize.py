"""Text normalisation and content hashing for exact deduplication.

Normalisation (shared by exact and MinHash dedup), in the spirit of datatrove's ``simplify_text``
that FineWeb's dedup uses:

1. Unicode **NFKC** (full-width forms, ligatures, superscripts fold together). ASCII is
   NFKC-invariant and CPython's ``unicodedata.is_normalized`` quick check is cheap, so only
   documents that are not already NFKC pay for normalising.
2. **lowercase** (Unicode aware).
3. **digits and apostrophes are deleted** (``page 3 of 12`` == ``page 7 of 9``,
   ``don't`` == ``dont``).
4. every run of **punctuation, symbols, control characters and whitespace becomes one space**
   (ASCII and Unicode categories P, S, C, Z); leading/trailing separators are stripped.

The result is lowercase words separated by exactly one ASCII space, which :mod:`.minhash`
tokenises on. How it runs (the result is the same as applying steps 1-4 to each whole document):

* Non-ASCII characters are decoded once per *distinct* character of the batch. One that is
  NFKC-inert (quick check "Yes", never composing with its predecessor, combining classes in
  order) and lowercases to the same UTF-8 length is folded **in place** on the byte buffer:
  P/S/Z/C -> spaces, other digits -> ASCII ``0`` (deleted below), letters -> lowercase.
* Around any other character (NFD accents, compatibility forms, final sigma, ...) only the
  whitespace-delimited run goes through the Polars/``unicodedata`` Unicode step and is spliced
  back; ASCII whitespace is a safe cut for NFKC, the per-character regexes and final-sigma
  context.
* Steps 3-4 and ASCII lowercasing on bytes run in numpy over ~1 MB chunks of the concatenated
  UTF-8 buffer in a single compaction (Polars' filter kernel) - no Python loop per character,
  and multi-byte UTF-8 sequences are never split because only ASCII bytes are deleted or
  rewritten.

Content hash: **xxHash XXH3-64 (seed 0) of the UTF-8 bytes of the normalised text**, as
``uint64``. XXH3 is specified byte-for-byte, independent of platform and endianness, so the value
is stable across machines, runs and library versions. 64 bits give an expected ~n^2/2^65 false
matches (about 0.03 for a billion kept documents), which we accept for exact dedup.
"""

from __future__ import annotations

import functools
import unicodedata

import numpy as np
import polars as pl
import pyarrow as pa
import xxhash

from dataplatform.core.ngrams import Buffers, byte_chunks, string_buffers

__all__ = [
    "Buffers",
    "normalize_buffers",
    "normalize_text",
    "content_hash",
    "string_buffers",
]

_CHUNK_BYTES = 1 << 20  # bytes per step of the byte pass (its masks stay in cache)
_NON_ASCII = r"[^\x00-\x7F]"
_UNICODE_SEP = r"[\p{P}\p{S}\p{Z}\p{C}--\x00-\x7F]"
_UNICODE_PZC = r"[\p{P}\p{Z}\p{C}--\x00-\x7F]"
_UNICODE_DIGIT = r"[\p{N}--0-9]"


def _is_deleted(data: np.ndarray) -> np.ndarray:
    """ASCII digits and the apostrophe (SIMD comparisons, no table lookup)."""
    return ((data - np.uint8(48)) < np.uint8(10)) | (data == np.uint8(39))


def _is_word(data: np.ndarray) -> np.ndarray:
    """ASCII letters and every byte of a multi-byte UTF-8 sequence."""
    return ((data | np.uint8(0x20)) - np.uint8(97) < np.uint8(26)) | (data >= np.uint8(128))


def _unicode_step(s: pl.Series) -> pl.Series:
    s = s.fill_null("")
    mask = s.str.contains(_NON_ASCII)
    if mask.any():
        idx = mask.arg_true()
        # Punctuation, spaces and control/format characters become separators anyway and NFKC
        # never turns them into letters, so replacing them first keeps the result and lets most
        # documents (e.g. ones whose only non-NFKC character is a no-break space) skip NFKC.
        sub = s.gather(idx).str.replace_all(_UNICODE_PZC, " ")
        # NFKC only where needed: CPython's quick check is ~20x cheaper than normalising, and
        # almost all real text is already NFKC.
        texts = sub.to_list()
        todo = [i for i, t in enumerate(texts) if not unicodedata.is_normalized("NFKC", t)]
        if todo:
            sub = sub.scatter(todo, [unicodedata.normalize("NFKC", texts[i]) for i in todo])
        sub = sub.str.replace_all(_UNICODE_SEP, " ").str.replace_all(_UNICODE_DIGIT, "")
        s = s.scatter(idx, sub)
    return s.str.to_lowercase()


@functools.lru_cache(maxsize=1)
def _compose_seconds() -> frozenset[int]:
    """Code points that can combine with a *preceding* character under canonical composition
    (the NFC/NFKC quick-check "Maybe" characters, plus a few that never compose): every
    non-initial character of a canonical decomposition, and the Hangul medial/final jamo."""
    out = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for cp in range(0x80, 0x30000):
        d = unicodedata.decomposition(chr(cp))
        if d and not d.startswith("<"):
            out.update(int(x, 16) for x in d.split()[1:])
    return frozenset(out)


def _char_rule(ch: str) -> tuple[bool, int, bytes]:
    """For one non-ASCII character: (needs the full Unicode path, canonical combining class as
    the NFKC quick check sees it, same-length UTF-8 rewrite).

    The rewrite folds the character the way :func:`_unicode_step` does inside a text that is
    already NFKC: punctuation/separator/other and symbols -> spaces, other digits -> ASCII ``0``
    (deleted by the byte pass), letters/marks -> lowercase. A document needs the full path when
    it holds a character whose NFKC quick-check value is not "Yes" (it may change or compose with
    its predecessor), whose lowercase has another UTF-8 length or depends on context (final
    sigma), or that this Python's Unicode database does not know (the regex decides)."""
    raw = ch.encode()
    cat = unicodedata.category(ch)
    if cat == "Cn":
        return True, 0, raw
    if cat[0] in "PZC":
        return False, 0, b" " * len(raw)  # replaced before the NFKC check in _unicode_step
    slow = not unicodedata.is_normalized("NFKC", ch) or ord(ch) in _compose_seconds()
    ccc = unicodedata.combining(ch)
    if cat[0] == "S":
        return slow, ccc, b" " * len(raw)
    if cat[0] == "N":
        return slow, ccc, b"0" * len(raw)
    low = ch.lower().encode()
    if len(low) != len(raw) or ch == "\u03a3":
        return True, ccc, raw
    return slow, ccc, low


_rule_cache: dict[bytes, tuple[bool, int, bytes]] = {}


def _unicode_chars(data: np.ndarray, offsets: np.ndarray, docs_ok: np.ndarray | None):
    """Non-ASCII characters of the buffer (of the documents flagged in ``docs_ok``): lead byte
    positions, their document, UTF-8 width, distinct characters, each position's index into
    them, and the :func:`_char_rule` of each distinct character."""
    nb = len(data)
    hi = np.flatnonzero(data >= np.uint8(0xC0))  # lead bytes of multi-byte characters
    if len(hi) == 0:
        return None
    lead = hi
    doc = np.searchsorted(offsets, lead, side="right") - 1
    if docs_ok is not None:
        keep = docs_ok[doc]
        lead, doc = lead[keep], doc[keep]
        if len(lead) == 0:
            return None
    b0 = data[lead].astype(np.uint32)
    width = 2 + (b0 >= 0xE0).astype(np.int64) + (b0 >= 0xF0)

    def byte(k: int) -> np.ndarray:
        return np.where(width > k, data[np.minimum(lead + k, nb - 1)], 0).astype(np.uint32)

    key = (b0 << np.uint32(24)) | (byte(1) << np.uint32(16)) | (byte(2) << np.uint32(8)) | byte(3)
    uniq, inv = np.unique(key, return_inverse=True)
    rules = []
    for k in uniq.tolist():
        raw = k.to_bytes(4, "big")
        raw = raw[: 2 + (raw[0] >= 0xE0) + (raw[0] >= 0xF0)]
        r = _rule_cache.get(raw)
        if r is None:
            r = _char_rule(raw.decode("utf-8"))
            if len(_rule_cache) < 1 << 16:
                _rule_cache[raw] = r
        rules.append(r)
    return lead, doc, width, uniq, inv, rules


def _needs_full_path(lead, doc, width, inv, rules) -> np.ndarray:
    """Lead-byte positions (indices into ``lead``) of characters that keep their text from
    passing CPython's NFKC quick check (a character not "Yes", or a combining class lower than
    the previous character's non-zero one: that character is flagged), or that cannot be folded
    in place. ASCII characters are "Yes" with class 0."""
    slow_c = np.array([r[0] for r in rules], dtype=bool)[inv]
    ccc = np.array([r[1] for r in rules], dtype=np.int64)[inv]
    # the previous character is non-ASCII only where the previous lead byte ends right here
    adj = (lead[1:] == lead[:-1] + width[:-1]) & (doc[1:] == doc[:-1])
    slow_c[1:] |= adj & (ccc[1:] != 0) & (ccc[:-1] > ccc[1:])
    return np.flatnonzero(slow_c)


def _is_space(b: np.ndarray) -> np.ndarray:
    """ASCII whitespace (tab, LF, VT, FF, CR, space)."""
    return (b == np.uint8(32)) | ((b - np.uint8(9)) < np.uint8(5))


def _slow_segments(data: np.ndarray, offsets: np.ndarray, pos: np.ndarray, doc: np.ndarray):
    """Sorted, disjoint ``[start, end)`` byte ranges: the whitespace-delimited run around each
    position in ``pos`` (within its document). ASCII whitespace is a safe cut for everything
    :func:`_unicode_step` does: NFKC never composes, decomposes or reorders across it, the Unicode
    regexes are per character, and final-sigma lowercasing stops at it (neither cased nor
    case-ignorable). Runs longer than 256 bytes on a side take the whole document."""
    ds, de = offsets[doc], offsets[doc + 1]
    lo, hi = pos.copy(), pos.copy()
    todo = np.arange(len(pos))
    for _ in range(256):  # walk left to whitespace or the document start
        if len(todo) == 0:
            break
        cur = lo[todo]
        stop = (cur == ds[todo]) | _is_space(data[np.maximum(cur - 1, 0)])
        todo = todo[~stop]
        lo[todo] -= 1
    lo[todo] = ds[todo]
    todo = np.arange(len(pos))
    for _ in range(256):  # walk right to whitespace or the document end
        if len(todo) == 0:
            break
        cur = hi[todo]
        stop = (cur >= de[todo]) | _is_space(data[np.minimum(cur, len(data) - 1)])
        todo = todo[~stop]
        hi[todo] += 1
    hi[todo] = de[todo]
    # merge overlapping / nested ranges (a whole-document range swallows the words in it)
    order = np.lexsort((-hi, lo))
    lo, hi, doc = lo[order], hi[order], doc[order]
    reach = np.maximum.accumulate(hi)
    new = np.ones(len(lo), dtype=bool)
    new[1:] = lo[1:] >= reach[:-1]
    grp = np.cumsum(new) - 1
    starts = lo[new]
    ends = np.zeros(len(starts), dtype=np.int64)
    np.maximum.at(ends, grp, hi)
    return starts, ends, doc[new]


def _fold_segments(s_data: np.ndarray, offsets: np.ndarray, seg_s, seg_e, seg_doc):
    """Run :func:`_unicode_step` on the byte ranges and splice the results in. Returns the new
    buffers and the new ranges of the replaced text."""
    pieces = [s_data[a:b] for a, b in zip(seg_s.tolist(), seg_e.tolist())]
    lens = seg_e - seg_s
    seg_off = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=seg_off[1:])
    arr = pa.LargeStringArray.from_buffers(len(lens), pa.py_buffer(seg_off), pa.py_buffer(np.concatenate(pieces).tobytes()))
    rep, rep_off = string_buffers(_unicode_step(pl.Series("seg", arr)))
    out = []
    prev = 0
    for i, (a, b) in enumerate(zip(seg_s.tolist(), seg_e.tolist())):
        out.append(s_data[prev:a])
        out.append(rep[rep_off[i] : rep_off[i + 1]])
        prev = b
    out.append(s_data[prev:])
    rep_lens = np.diff(rep_off)
    delta = np.bincount(seg_doc, weights=rep_lens - lens, minlength=len(offsets) - 1)
    new_offsets = offsets.copy()
    new_offsets[1:] += np.cumsum(delta.astype(np.int64))
    # where the replaced text lies now
    shift = np.concatenate(([0], np.cumsum(rep_lens - lens)[:-1]))
    new_s = seg_s + shift
    return np.concatenate(out), new_offsets, new_s, new_s + rep_lens


def normalize_buffers(texts: pl.Series | pa.Array | list[str | None]) -> Buffers:
    """Normalise a batch of texts (module docstring) into ``(data, offsets)`` buffers.

    Non-ASCII characters that are NFKC-inert (nearly all of real text) are folded in place on
    the byte buffer (:func:`_char_rule`, one rule per distinct character of the batch); only the
    whitespace-delimited runs around the others go through :func:`_unicode_step` (NFKC + Unicode
    regexes) and are spliced back. Then the byte pass (:func:`_ascii_pass`) deletes
    digits/apostrophes, collapses separators and lowercases ASCII. The result equals running
    :func:`_unicode_step` on every whole document first."""
    s = texts if isinstance(texts, pl.Series) else pl.Series("text", texts, dtype=pl.Utf8)
    if s.dtype != pl.Utf8:
        s = s.cast(pl.Utf8)
    s = s.fill_null("")
    data, offsets = string_buffers(s)
    if len(data) == 0:
        return np.zeros(0, np.uint8), np.zeros_like(offsets)
    chars = _unicode_chars(data, offsets, None)
    if chars is not None:
        lead, doc, width, uniq, inv, rules = chars
        slow = _needs_full_path(lead, doc, width, inv, rules)
        if len(slow):
            seg_s, seg_e, seg_doc = _slow_segments(data, offsets, lead[slow], doc[slow])
            data, offsets, new_s, new_e = _fold_segments(data, offsets, seg_s, seg_e, seg_doc)
            chars = _unicode_chars(data, offsets, None)
            if chars is not None:
                # the spliced text is final: fold only characters outside it
                lead, doc, width, uniq, inv, rules = chars
                k = np.searchsorted(new_s, lead, side="right") - 1
                outside = (k < 0) | (lead >= new_e[np.maximum(k, 0)])
                lead, width, inv = lead[outside], width[outside], inv[outside]
        if chars is not None and len(lead):
            # every other non-ASCII character is rewritten in place (same UTF-8 length)
            rep = np.frombuffer(b"".join(r[2].ljust(4, b"\0") for r in rules), np.uint8)
            rep = rep.reshape(len(uniq), 4)
            if not data.flags.writeable:
                data = data.copy()
            for k in range(4):
                at = width > k
                data[lead[at] + k] = rep[inv[at], k]
    return _ascii_pass(data, offsets)


def _ascii_pass(data: np.ndarray, offsets: np.ndarray) -> Buffers:
    """Steps 3-4 and ASCII lowercasing on the bytes (multi-byte characters are word bytes), in
    chunks of whole documents of ~``_CHUNK_BYTES`` so that the byte masks stay in cache."""
    n = len(offsets) - 1
    if len(data) <= _CHUNK_BYTES:
        return _ascii_chunk(data, offsets)
    outs, counts = [], []
    for d0, d1 in byte_chunks(offsets, _CHUNK_BYTES):
        lo, hi = int(offsets[d0]), int(offsets[d1])
        o, off = _ascii_chunk(data[lo:hi], offsets[d0 : d1 + 1] - lo)
        outs.append(o)
        counts.append(np.diff(off))
    new_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.concatenate(counts), out=new_offsets[1:])
    return np.concatenate(outs), new_offsets


def _doc_counts(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Number of True bytes of ``mask`` in each document."""
    n = len(offsets) - 1
    if n * 256 <= len(mask):  # few, long documents: one SIMD count per document
        o = offsets.tolist()
        return np.array([np.count_nonzero(mask[o[i] : o[i + 1]]) for i in range(n)], np.int64)
    counts = np.zeros(n, dtype=np.int64)
    nz = offsets[1:] > offsets[:-1]
    if nz.any():
        # reduceat over non-empty documents only (an empty segment would yield its first element)
        counts[nz] = np.add.reduceat(mask.view(np.uint8), offsets[:-1][nz], dtype=np.uint32)
    return counts


def _ascii_chunk(data: np.ndarray, offsets: np.ndarray) -> Buffers:
    """Steps 3-4 in one compaction. A byte is kept when it is a word byte, or a separator whose
    next byte that is not deleted (digit / apostrophe) is a word byte of the same document and
    that follows some word byte of the document (no leading separator)."""
    nb = len(data)
    if nb == 0:
        return np.zeros(0, np.uint8), np.zeros(len(offsets), np.int64)
    word = _is_word(data)
    dele = _is_deleted(data)
    starts, ends = offsets[:-1], offsets[1:]
    nonempty = ends > starts
    nxt = np.empty_like(word)
    nxt[:-1] = word[1:]
    nxt[-1] = False
    nxt[ends[nonempty] - 1] = False  # the next byte belongs to the next document
    if dele.any():
        # a separator before a run of deleted bytes looks past the run
        dpos = np.flatnonzero(dele)
        doc = np.searchsorted(offsets, dpos, side="right") - 1
        brk = np.flatnonzero((np.diff(dpos) != 1) | (np.diff(doc) != 0))
        first = np.concatenate(([0], brk + 1))
        last = np.concatenate((brk, [len(dpos) - 1]))
        r_doc = doc[first]
        before = dpos[first] - 1
        after = dpos[last] + 1
        ok = before >= starts[r_doc]
        inside = after < ends[r_doc]
        nxt[before[ok]] = (inside & word[np.minimum(after, nb - 1)])[ok]
        keep = word | (nxt & ~dele)
    else:
        keep = word | nxt
    # a leading separator run keeps its last separator: find each document's first kept byte
    pos = starts[nonempty].copy()
    end = ends[nonempty]
    for _ in range(16):
        if len(pos) == 0:
            break
        k = keep[pos]
        lead_sep = k & ~word[pos]
        keep[pos[lead_sep]] = False
        more = ~k & (pos + 1 < end)
        pos, end = pos[more] + 1, end[more]
    for p0, e0 in zip(pos.tolist(), end.tolist()):  # documents with a long non-word prefix
        seg = keep[p0:e0]
        if seg.any():
            i = p0 + int(np.argmax(seg))
            if not word[i]:
                keep[i] = False
    new_offsets = np.zeros(len(offsets), dtype=np.int64)
    np.cumsum(_doc_counts(keep, offsets), out=new_offsets[1:])
    # compaction: Polars' filter kernel is ~8x faster than numpy boolean indexing on bytes
    out = pl.Series(data, dtype=pl.UInt8).filter(pl.Series(keep)).to_numpy()
    # ASCII letters -> lowercase, ASCII separators -> space; UTF-8 bytes untouched
    ascii_ = out < np.uint8(0x80)
    out = out | (ascii_.view(np.uint8) << np.uint8(5))
    sep = ascii_ & ((out - np.uint8(97)) >= np.uint8(26))
    out -= sep.view(np.uint8) * (out - np.uint8(32))
    return out, new_offsets


def normalize_text(texts: pl.Series | pa.Array | list[str | None]) -> pl.Series:
    """Normalised texts as a Polars string Series (nulls become empty strings)."""
    data, offsets = normalize_buffers(texts)
    n = len(offsets) - 1
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(data.tobytes()))
    return pl.Series("normalized", arr)


def content_hash(normalized: pl.Series | pa.Array | Buffers) -> np.ndarray:
    """XXH3-64 (seed 0) of each normalised text's UTF-8 bytes, as a ``uint64`` array.

    One C call per document over zero-copy slices of the buffer (no ``str`` objects are made);
    ~0.2 us per document, far below normalisation itself.
    """
    data, offsets = string_buffers(normalized)
    mv = memoryview(np.ascontiguousarray(data))
    h = xxhash.xxh3_64_intdigest
    offs = offsets.tolist()
    return np.array([h(mv[offs[i] : offs[i + 1]]) for i in range(len(offs) - 1)], dtype=np.uint64)
