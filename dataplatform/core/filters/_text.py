"""Shared, vectorised text primitives for the heuristic filters.

Everything here works on a whole shard at once with Polars expressions (Rust regex, multi-threaded)
and numpy. Nothing loops over documents in Python.

Words. datatrove tokenises English with spacy.blank("en") (rules + exceptions). We approximate
that tokenizer with one regular expression (:data:`TOKEN_PATTERN`) after splitting English
contractions the way spaCy does (``don't`` -> ``do n't``, ``it's`` -> ``it 's``):

* URLs and e-mail addresses are one token (spaCy's ``url_match``);
* spaCy's period abbreviations (``Mr.``, ``e.g.``, ``U.S.``, single letters ``A.``) keep
  their period;
* a word runs from the first to the last letter or digit of a whitespace-free run, keeping inner
  punctuation (``1,000.50``, ``file.txt``, ``f(x``), except that ``/``, ``=`` and hyphens before a letter split (``well - known``; ``UTF-8``, ``-c``
  stay whole);
* runs of dots or dashes (``...``, ``--``) are one token; any other punctuation or symbol character
  is a token of its own; everything else is a run of word characters.

The benchmark (benchmarks/bench_heuristic_filters.py) measures how often the resulting filter
decisions agree with datatrove's on real English pages.

Lines. Every family splits lines the way :meth:`str.splitlines` does (``\r\n``, ``\r``, ``\x0b``,
``\x0c``, ``\x1c-\x1e``, ``\x85``, ``\u2028``, ``\u2029`` count as line breaks). datatrove's
Gopher-repetition and FineWeb filters split on ``\n`` only; extracted web text almost never holds the
other separators, and treating them as line breaks is what a reader sees.
"""

from __future__ import annotations

import re
from functools import cached_property

import polars as pl

# --- character classes (same sets as datatrove.utils.text) ---------------------------------------

#: datatrove's PUNCTUATION string (ASCII/CJK punctuation, symbols and C0/C1 control characters).
PUNCTUATION = "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»" + "".join(
    chr(x) for a, b in ((0, 9), (11, 13), (13, 32), (127, 160)) for x in range(a, b)
)

#: Sentence-final punctuation of many scripts (datatrove's TERMINAL_PUNCTUATION; spaCy's sentencizer
#: uses nearly the same list).
TERMINAL_PUNCTUATION = "\u0021\u002e\u003f\u0589\u061d\u061e\u061f\u06d4\u0700\u0701\u0702\u07f9\u0837\u0839\u083d\u083e\u0964\u0965\u104a\u104b\u1362\u1367\u1368\u166e\u1735\u1736\u17d4\u17d5\u17d6\u17d9\u17da\u1803\u1809\u1944\u1945\u1aa8\u1aa9\u1aaa\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d\u1b7e\u1c3b\u1c3c\u1c7e\u1c7f\u203c\u203d\u2047\u2048\u2049\u2e2e\u2e3c\u2e53\u2e54\u3002\ua4ff\ua60e\ua60f\ua6f3\ua6f7\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d\uaa5e\uaa5f\uaaf0\uaaf1\uabeb\ufe52\ufe56\ufe57\uff01\uff0e\uff1f\uff61\U00010a56\U00010a57\U00010f55\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87\U00010f88\U00010f89\U00011047\U00011048\U000110be\U000110bf\U000110c0\U000110c1\U00011141\U00011142\U00011143\U000111c5\U000111c6\U000111cd\U000111de\U000111df\U00011238\U00011239\U0001123b\U0001123c\U000112a9\U0001144b\U0001144c\U000115c2\U000115c3\U000115c9\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce\U000115cf\U000115d0\U000115d1\U000115d2\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7\U00011641\U00011642\U0001173c\U0001173d\U0001173e\U00011944\U00011946\U00011a42\U00011a43\U00011a9b\U00011a9c\U00011c41\U00011c42\U00011ef7\U00011ef8\U00011f43\U00011f44\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44\U00016e98\U0001bc9f\U0001da88"

