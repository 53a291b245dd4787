"""Benchmark decontamination by long n-gram overlap (GPT-3 / Llama practice).

A training document is *contaminated* when it shares at least one word n-gram (default
``n = 13``, the GPT-3 value; Brown et al. 2020, appendix C; Llama 2 and others use 8-13) with an
evaluation benchmark item. Detection is exact on 64-bit n-gram hashes.

Tokenisation for overlap
------------------------
1. **Words** are the maximal runs of the regex ``\\w+`` (Unicode-aware: letters, marks, decimal
   digits, connector punctuation such as ``_``) found in the *original* text by Polars' Rust regex
   engine. Everything between two words (spaces, punctuation, symbols, markup) is a separator and
   is ignored, so ``"Which gas, released"`` and ``"which gas released"`` have the same words.
2. Each word is **lowercased and Unicode NFKC-normalised** (``ＷＯＲＬＤ`` -> ``world``,
   ``ﬁne`` -> ``fine``; NFKC runs only on non-ASCII words, since ASCII is NFKC-invariant). Words
   are found before NFKC so that every word keeps an exact character span in the original text,
   which ``mode="cut"`` needs. (Detection lowercases whole documents before finding words, which
   is cheaper and finds the same words: lowercasing never turns a word character into a
   separator.)

Hashing (version ``HASH_VERSION``; the shared word / n-gram hashes of :mod:`dataplatform.core.ngrams`,
stable across machines, runs and library versions):

* word hash = ``mix64(len * K + sum_i mix64((i << 8 | byte_i) + S))`` over the UTF-8 bytes of the
  normalised word, computed for all words of a batch at once from a cumulative sum over the
  batch's concatenated bytes;
* n-gram hash = ``mix64(sum_j w_{i+j} * P^(n-1-j) mod 2^64)``, a polynomial hash computed over the
  flattened word-hash array of the whole batch with ``n`` vectorised multiply-adds; n-grams that
  would straddle two documents are masked out. ``mix64`` is the SplitMix64 finaliser.

There is no Python loop per document or per n-gram: a batch costs one lowercase and one regex
pass in Polars, NFKC of its non-ASCII words, one Arrow dictionary encoding (each distinct word is
hashed once), O(n) numpy passes over the word array, and an index lookup behind a 2^24-bit
prefilter bitmap. On a loaded 2-core box ~100 MB of text (10M words) takes ~10 s, dominated by
the Polars regex and dictionary encoding.

Limits: benchmark items with fewer than ``n`` words produce no n-gram and cannot be detected at
that ``n`` (:attr:`BenchmarkNgramIndex.short_items` counts them; lower ``n`` if it matters).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dataplatform.core.ngrams import distinct_word_hashes, ngram_hashes, word_hashes

__all__ = [
    "DEFAULT_N",
    "DEFAULT_TEXT_FIELDS",
    "HASH_VERSION",
    "BENCHMARK_SUFFIXES",
    "BenchmarkFileError",
    "BenchmarkFileSummary",
    "BenchmarkFilesSummary",
    "BenchmarkNgramIndex",
    "count_overlaps",
    "decontaminate",
    "find_benchmark_files",
    "validate_benchmark_files",
    "find_contamination",
    "load_benchmark_items",
    "ngram_hashes",
    "word_hashes",
]

DEFAULT_N = 13
DEFAULT_TEXT_FIELDS = ("question", "choices", "answer", "context")
HASH_VERSION = "dp-ngram-v1"
STAGE = "contamination"

_WORD = r"\w+"
_PIECE = r"\w+|\W+"  # words and separators, covering every character of the text
_U64 = np.uint64
_PREFILTER_BITS = 24


# --------------------------------------------------------------------------------------------
# loading benchmarks
#
# Policy: a benchmark file is configuration, not crawl data. A line that cannot be read (invalid
# UTF-8 or JSON, nested deeper than the parser allows, not a JSON object, a bytes-typed text
# field) fails the whole load with a ``BenchmarkFileError`` naming the file and the line, instead
# of being skipped: a skipped item is a benchmark the mix is silently not decontaminated against.
# An empty file fails too (an interrupted download looks like that). A readable item whose text
# fields are all missing or empty is kept with empty text; it has no n-gram, so it is counted as
# a short item by the index and by :func:`validate_benchmark_files`.

BENCHMARK_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")
_BENCHMARK_WORD = r"\w+"  # the words the n-gram hashes are built from (see the module doc)


class BenchmarkFileError(ValueError):
    """A benchmark file that cannot be used; the message names the file (and line or row)."""


def _flatten(value: Any) -> str:
    """Text of one benchmark field: lists/tuples joined with spaces, dicts by their values.

    Iterative (depth-first over an explicit stack), so no nesting depth can raise
    ``RecursionError``. Same result as joining the non-empty texts of the children recursively.
    """
    leaves: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None:
            continue
        if isinstance(item, str):
            if item:
                leaves.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif isinstance(item, (bytes, bytearray, memoryview)):
            raise TypeError(f"binary value {bytes(item)[:20]!r}...; store text fields as strings")
        else:
            text = str(item)
            if text:
                leaves.append(text)
    return " ".join(leaves)


def _json_line_record(path: Path, lineno: int, raw: bytes) -> dict | None:
    """The JSON object on one line (``None`` for a blank line); errors name file and line."""
    where = f"benchmark file {path}: line {lineno}"
    try:
        line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise BenchmarkFileError(f"{where} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except RecursionError:
        raise BenchmarkFileError(f"{where} is nested too deeply to parse") from None
    except json.JSONDecodeError as exc:
        is_array = lineno == 1 and line.lstrip().startswith("[")
        hint = " (expected JSON Lines: one object per line, not a JSON array)" if is_array else ""
        raise BenchmarkFileError(f"{where} is not valid JSON: {exc}{hint}") from None
    if not isinstance(record, dict):
        raise BenchmarkFileError(f"{where} is not a JSON object but a {type(record).__name__}")
    return record


def _read_json_lines(path: Path) -> list[tuple[int, dict]]:
    records = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            record = _json_line_record(path, lineno, raw)
            if record is not None:
                records.append((lineno, record))
    return records


def _read_records(path: Path) -> list[tuple[int, dict]]:
    """``(line number or 1-based row, record)`` pairs of one benchmark file."""
    if not path.exists():
        raise FileNotFoundError(f"benchmark file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in BENCHMARK_SUFFIXES:
        raise BenchmarkFileError(
            f"benchmark file {path}: unsupported format {suffix!r} (use .jsonl, .ndjson, .json lines or .parquet)"
        )
    try:
        if suffix == ".parquet":
            return list(enumerate(pq.read_table(path).to_pylist(), 1))
        return _read_json_lines(path)
    except BenchmarkFileError:
        raise
    except Exception as exc:  # unreadable parquet, permission, a folder, ...
        raise BenchmarkFileError(f"cannot read benchmark file {path}: {type(exc).__name__}: {exc}") from exc


def _item_text(path: Path, position: int, record: dict, fields: tuple[str, ...]) -> str:
    try:
        return "\n".join(t for t in (_flatten(record.get(f)) for f in fields) if t)
    except TypeError as exc:
        unit = "row" if path.suffix.lower() == ".parquet" else "line"
        raise BenchmarkFileError(f"benchmark file {path}: {unit} {position} has a text field with a {exc}") from None


def _file_items(path: Path, fields: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``(item ids, item texts)`` of one file; raises naming the file when it cannot be used."""
    records = _read_records(path)
    if not records:
        raise BenchmarkFileError(f"benchmark file {path} contains no items")
    if not any(f in rec for _, rec in records for f in fields):
        raise BenchmarkFileError(f"benchmark file {path} has none of the text fields {list(fields)}")
    ids = [str(i) if rec.get("id") is None else str(rec["id"]) for i, (_, rec) in enumerate(records)]
    texts = [_item_text(path, position, rec, fields) for position, rec in records]
    return ids, texts


