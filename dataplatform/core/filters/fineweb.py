"""FineWeb's own quality rules (Penedo et al. 2024, "The FineWeb Datasets: Decanting the Web for the
Finest Text Data at Scale", https://arxiv.org/abs/2406.17557, section 3.3.5), as datatrove's
``FineWebQualityFilter``.

Lines are ``text.split("\\n")`` without the blank ones. Drop reasons ``fineweb:<rule>``:

``fineweb:empty``
    no non-blank line
``fineweb:line_punct_ratio``
    fraction of lines ending in terminal punctuation < ``line_punct_thr`` (0.12)
``fineweb:short_line_ratio``
    fraction of lines of at most ``short_line_length`` (30) characters > ``short_line_thr`` (0.67)
``fineweb:dup_line_char_ratio``
    characters in lines that repeat an earlier line, over the characters that are not ``\\n``,
    > ``char_duplicates_ratio``
``fineweb:newline_word_ratio``
    newlines per word > ``new_line_ratio`` (0.3; a list-like page)

``char_duplicates_ratio`` defaults to the paper's 0.1 ("fraction of characters in duplicated lines
>= 0.1"); datatrove's class defaults to 0.01 -- pass ``char_duplicates_ratio=0.01`` to match it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ._text import (
    TERMINAL_END_RE,
    TERMINAL_PUNCTUATION,
    TextShard,
    char_class,
    count_tokens_expr,
    first_failure,
    per_doc,
    ratio,
)
from .gopher import duplicate_stats

FINEWEB = "fineweb"


@dataclass
class FineWebQualityFilter:
    """FineWeb quality rules (Penedo et al. 2024) over a whole shard."""

    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    stop_chars: tuple[str, ...] | None = None
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.1
    new_line_ratio: float = 0.3

    family = FINEWEB

    def rule_names(self) -> list[str]:
        names = ["empty", "line_punct_ratio", "short_line_ratio", "dup_line_char_ratio", "newline_word_ratio"]
        return [f"{FINEWEB}:{n}" for n in names]

    def statistics(self, texts: pl.Series | TextShard) -> pl.DataFrame:
        shard = TextShard.of(texts)
        end_re = TERMINAL_END_RE if self.stop_chars is None else "[" + char_class(self.stop_chars) + "]$"
        lines = (
            shard.docs.select("_doc", pl.col("text").str.split("\n").alias("line"))
            .explode("line")
            .filter(pl.col("line").str.strip_chars() != "")
        )
        per = lines.group_by("_doc").agg(
            n_lines=pl.len(),
            n_punct=pl.col("line").str.contains(end_re).sum(),
            n_short=(pl.col("line").str.len_chars() <= self.short_line_length).sum(),
        )
        dups = duplicate_stats(lines, "line").select("_doc", pl.col("_dup_chars").alias("dup_chars"))
        text = shard.docs.get_column("text")
        n_newlines = text.str.count_matches("\n", literal=True)
        # the shard's cached tokens when it has them, else count without exploding
        if "tokens" in shard.__dict__:
            n_words = shard.n_words
        else:
            n_words = shard.docs.select(count_tokens_expr(pl.col("text"))).to_series()
        return (
            per_doc(shard, per, {"n_lines": 0, "n_punct": 0, "n_short": 0})
            .join(per_doc(shard, dups, {"dup_chars": 0}), on="_doc", maintain_order="left")
            .with_columns(
                n_newlines=n_newlines,
                n_chars_no_nl=shard.docs.get_column("n_chars") - n_newlines,
                n_words=n_words,
            )
        )

    def evaluate(self, texts: pl.Series | TextShard) -> pl.DataFrame:
        """Per document, in input order: ``passes_fineweb`` and ``fineweb_reason``."""
        f = FINEWEB
        n = pl.col("n_lines")
        punct = ratio(pl.col("n_punct"), n)
        punct_fail = punct < self.line_punct_thr
        if self.line_punct_exclude_zero:
            punct_fail = punct_fail & (punct != 0)
        checks = [
            (f"{f}:empty", n == 0),
            (f"{f}:line_punct_ratio", punct_fail),
            (f"{f}:short_line_ratio", ratio(pl.col("n_short"), n) > self.short_line_thr),
            (f"{f}:dup_line_char_ratio", ratio(pl.col("dup_chars"), pl.col("n_chars_no_nl")) > self.char_duplicates_ratio),
            (f"{f}:newline_word_ratio", ratio(pl.col("n_newlines"), pl.col("n_words")) > self.new_line_ratio),
        ]
        reason = first_failure(checks)
        return self.statistics(texts).select(
            reason.is_null().alias(f"passes_{f}"),
            reason.alias(f"{f}_reason"),
        )


__all__ = ["FINEWEB", "FineWebQualityFilter", "TERMINAL_PUNCTUATION"]