PUNCTUATION_SET = frozenset(PUNCTUATION) | frozenset(TERMINAL_PUNCTUATION)


def char_class(chars) -> str:
    """A regex character class body matching exactly ``chars``."""
    return "".join(re.escape(c) if c not in "\x00" else "\\x00" for c in sorted(set(chars)))


#: a token with at least one character outside PUNCTUATION_SET ("non-symbol word" in Gopher)
NON_SYMBOL_RE = "[^" + char_class(PUNCTUATION_SET) + "]"
#: a line ending in terminal punctuation (FineWeb)
TERMINAL_END_RE = "[" + char_class(TERMINAL_PUNCTUATION) + "]$"
#: tokens that end a sentence for spaCy's sentencizer
SENT_PUNCT_RE = "^[" + char_class(TERMINAL_PUNCTUATION) + "]$"
#: tokens that spaCy marks is_punct (every character in a Unicode P* category)
PUNCT_TOKEN_RE = r"^\p{P}+$"

# --- tokenizer --------------------------------------------------------------------------------------

# spaCy English tokenizer exceptions that keep a trailing period (spacy/lang/en/tokenizer_exceptions.py).
_ABBREVIATIONS = (
    "Adm Ak Ala Apr Ariz Ark Aug Bros Calif Co Colo Conn Corp Dec Del Dr Feb Fla Ga Gen Gov Ia Id Ill "
    "Inc Ind Jan Jr Jul Jun Kan Kans Ky La Ltd Mar Mass Md Messrs Mich Minn Miss Mo Mont Mr Mrs Ms Mt "
    "Neb Nebr Nev Nov Oct Okla Ore Pa Prof Rep Rev Sen Sep Sept St Tenn Va Wash Wis co vs"
).split()

#: English contractions spaCy splits off: "don't" -> "do" "n't", "it's" -> "it" "'s".
CONTRACTION_SPLIT = (r"(\w)(n['’][tT]|N['’]T|['’](?:[sSmMdD]|ll|LL|re|RE|ve|VE))\b", "${1} ${2}")

# rest of a word: up to its last letter/digit, through inner punctuation other than / = -, and on
# through hyphens followed by a digit (UTF-8, 1e-09)
_WORD_TAIL = r"(?:[^\s/=\-]*[^\W_])?(?:-\d(?:[^\s/=\-]*[^\W_])?)*"

TOKEN_PATTERN = "|".join(
    [
        r"(?:https?://|www\.)\S+",  # URL
        r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",  # e-mail
        "(?:" + "|".join(sorted(_ABBREVIATIONS, key=len, reverse=True)) + r")\.",
        r"(?:\p{L}\.){2,}",  # U.S. e.g. p.m. Ph.D.
        r"\p{Lu}\.",  # initial: "John F. Kennedy"
        r"(?i:n['’]t)\b",  # n't after the contraction split
        r"['’](?i:s|m|d|ll|re|ve)\b",  # 's 'm 'd 'll 're 've
        # a word: from the first to the last letter/digit of a whitespace-free run, keeping inner
        # punctuation (1,000.5  file.txt  f(x  a=b) -- spaCy only splits prefixes and suffixes --
        # but splitting at slashes, equals signs and hyphens not followed by a digit (well-known ->
        # well - known, UTF-8 and -c stay whole, and/or -> and / or)
        # and leaving "_" at the edges alone
        r"\.\d" + _WORD_TAIL,  # .15
        r"[-+]\d" + _WORD_TAIL,  # -1.5 +5
        r"-\p{L}\b",  # command-line flag: -c
        r"[^\W_]" + _WORD_TAIL,
        r"\.{2,}|-{2,}",  # ... -- ---
        r"[^\w\s]|_",  # any other punctuation or symbol, one character per token
    ]
)

#: str.splitlines() separators other than "\n"
_EXOTIC_NEWLINES = r"\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"


def tokens_expr(text: pl.Expr) -> pl.Expr:
    """List of word tokens of each string (approximation of datatrove's spaCy word_tokenize)."""
    return text.str.replace_all(CONTRACTION_SPLIT[0], CONTRACTION_SPLIT[1]).str.extract_all(TOKEN_PATTERN)


