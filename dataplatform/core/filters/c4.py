"""C4 cleaning rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
Text-to-Text Transformer", JMLR 21, section 2.2, https://jmlr.org/papers/volume21/20-074/20-074.pdf),
as datatrove's ``C4QualityFilter`` with its defaults (which follow the TFDS ``c4_utils`` code).

Line rules (the line is removed, the document stays): a word longer than ``max_word_length``
characters; no terminal punctuation (``. ? ! " '``) or ending in ``...``; fewer than
``min_words_per_line`` words; "javascript"; a policy phrase (terms of use, privacy policy, cookie
policy, uses cookies, use of cookies, use cookies). Wikipedia-style citations (``[1]``, ``[edit]``,
``[citation needed]``) are cut out of each line first.

Document rules, drop reasons ``c4:<rule>``:

``c4:lorem_ipsum``
    a (so far kept) line contains "lorem ipsum"
``c4:curly_bracket``
    a (so far kept) line contains ``{``
``c4:too_few_sentences``
    the kept lines hold fewer than ``min_num_sentences`` sentences

When both document rules trigger, the one on the earlier line wins (datatrove stops at that line).
The kept lines, stripped and joined with ``\\n``, are the document's new text (``c4_text``);
``c4_lines_removed`` counts the lines that were not kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ._text import PUNCT_TOKEN_RE, SENT_PUNCT_RE, TextShard, per_doc, tokens_expr

C4 = "c4"

CITATION_RE = r"\[\d*\]|\[edit\]|\[citation needed\]"
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


def sentence_breaks(tokens: pl.DataFrame, key: str, n_keys: int) -> np.ndarray:
    """Sentence boundaries inside each ``key`` group, as spaCy's sentencizer finds them: a token that
    is neither punctuation nor sentence-final punctuation starts a new sentence when a sentence-final
    punctuation token came since the previous such token. ``tokens`` is in text order; the result
    holds, per key value ``0..n_keys-1``, the number of boundaries (sentences = boundaries + 1)."""
    if tokens.height == 0:
        return np.zeros(n_keys, dtype=np.int64)
    flags = tokens.select(
        pl.col(key).cast(pl.Int64).alias("k"),
        pl.col("tok").str.contains(SENT_PUNCT_RE).alias("sp"),
        pl.col("tok").str.contains(PUNCT_TOKEN_RE).alias("p"),
    )
    k = flags.get_column("k").to_numpy()
    sp = flags.get_column("sp").to_numpy()
    is_word = ~(sp | flags.get_column("p").to_numpy())
    cs = np.cumsum(sp)
    before = cs - sp  # sentence-final tokens strictly before each token
    starts = np.ones(len(k), dtype=bool)
    starts[1:] = k[1:] != k[:-1]
    group_base = np.maximum.accumulate(np.where(starts, np.arange(len(k)), 0))
    base = before[group_base]  # count at the start of the token's group
    w = np.flatnonzero(is_word)
    if len(w) == 0:
        return np.zeros(n_keys, dtype=np.int64)
    kw = k[w]
    ref = np.empty(len(w), dtype=cs.dtype)
    ref[1:] = cs[w[:-1]]
    first_in_group = np.ones(len(w), dtype=bool)
    first_in_group[1:] = kw[1:] != kw[:-1]
    ref[first_in_group] = base[w[first_in_group]]
    brk = cs[w] > ref
    return np.bincount(kw[brk], minlength=n_keys).astype(np.int64)


@dataclass
class C4QualityFilter:
    """C4's heuristic rules (Raffel et al. 2020), as datatrove's ``C4QualityFilter`` with
    ``split_paragraph=True`` (lines are ``str.splitlines()``). A rule whose number is -1, or whose flag
    is False, is off. Sentences are counted with the shared tokenizer and spaCy's sentencizer rule."""

    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_num_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True

    family = C4

    def rule_names(self) -> list[str]:
        return [f"{C4}:lorem_ipsum", f"{C4}:curly_bracket", f"{C4}:too_few_sentences"]

    def line_table(self, shard: TextShard) -> pl.DataFrame:
        """One row per ``splitlines()`` line: ``_doc``, ``_lid``, ``line`` (stripped, citations cut),
        ``kept`` and ``doc_rule`` (the document rule that this line triggers, else null)."""
        lines = shard.lines.filter(pl.col("_splitline")).select("_doc", "_lid", pl.col("line").str.strip_chars())
        line = pl.col("line")
        n_ws_words = line.str.count_matches(r"\S+")
        long_word = pl.lit(False)
        if self.max_word_length != -1:
            # Only lines longer than the limit can hold such a word; split just those (vectorised).
            long_lines = lines.filter(line.str.len_chars() > self.max_word_length).select(
                "_lid",
                (line.str.extract_all(r"\S+").list.eval(pl.element().str.len_chars()).list.max() > self.max_word_length).alias(
                    "_long"
                ),
            )
            lines = lines.join(long_lines, on="_lid", how="left", maintain_order="left")
            long_word = pl.col("_long").fill_null(False)
        else:
            lines = lines.with_columns(_long=pl.lit(False))
        cleaned = line.str.replace_all(CITATION_RE, "") if self.remove_citations else line
        lines = lines.with_columns(
            _orig=line,
            line=cleaned,
            _n_ws=n_ws_words,
            _long=long_word,
        )
        low = line.str.to_lowercase()
        reached = ~pl.col("_long")
        if self.filter_no_terminal_punct:
            reached = reached & line.str.contains(r"[.?!\"']$") & ~line.str.ends_with("...")
        reached = reached & (pl.col("_n_ws") >= self.min_words_per_line)
        lorem = low.str.contains("lorem ipsum", literal=True) if self.filter_lorem_ipsum else pl.lit(False)
        js = low.str.contains("javascript", literal=True) if self.filter_javascript else pl.lit(False)
        curly = line.str.contains("{", literal=True) if self.filter_curly_bracket else pl.lit(False)
        policy = low.str.contains_any(list(POLICY_SUBSTRINGS)) if self.filter_policy else pl.lit(False)
        return lines.with_columns(
            kept=reached & ~lorem & ~js & ~curly & ~policy,
            doc_rule=pl.when(reached & lorem)
            .then(pl.lit(f"{C4}:lorem_ipsum"))
            .when(reached & ~js & curly)
            .then(pl.lit(f"{C4}:curly_bracket"))
            .otherwise(pl.lit(None, dtype=pl.Utf8)),
        )

    def evaluate(self, texts: pl.Series | TextShard) -> pl.DataFrame:
        """Per document, in input order: ``passes_c4``, ``c4_reason``, ``c4_text`` (the kept lines;
        the original text for documents that fail) and ``c4_lines_removed``."""
        shard = TextShard.of(texts)
        lines = self.line_table(shard)
        n_lids = shard.lines.height

        # sentences per kept line: 1 + boundaries; reuse the shard's tokens unless a citation was cut
        breaks = sentence_breaks(shard.tokens, "_lid", n_lids)
        changed = lines.filter(pl.col("kept") & (pl.col("line") != pl.col("_orig")))
        if changed.height:
            retok = changed.select("_lid", tokens_expr(pl.col("line")).alias("tok")).explode("tok").drop_nulls("tok")
            breaks[changed.get_column("_lid").to_numpy()] = sentence_breaks(retok, "_lid", n_lids)[
                changed.get_column("_lid").to_numpy()
            ]
        lines = lines.with_columns(_sent=pl.Series(breaks[lines.get_column("_lid").to_numpy()] + 1))

        per = lines.group_by("_doc").agg(
            n_lines=pl.len(),
            n_kept=pl.col("kept").sum(),
            n_sentences=pl.col("_sent").filter(pl.col("kept")).sum(),
            doc_rule=pl.col("doc_rule").drop_nulls().first(),
            c4_text=pl.col("line").filter(pl.col("kept")).str.join("\n").str.strip_chars(),
        )
        stats = per_doc(shard, per, {"n_lines": 0, "n_kept": 0, "n_sentences": 0, "c4_text": ""})
        too_few = pl.col("n_sentences") < self.min_num_sentences if self.min_num_sentences != -1 else pl.lit(False)
        reason = (
            pl.when(pl.col("doc_rule").is_not_null())
            .then(pl.col("doc_rule"))
            .when(too_few)
            .then(pl.lit(f"{C4}:too_few_sentences"))
            .otherwise(pl.lit(None, dtype=pl.Utf8))
        )
        return stats.with_columns(text=shard.docs.get_column("text")).select(
            reason.is_null().alias("passes_c4"),
            reason.alias("c4_reason"),
            pl.when(reason.is_null()).then(pl.col("c4_text")).otherwise(pl.col("text")).alias("c4_text"),
            (pl.col("n_lines") - pl.col("n_kept")).cast(pl.UInt32).alias("c4_lines_removed"),
        )