def load_benchmark_items(paths: Sequence[Path | str], text_fields: Sequence[str] = DEFAULT_TEXT_FIELDS) -> pl.DataFrame:
    """Benchmark items from JSON-lines (``.jsonl``/``.ndjson``/``.json``) or Parquet files.

    Returns columns ``benchmark`` (the file stem, which becomes ``contamination:<benchmark>``),
    ``item_id`` (the record's ``id`` field, else its row index, as a string) and ``text`` (the
    ``text_fields`` present in the record, in the given order, joined with newlines; list fields such
    as ``choices`` are joined with spaces, dict fields by their values, numbers as written).
    Benchmark files are small (10^3-10^5 items) so records are flattened in Python.

    Raises ``FileNotFoundError`` when a file is missing and :class:`BenchmarkFileError` (a
    ``ValueError``) naming the file, and the line where there is one, when it is unreadable,
    empty, has a bad line (see the policy above), has none of ``text_fields``, or has the same
    stem as another file.
    """
    fields = tuple(text_fields)
    if not fields:
        raise ValueError("text_fields must name at least one field")
    names: list[str] = []
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw)
        name = path.stem
        if name in seen:
            raise BenchmarkFileError(
                f"benchmark files {seen[name]} and {path} have the same name {name!r}; benchmark names "
                "come from file stems and must be unique"
            )
        seen[name] = path
        file_ids, file_texts = _file_items(path, fields)
        names += [name] * len(file_ids)
        ids += file_ids
        texts += file_texts
    return pl.DataFrame(
        {"benchmark": names, "item_id": ids, "text": texts},
        schema={"benchmark": pl.String, "item_id": pl.String, "text": pl.String},
    )