def count_tokens_expr(text: pl.Expr) -> pl.Expr:
    """Number of word tokens of each string, without materialising them."""
    return text.str.replace_all(CONTRACTION_SPLIT[0], CONTRACTION_SPLIT[1]).str.count_matches(TOKEN_PATTERN)


def normalize_newlines(text: pl.Expr) -> pl.Expr:
    return text.str.replace_all(_EXOTIC_NEWLINES, "\n")


class TextShard:
    """The texts of one shard and their lazily built line- and token-level frames.

    The families share it, so a suite run explodes lines and tokens once.

    * ``docs``: ``_doc`` (row number), ``text``, ``n_chars``
    * ``lines``: one row per ``\n``-separated piece of the newline-normalised text, in order:
      ``_doc``, ``_lid`` (global line id), ``_lpos`` (position in the doc), ``line``,
      ``_splitline`` (false only for the empty piece after a final newline, which
      :meth:`str.splitlines` does not return)
    * ``tokens``: one row per word token: ``_doc``, ``_lid``, ``tok``
    """

    def __init__(self, texts: pl.Series):
        texts = texts.cast(pl.Utf8).fill_null("").rename("text")
        self.n_docs = len(texts)
        self.docs = pl.DataFrame({"_doc": pl.arange(0, self.n_docs, eager=True, dtype=pl.UInt32), "text": texts})
        self.docs = self.docs.with_columns(n_chars=pl.col("text").str.len_chars())

    @classmethod
    def of(cls, texts: pl.Series | TextShard) -> TextShard:
        return texts if isinstance(texts, TextShard) else cls(texts)

    @cached_property
    def lines(self) -> pl.DataFrame:
        pieces = self.docs.select(
            "_doc",
            normalize_newlines(pl.col("text")).str.split("\n").alias("line"),
        ).with_columns(_n=pl.col("line").list.len())
        lines = pieces.explode("line").with_row_index("_lid")
        first = lines.group_by("_doc", maintain_order=True).agg(_first=pl.col("_lid").min())
        lines = lines.join(first, on="_doc", how="left", maintain_order="left")
        lpos = (pl.col("_lid") - pl.col("_first")).cast(pl.UInt32)
        return lines.select(
            "_doc",
            "_lid",
            lpos.alias("_lpos"),
            "line",
            (~((lpos == pl.col("_n") - 1) & (pl.col("line") == ""))).alias("_splitline"),
            pl.col("_n").alias("_n_pieces"),
        )

    @cached_property
    def tokens(self) -> pl.DataFrame:
        """Word tokens in document order (tokens never span a line break)."""
        return self.lines.select("_doc", "_lid", tokens_expr(pl.col("line")).alias("tok")).explode("tok").drop_nulls("tok")

    @cached_property
    def n_words(self) -> pl.Series:
        counts = self.tokens.group_by("_doc").agg(n=pl.len())
        return self.docs.select("_doc").join(counts, on="_doc", how="left", maintain_order="left").get_column("n").fill_null(0)


def per_doc(shard: TextShard, agg: pl.DataFrame, defaults: dict | None = None) -> pl.DataFrame:
    """Left-join per-doc aggregates onto all docs of the shard (docs without rows get defaults)."""
    out = shard.docs.select("_doc").join(agg, on="_doc", how="left", maintain_order="left")
    if defaults:
        out = out.with_columns([pl.col(k).fill_null(v) for k, v in defaults.items()])
    return out


def ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den, null where den is 0 (a null comparison never fails a rule; Polars would give NaN,
    which compares greater than every number)."""
    return pl.when(den != 0).then(num / den)


def first_failure(checks: list[tuple[str, pl.Expr]]) -> pl.Expr:
    """The name of the first check whose expression is true, else null (checks in priority order)."""
    expr = pl.lit(None, dtype=pl.Utf8)
    for name, failed in reversed(checks):
        expr = pl.when(failed.fill_null(False)).then(pl.lit(name)).otherwise(expr)
    return expr
