"""Heuristic quality filters over a whole shard (a Polars frame with a ``text`` column).

One module per rule family, each a dataclass whose fields are the thresholds (defaults = the paper's
values, paper cited in the docstring), shaped like datatrove's filters but vectorised over a shard:

* :class:`~.gopher.GopherRepetitionFilter` -- ``gopher_repetition:*`` (Rae et al. 2021, Table A1)
* :class:`~.gopher.GopherQualityFilter` -- ``gopher_quality:*`` (Rae et al. 2021)
* :class:`~.c4.C4QualityFilter` -- ``c4:*`` (Raffel et al. 2020)
* :class:`~.fineweb.FineWebQualityFilter` -- ``fineweb:*`` (Penedo et al. 2024)

:class:`HeuristicFilterSuite` runs them in FineWeb's order (gopher_repetition, gopher_quality, c4,
fineweb). Every family evaluates every row, so the ``passes_<family>`` flags are all filled;
``drop_reason`` names the first failing rule. Like datatrove's pipeline, FineWeb's rules see the text
as C4 left it (kept lines only) for documents that pass C4.

All drop reasons (see each module for the exact rule):

- gopher_repetition: empty, dup_para_frac, dup_para_char_frac, dup_line_frac, dup_line_char_frac,
  top_2_gram, top_3_gram, top_4_gram, dup_5_gram, dup_6_gram, dup_7_gram, dup_8_gram, dup_9_gram,
  dup_10_gram
- gopher_quality: short_doc, long_doc, mean_word_len_low, mean_word_len_high, hash_ratio,
  ellipsis_ratio, bullet_lines_ratio, end_ellipsis_lines_ratio, alpha_words_ratio,
  too_few_stop_words
- c4: lorem_ipsum, curly_bracket, too_few_sentences
- fineweb: empty, line_punct_ratio, short_line_ratio, dup_line_char_ratio, newline_word_ratio
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from ._text import TextShard
from .c4 import C4, C4QualityFilter
from .fineweb import FINEWEB, FineWebQualityFilter
from .gopher import GOPHER_QUALITY, GOPHER_REPETITION, GopherQualityFilter, GopherRepetitionFilter

FAMILIES = (GOPHER_REPETITION, GOPHER_QUALITY, C4, FINEWEB)

__all__ = [
    "C4QualityFilter",
    "FAMILIES",
    "FineWebQualityFilter",
    "GopherQualityFilter",
    "GopherRepetitionFilter",
    "HeuristicFilterSuite",
    "apply_heuristic_filters",
    "drop_counts",
]


@dataclass
class HeuristicFilterSuite:
    """The four rule families with their thresholds; set a family to ``None`` to skip it (its
    ``passes_`` column is then all true).

    ``edit_text``: replace ``text`` of the rows that stay (``drop_reason`` null after the suite) with
    C4's edited text (kept lines only). Dropped rows keep their original text, so a rewriting stage
    sees what was rejected.
    """

    gopher_repetition: GopherRepetitionFilter | None = field(default_factory=GopherRepetitionFilter)
    gopher_quality: GopherQualityFilter | None = field(default_factory=GopherQualityFilter)
    c4: C4QualityFilter | None = field(default_factory=C4QualityFilter)
    fineweb: FineWebQualityFilter | None = field(default_factory=FineWebQualityFilter)
    edit_text: bool = True

    def rule_names(self) -> list[str]:
        return [name for f in self._families() if f is not None for name in f.rule_names()]

    def _families(self):
        return (self.gopher_repetition, self.gopher_quality, self.c4, self.fineweb)

    def apply(self, df: pl.DataFrame) -> pl.DataFrame:
        """Evaluate all families on ``df`` (``text`` column, optional ``drop_reason``).

        Adds ``passes_gopher_repetition``, ``passes_gopher_quality``, ``passes_c4``,
        ``passes_fineweb``, ``c4_lines_removed`` (UInt32, lines C4 removed), and fills
        ``drop_reason`` with the first failing ``<family>:<rule>`` where it was null. Rows and other
        columns are kept as they are, in order.
        """
        if "text" not in df.columns:
            raise ValueError("apply_heuristic_filters: the frame has no 'text' column")
        texts = df.get_column("text")
        shard = TextShard(texts)
        n = df.height
        results: dict[str, pl.DataFrame] = {}
        for fam in (self.gopher_repetition, self.gopher_quality):
            if fam is not None:
                results[fam.family] = fam.evaluate(shard)
        c4_text = shard.docs.get_column("text")
        if self.c4 is not None:
            c4_res = self.c4.evaluate(shard)
            results[C4] = c4_res.select("passes_c4", "c4_reason")
            c4_text = c4_res.get_column("c4_text")
            lines_removed = c4_res.get_column("c4_lines_removed")
        else:
            lines_removed = pl.Series("c4_lines_removed", [0] * n, dtype=pl.UInt32)
        if self.fineweb is not None:
            results[FINEWEB] = self.fineweb.evaluate(c4_text.rename("text"))

        passes = {}
        reason = pl.Series("drop_reason", [None] * n, dtype=pl.Utf8)
        for fam in FAMILIES:
            if fam in results:
                passes[f"passes_{fam}"] = results[fam].get_column(f"passes_{fam}")
                reason = reason.fill_null(results[fam].get_column(f"{fam}_reason"))
            else:
                passes[f"passes_{fam}"] = pl.Series([True] * n, dtype=pl.Boolean)
        incoming = (
            df.get_column("drop_reason").cast(pl.Utf8) if "drop_reason" in df.columns else pl.Series([None] * n, dtype=pl.Utf8)
        )
        drop_reason = incoming.fill_null(reason).rename("drop_reason")
        out = df.with_columns(
            *[s.rename(name) for name, s in passes.items()],
            lines_removed.rename("c4_lines_removed"),
            drop_reason,
        )
        if self.edit_text and self.c4 is not None:
            out = out.with_columns(
                pl.when(drop_reason.is_null()).then(c4_text.rename("text")).otherwise(texts.cast(pl.Utf8)).alias("text")
            )
        return out

    __call__ = apply


def apply_heuristic_filters(df: pl.DataFrame, suite: HeuristicFilterSuite | None = None) -> pl.DataFrame:
    """Run ``suite`` (default thresholds when None) over one shard; see :meth:`HeuristicFilterSuite.apply`."""
    return (suite or HeuristicFilterSuite()).apply(df)


def drop_counts(df: pl.DataFrame, suite: HeuristicFilterSuite | None = None) -> dict[str, int]:
    """Rows per ``drop_reason`` of a filtered frame, for Dagster metadata: every rule of the suite
    appears (0 when it dropped nothing), plus any incoming reasons present, plus ``"kept"``."""
    counts: Counter[str] = Counter({name: 0 for name in (suite or HeuristicFilterSuite()).rule_names()})
    if df.height:
        vc = df.get_column("drop_reason").value_counts()
        for reason, count in vc.iter_rows():
            counts["kept" if reason is None else reason] += int(count)
    counts.setdefault("kept", 0)
    return dict(counts)