def find_benchmark_files(path: str | Path) -> list[Path]:
    """The benchmark files at ``path``: the file itself, or every ``BENCHMARK_SUFFIXES`` file
    under the folder (recursively, sorted; symlinked folders are not descended into)."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"benchmarks path: no such file or folder: {root}")
    files = sorted(p for p in root.rglob("*") if p.name.lower().endswith(BENCHMARK_SUFFIXES) and p.is_file())
    if not files:
        raise FileNotFoundError(f"benchmarks path: no {'/'.join(BENCHMARK_SUFFIXES)} files under {root}")
    return files


@dataclass(frozen=True)
class BenchmarkFileSummary:
    """One benchmark file as the decontamination stage will see it."""

    path: str
    benchmark: str
    items: int
    items_without_text: int
    short_items: int  # fewer than ``n`` words: no n-gram, cannot be detected at this ``n``


@dataclass(frozen=True)
class BenchmarkFilesSummary:
    """Result of :func:`validate_benchmark_files`."""

    files: tuple[BenchmarkFileSummary, ...]
    n: int

    @property
    def items(self) -> int:
        return sum(f.items for f in self.files)

    @property
    def short_items(self) -> int:
        return sum(f.short_items for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "items": self.items, "short_items": self.short_items, "files": [dict(vars(f)) for f in self.files]}

    def describe(self) -> str:
        """One line for a CLI or a log, e.g. ``2 benchmark files, 120 items (3 shorter than 13 words)``."""
        files = ", ".join(f"{f.benchmark}: {f.items}" for f in self.files)
        return (
            f"{len(self.files)} benchmark file{'s' if len(self.files) != 1 else ''}, {self.items} items "
            f"({self.short_items} shorter than {self.n} words, undetectable) [{files}]"
        )


def validate_benchmark_files(
    path: str | Path, *, text_fields: Sequence[str] = DEFAULT_TEXT_FIELDS, n: int = DEFAULT_N
) -> BenchmarkFilesSummary:
    """Read every benchmark file at ``path`` (file or folder) exactly as decontamination will.

    Meant to run before a long chain, so that a bad benchmark file fails in seconds, naming the
    file and line, instead of after hours. Raises ``FileNotFoundError`` / :class:`BenchmarkFileError`
    as :func:`load_benchmark_items` does; returns per-file item counts otherwise.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    files = find_benchmark_files(path)
    items = load_benchmark_items(files, text_fields)
    stats = (
        items.with_columns(pl.col("text").str.count_matches(_BENCHMARK_WORD).alias("words"), pl.col("text").eq("").alias("empty"))
        .group_by("benchmark", maintain_order=True)
        .agg(pl.len().alias("items"), pl.col("empty").sum().alias("empty"), (pl.col("words") < n).sum().alias("short"))
    )
    by_name = {row["benchmark"]: row for row in stats.iter_rows(named=True)}
    summaries = tuple(
        BenchmarkFileSummary(
            str(p), p.stem, int(by_name[p.stem]["items"]), int(by_name[p.stem]["empty"]), int(by_name[p.stem]["short"])
        )
        for p in files
    )
    return BenchmarkFilesSummary(files=summaries, n=n)


# --------------------------------------------------------------------------------------------
# hashing: word and n-gram hashes are :mod:`dataplatform.core.ngrams`' (``word_hashes`` and
# ``ngram_hashes`` are re-exported here; the index stores their values, see HASH_VERSION)


@dataclass(frozen=True)
class _Tokens:
    words: pl.Series  # normalised words of all documents, flattened
    counts: np.ndarray  # words per document (int64)
    doc: np.ndarray  # document index of each word (int64)


def _normalize_words(words: pl.Series, lowered: bool) -> pl.Series:
    """NFKC + lowercase. ASCII is NFKC-invariant, so only non-ASCII words pay for NFKC (Polars'
    NFKC costs ~4x a regex pass); NFKC can produce capitals (``ℌ`` -> ``H``), hence the second
    lowercase on those."""
    if not lowered:
        words = words.str.to_lowercase()
    non_ascii = (words.str.len_bytes() != words.str.len_chars()).fill_null(False)
    if non_ascii.any():
        idx = non_ascii.arg_true()
        words = words.scatter(idx, words.gather(idx).str.normalize("NFKC").str.to_lowercase())
    return words


def _tokenize(texts: pl.Series) -> _Tokens:
    # Lowercasing whole documents first is ~8x cheaper than lowercasing every word and does not
    # move word boundaries (lowercase letters are still \w); cut mode lowercases word by word and
    # gets the same words.
    lists = texts.cast(pl.String).fill_null("").str.to_lowercase().str.extract_all(_WORD)
    counts = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
    words = _normalize_words(lists.explode().drop_nulls(), lowered=True)  # empty lists explode to null
    doc = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    return _Tokens(words, counts, doc)


def _doc_ngrams(texts: pl.Series, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Tokens]:
    """``(ngram_hash, ngram_start_word, ngram_doc, tokens)`` of a batch of texts."""
    tok = _tokenize(texts)
    h, start = ngram_hashes(distinct_word_hashes(tok.words), tok.doc, n)
    return h, start, tok.doc[start], tok


# --------------------------------------------------------------------------------------------
# index


@dataclass(frozen=True)
class BenchmarkNgramIndex:
    """Sorted n-gram hashes of benchmark items with the benchmark each comes from.

    ``hashes`` (uint64) is sorted; ``benchmark_codes`` (int32) is parallel to it and indexes
    ``benchmarks`` (sorted names). An n-gram found in several benchmarks has one entry per
    benchmark, ordered by code, so the first entry of a run of equal hashes is the benchmark whose
    name sorts first - lookups are deterministic whatever the order of the input files.
    """

    n: int
    hashes: np.ndarray
    benchmark_codes: np.ndarray
    benchmarks: tuple[str, ...]
    short_items: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, items_df: pl.DataFrame, n: int = DEFAULT_N) -> BenchmarkNgramIndex:
        """Index the ``text`` of ``items_df`` (columns ``benchmark``, ``text``; see
        :func:`load_benchmark_items`) by word ``n``-grams."""
        _check_n(n)
        for col in ("benchmark", "text"):
            if col not in items_df.columns:
                raise ValueError(f"items_df needs a {col!r} column (have {items_df.columns})")
        if items_df["benchmark"].null_count():
            raise ValueError("items_df column 'benchmark' has nulls")
        benchmarks = tuple(sorted(set(items_df["benchmark"].to_list())))
        code_of = pl.DataFrame(
            {"benchmark": list(benchmarks), "code": np.arange(len(benchmarks), dtype=np.int32)},
            schema={"benchmark": pl.String, "code": pl.Int32},
        )
        item_codes = (
            items_df.select(pl.col("benchmark").cast(pl.String))
            .join(code_of, on="benchmark", how="left", maintain_order="left")["code"]
            .to_numpy()
        )
        h, _, doc, tok = _doc_ngrams(items_df["text"], n)
        codes = item_codes[doc].astype(np.int32) if len(doc) else np.zeros(0, np.int32)
        order = np.lexsort((codes, h))
        h, codes = h[order], codes[order]
        if len(h):
            keep = np.ones(len(h), dtype=bool)
            keep[1:] = (h[1:] != h[:-1]) | (codes[1:] != codes[:-1])
            h, codes = h[keep], codes[keep]
        short = {}
        is_short = tok.counts < n
        if is_short.any():
            names, cnt = np.unique(item_codes[is_short], return_counts=True)
            short = {benchmarks[int(c)]: int(k) for c, k in zip(names, cnt)}
        return cls(
            n=n,
            hashes=np.ascontiguousarray(h, np.uint64),
            benchmark_codes=np.ascontiguousarray(codes, np.int32),
            benchmarks=benchmarks,
            short_items=short,
        )

    def __len__(self) -> int:
        return len(self.hashes)

    def to_arrow(self) -> pa.Table:
        """Arrow table (``ngram_hash`` uint64, ``benchmark`` int32 code) with ``n``, the hash
        version and benchmark names in the schema metadata; deterministic for the same index."""
        meta = {
            "n": self.n,
            "hash_version": HASH_VERSION,
            "benchmarks": list(self.benchmarks),
            "short_items": {k: self.short_items[k] for k in sorted(self.short_items)},
        }
        schema = pa.schema(
            [pa.field("ngram_hash", pa.uint64(), nullable=False), pa.field("benchmark", pa.int32(), nullable=False)],
            metadata={b"dataplatform.decontamination": json.dumps(meta, sort_keys=True).encode()},
        )
        return pa.table([pa.array(self.hashes, pa.uint64()), pa.array(self.benchmark_codes, pa.int32())], schema=schema)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> BenchmarkNgramIndex:
        raw = (table.schema.metadata or {}).get(b"dataplatform.decontamination")
        if raw is None:
            raise ValueError("not a benchmark n-gram index: schema metadata 'dataplatform.decontamination' missing")
        meta = json.loads(raw)
        if meta.get("hash_version") != HASH_VERSION:
            raise ValueError(
                f"benchmark n-gram index was built with hash version {meta.get('hash_version')!r}, this code "
                f"uses {HASH_VERSION!r}; rebuild the index"
            )
        hashes = table.column("ngram_hash").to_numpy().astype(np.uint64, copy=False)
        codes = table.column("benchmark").to_numpy().astype(np.int32, copy=False)
        return cls(
            n=int(meta["n"]),
            hashes=hashes,
            benchmark_codes=codes,
            benchmarks=tuple(meta["benchmarks"]),
            short_items=dict(meta.get("short_items", {})),
        )

    @functools.cached_property
    def _prefilter(self) -> np.ndarray:
        """Bitmap over the top ``_PREFILTER_BITS`` bits of the indexed hashes (16 MiB): a query
        whose bit is clear cannot be in the index, which spares most binary searches."""
        bits = np.zeros(1 << _PREFILTER_BITS, dtype=bool)
        bits[(self.hashes >> _U64(64 - _PREFILTER_BITS)).astype(np.int64)] = True
        return bits

    def lookup(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(matched, left, right)`` for query hashes: entries ``[left, right)`` equal each hash
        (``left == right`` where unmatched)."""
        left = np.zeros(len(h), dtype=np.int64)
        right = np.zeros(len(h), dtype=np.int64)
        if len(h) == 0 or len(self.hashes) == 0:
            return np.zeros(len(h), dtype=bool), left, right
        cand = np.flatnonzero(self._prefilter[(h >> _U64(64 - _PREFILTER_BITS)).astype(np.int64)])
        if len(cand):
            q = h[cand]
            left[cand] = np.searchsorted(self.hashes, q, side="left")
            right[cand] = np.searchsorted(self.hashes, q, side="right")
        return right > left, left, right


def _check_n(n: int) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")


# --------------------------------------------------------------------------------------------
# detection


def _detect(texts: pl.Series, index: BenchmarkNgramIndex):
    h, start, doc, tok = _doc_ngrams(texts, index.n)
    matched, left, _ = index.lookup(h)
    return matched, left, start, doc, tok


def _per_doc(texts: pl.Series, index: BenchmarkNgramIndex) -> tuple[np.ndarray, np.ndarray]:
    """``(overlap_count int64, first benchmark code int64 or -1)`` per text."""
    d = len(texts)
    matched, left, _, doc, _ = _detect(texts, index)
    mdoc = doc[matched]
    counts = np.bincount(mdoc, minlength=d).astype(np.int64)
    first = np.full(d, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, mdoc, index.benchmark_codes[left[matched]].astype(np.int64))
    first[counts == 0] = -1
    return counts, first


def _bench_names(codes: np.ndarray, index: BenchmarkNgramIndex) -> pl.Series:
    names = pl.Series("contamination_benchmark", list(index.benchmarks), dtype=pl.String)
    idx = pl.Series(codes).cast(pl.Int64)
    return (
        names.gather(idx.set(idx < 0, None))
        if len(names)
        else pl.Series("contamination_benchmark", [None] * len(codes), dtype=pl.String)
    )


def find_contamination(df: pl.DataFrame, index: BenchmarkNgramIndex, *, text_column: str = "text") -> pl.DataFrame:
    """``df`` with three columns added (row-aligned): ``contaminated`` (bool), ``contamination_benchmark``
    (the name-wise first benchmark sharing an n-gram with the row, else null) and ``overlap_ngrams``
    (int64: n-gram *positions* of the row found in the index, repeats counted). Null text has no
    n-grams. Every row is examined, whatever its ``drop_reason``."""
    if text_column not in df.columns:
        raise ValueError(f"text column {text_column!r} not in frame (have {df.columns})")
    counts, first = _per_doc(df[text_column], index)
    return df.with_columns(
        pl.Series("contaminated", counts > 0, dtype=pl.Boolean),
        _bench_names(first, index).alias("contamination_benchmark"),
        pl.Series("overlap_ngrams", counts, dtype=pl.Int64),
    )


def _cut(texts: pl.Series, index: BenchmarkNgramIndex) -> tuple[pl.Series, np.ndarray]:
    """Remove from each text every character span covered by an indexed n-gram.

    A span runs from the first character of the n-gram's first word to the last character of its
    last word; overlapping or touching n-grams merge, and the separators *inside* a merged span go
    with it. The span is replaced by nothing: the separators on either side stay, and since words
    are maximal ``\\w+`` runs two words can never be glued together. Returns (new texts, removed
    character counts)."""
    d = len(texts)
    pieces = texts.cast(pl.String).fill_null("").str.extract_all(_PIECE)
    frame = pl.DataFrame({"row": pl.int_range(0, d, dtype=pl.Int64, eager=True), "piece": pieces}).explode("piece")
    frame = frame.filter(pl.col("piece").is_not_null())
    is_word = frame["piece"].str.contains(r"^\w").to_numpy()
    rows = frame["row"].to_numpy()
    words = _normalize_words(frame["piece"].filter(pl.Series(is_word)), lowered=False)
    word_doc = rows[is_word]
    h, start = ngram_hashes(distinct_word_hashes(words), word_doc, index.n)
    matched, _, _ = index.lookup(h)
    s = start[matched]
    w = len(words)
    n = index.n
    # coverage of words: +1 at s, -1 at s+n; coverage of the gap after word g: +1 at s, -1 at s+n-1
    cov = np.zeros(w + 1, np.int64)
    np.add.at(cov, s, 1)
    np.add.at(cov, s + n, -1)
    word_cov = np.cumsum(cov[:w]) > 0
    gap = np.zeros(w + 1, np.int64)
    np.add.at(gap, s, 1)
    np.add.at(gap, s + n - 1, -1)
    gap_cov = np.cumsum(gap[:w]) > 0
    # words before each piece (global); a separator sits in the gap after word (before - 1)
    before = np.cumsum(is_word) - is_word
    sep_gap = before - 1
    words_in_doc_before = before - np.concatenate([[0], np.cumsum(np.bincount(word_doc, minlength=d))])[rows]
    doc_words = np.bincount(word_doc, minlength=d)[rows]
    inner = (~is_word) & (words_in_doc_before > 0) & (words_in_doc_before < doc_words)
    remove = np.zeros(len(is_word), dtype=bool)
    widx = np.flatnonzero(is_word)
    remove[widx] = word_cov
    sidx = np.flatnonzero(inner)
    remove[sidx] = gap_cov[sep_gap[sidx]]
    cut_chars = frame["piece"].str.len_chars().to_numpy().astype(np.int64)
    removed = np.bincount(rows[remove], weights=cut_chars[remove], minlength=d).astype(np.int64)
    kept = frame.filter(pl.Series(~remove)).group_by("row", maintain_order=True).agg(pl.col("piece").str.join(""))
    out = (
        pl.DataFrame({"row": np.arange(d, dtype=np.int64)})
        .join(kept, on="row", how="left", maintain_order="left")["piece"]
        .fill_null("")
    )
    return out, removed


def decontaminate(
    df: pl.DataFrame,
    index: BenchmarkNgramIndex,
    mode: Literal["drop", "cut"] = "drop",
    *,
    text_column: str = "text",
) -> pl.DataFrame:
    """Flag or cut benchmark overlap in the rows of ``df`` that are not dropped yet.

    Rows with a non-null ``drop_reason`` pass through untouched (their new columns are null). For the
    others :func:`find_contamination` decides, then

    * ``mode="drop"``: contaminated rows get ``drop_reason = "contamination:<benchmark>"``
      (``<benchmark>`` = the name-wise first benchmark they overlap);
    * ``mode="cut"``: the overlapping character spans are removed from the text (replaced by ``""``,
      see :func:`_cut`) and ``contamination_cut_chars`` records how many characters went; a row whose
      remaining text has no word character left is dropped with ``contamination:<benchmark>``.

    Added columns: ``contaminated``, ``contamination_benchmark``, ``overlap_ngrams`` and, for
    ``cut``, ``contamination_cut_chars``. A missing ``drop_reason`` column is created. Row order and
    all other columns are kept.
    """
    if mode not in ("drop", "cut"):
        raise ValueError(f"mode must be 'drop' or 'cut', got {mode!r}")
    if text_column not in df.columns:
        raise ValueError(f"text column {text_column!r} not in frame (have {df.columns})")
    if "drop_reason" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.String).alias("drop_reason"))
    active = df["drop_reason"].is_null().to_numpy()
    aidx = np.flatnonzero(active)
    h = df.height
    counts = np.zeros(h, np.int64)
    first = np.full(h, -1, np.int64)
    if len(aidx):
        c, f = _per_doc(df[text_column].gather(aidx), index)
        counts[aidx], first[aidx] = c, f
    contaminated = pl.Series("contaminated", counts > 0, dtype=pl.Boolean)
    valid = pl.Series(active)
    bench = _bench_names(first, index).alias("contamination_benchmark")
    out = df.with_columns(
        pl.when(valid).then(contaminated).otherwise(None).alias("contaminated"),
        bench,
        pl.when(valid).then(pl.Series(counts)).otherwise(None).cast(pl.Int64).alias("overlap_ngrams"),
    )
    reason_expr = pl.lit(f"{STAGE}:") + pl.col("contamination_benchmark")
    if mode == "drop":
        return out.with_columns(
            pl.when(pl.col("drop_reason").is_null() & pl.col("contaminated"))
            .then(reason_expr)
            .otherwise(pl.col("drop_reason"))
            .alias("drop_reason")
        )
    cut_chars = pl.Series("contamination_cut_chars", np.zeros(h, np.int64))
    cidx = np.flatnonzero(counts > 0)
    text = out[text_column]
    if len(cidx):
        new_text, removed = _cut(text.gather(cidx), index)
        text = text.scatter(cidx, new_text)
        cut_chars = cut_chars.scatter(cidx, removed)
    out = out.with_columns(
        text.alias(text_column),
        pl.when(valid).then(cut_chars).otherwise(None).cast(pl.Int64).alias("contamination_cut_chars"),
    )
    empty = pl.col(text_column).is_null() | ~pl.col(text_column).str.contains(_WORD)
    return out.with_columns(
        pl.when(pl.col("drop_reason").is_null() & pl.col("contaminated") & empty)
        .then(reason_expr)
        .otherwise(pl.col("drop_reason"))
        .alias("drop_reason")
    )


def count_overlaps(
    df: pl.DataFrame,
    index: BenchmarkNgramIndex,
    *,
    text_column: str = "text",
    skip_dropped: bool = True,
) -> dict[str, int]:
    """Overlapping n-gram positions per benchmark, for the blocking "zero overlap" check on a mix.

    Every benchmark of the index is a key (0 when clean); an n-gram shared by several benchmarks
    counts for each. With ``skip_dropped`` rows with a non-null ``drop_reason`` are ignored (they are
    not trained on)."""
    out = {b: 0 for b in index.benchmarks}
    if text_column not in df.columns:
        raise ValueError(f"text column {text_column!r} not in frame (have {df.columns})")
    if skip_dropped and "drop_reason" in df.columns:
        df = df.filter(pl.col("drop_reason").is_null())
    if df.height == 0 or len(index) == 0:
        return out
    matched, left, _, _, _ = _detect(df[text_column], index)
    first = left[matched]  # each matched n-gram's first and one-past-last entry in the sorted index
    past = np.searchsorted(index.hashes, index.hashes[first], side="right")
    sizes = past - first
    if sizes.sum() == 0:
        return out
    entry = np.repeat(first - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes) + np.arange(sizes.sum())
    per = np.bincount(index.benchmark_codes[entry], minlength=len(index.benchmarks))
    for code, name in enumerate(index.benchmarks):
        out[name] = int(per[code])
    return out
