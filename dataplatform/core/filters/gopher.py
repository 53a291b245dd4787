"""Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models: Methods, Analysis &
Insights from Training Gopher", https://arxiv.org/abs/2112.11446, section A.1.1 and Table A1).

Both classes mirror datatrove's ``GopherQualityFilter`` / ``GopherRepetitionFilter`` (same thresholds,
same rule order, same arithmetic) but evaluate a whole shard at once. A threshold set to ``None``
disables its rule, as in datatrove.

Drop reasons (``<family>:<rule>``, first failing rule wins):

``gopher_repetition``
    ``empty`` (no text), ``dup_para_frac``, ``dup_para_char_frac``, ``dup_line_frac``,
    ``dup_line_char_frac``, ``top_2_gram``, ``top_3_gram``, ``top_4_gram``, ``dup_5_gram`` ...
    ``dup_10_gram``
``gopher_quality``
    ``short_doc``, ``long_doc`` (non-symbol words outside [min_doc_words, max_doc_words]),
    ``mean_word_len_low``, ``mean_word_len_high``, ``hash_ratio``, ``ellipsis_ratio``,
    ``bullet_lines_ratio``, ``end_ellipsis_lines_ratio``, ``alpha_words_ratio``,
    ``too_few_stop_words``
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from dataplatform.core.ngrams import distinct_word_hashes, extend

from ._text import NON_SYMBOL_RE, TextShard, first_failure, per_doc, ratio

GOPHER_REPETITION = "gopher_repetition"
GOPHER_QUALITY = "gopher_quality"

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")

_POS_BITS = 24


def _sort_runs(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order that sorts ``key`` (ties in index order) and a mask marking the first element of each
    run of equal keys in that order. For up to 2**24 keys it sorts values, not indices: the top 40
    bits of the hash with the index in the low 24 bits (a value sort is ~3x faster than argsort;
    40-bit hashes collide for a handful of the millions of n-grams of a shard)."""
    if len(key) < (1 << _POS_BITS):
        packed = (key & ~np.uint64((1 << _POS_BITS) - 1)) | np.arange(len(key), dtype=np.uint64)
        packed.sort()
        order = (packed & np.uint64((1 << _POS_BITS) - 1)).astype(np.int64)
        skey = packed >> np.uint64(_POS_BITS)
    else:
        order = np.argsort(key, kind="stable")
        skey = key[order]
    run_start = np.ones(len(key), dtype=bool)
    run_start[1:] = skey[1:] != skey[:-1]
    return order, run_start


def duplicate_stats(frame: pl.DataFrame, value: str) -> pl.DataFrame:
    """Per ``_doc``: number of elements equal to an earlier element, and their characters
    (datatrove's ``find_duplicates``)."""
    counted = frame.group_by("_doc", pl.col(value).hash(seed=7).alias("_h")).agg(
        _c=pl.len(), _len=pl.col(value).first().str.len_chars()
    )
    return counted.group_by("_doc").agg(
        _n=pl.col("_c").sum(),
        _dup=(pl.col("_c") - 1).sum(),
        _dup_chars=((pl.col("_c") - 1) * pl.col("_len")).sum(),
    )


@dataclass
class GopherRepetitionFilter:
    """Repetition removal of Gopher (Rae et al. 2021, Table A1), as datatrove's
    ``GopherRepetitionFilter``.

    Paragraphs are separated by two or more newlines, lines by one or more. Word n-grams use the
    shared tokenizer (see :mod:`._text`). ``top_n_grams``: the most frequent n-gram's characters
    (times its count) over the document's characters; ``dup_n_grams``: characters covered by
    n-grams that occurred before.

    ``dup_n_grams`` note: datatrove scans each document left to right and, at a duplicated n-gram,
    counts its n words and jumps n words ahead. We compute the same tiling per maximal run of
    consecutive duplicated n-gram positions (a run of R positions starting at p covers words
    ``p .. p + n*ceil(R/n) - 1``), which is exact except when an n-gram's earlier occurrence was
    itself jumped over.
    """

    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    dup_n_grams: tuple[tuple[int, float], ...] = (
        (5, 0.15),
        (6, 0.14),
        (7, 0.13),
        (8, 0.12),
        (9, 0.11),
        (10, 0.10),
    )

    family = GOPHER_REPETITION

    def rule_names(self) -> list[str]:
        names = ["empty", "dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac"]
        names += [f"top_{n}_gram" for n, _ in self.top_n_grams]
        names += [f"dup_{n}_gram" for n, _ in self.dup_n_grams]
        return [f"{self.family}:{n}" for n in names]

    def evaluate(self, texts: pl.Series | TextShard) -> pl.DataFrame:
        """Per document, in input order: ``passes_gopher_repetition`` and ``gopher_repetition_reason``."""
        shard = TextShard.of(texts)
        stats = self.statistics(shard)
        f = self.family
        n_chars = pl.col("n_chars")
        checks: list[tuple[str, pl.Expr]] = [(f"{f}:empty", n_chars == 0)]
        if self.dup_para_frac:
            checks.append((f"{f}:dup_para_frac", ratio(pl.col("para_dup"), pl.col("para_n")) > self.dup_para_frac))
        if self.dup_para_char_frac:
            checks.append((f"{f}:dup_para_char_frac", ratio(pl.col("para_dup_chars"), n_chars) > self.dup_para_char_frac))
        if self.dup_line_frac:
            checks.append((f"{f}:dup_line_frac", ratio(pl.col("line_dup"), pl.col("line_n")) > self.dup_line_frac))
        if self.dup_line_char_frac:
            checks.append((f"{f}:dup_line_char_frac", ratio(pl.col("line_dup_chars"), n_chars) > self.dup_line_char_frac))
        for n, frac in self.top_n_grams:
            checks.append((f"{f}:top_{n}_gram", ratio(pl.col(f"top_{n}_gram_chars"), n_chars) > frac))
        for n, frac in self.dup_n_grams:
            checks.append((f"{f}:dup_{n}_gram", ratio(pl.col(f"dup_{n}_gram_chars"), n_chars) > frac))
        reason = first_failure(checks)
        return stats.select(
            reason.is_null().alias(f"passes_{f}"),
            reason.alias(f"{f}_reason"),
        )

    def statistics(self, shard: TextShard) -> pl.DataFrame:
        """Per-document counts the rules compare (one row per document, in order)."""
        docs = shard.docs
        # paragraphs: re.split(r"\n{2,}", text.strip())
        paras = docs.select(
            "_doc",
            pl.col("text").str.strip_chars().str.replace_all(r"\n{3,}", "\n\n").str.split("\n\n").alias("p"),
        ).explode("p")
        para = duplicate_stats(paras, "p").rename({"_n": "para_n", "_dup": "para_dup", "_dup_chars": "para_dup_chars"})

        # lines: re.split(r"\n+", text) == the non-empty pieces, plus "" for a leading and for a
        # trailing newline (two "" make one duplicate of 0 chars).
        lines = shard.lines
        nonempty = lines.filter(pl.col("line") != "").select("_doc", "line")
        line = duplicate_stats(nonempty, "line")
        edges = lines.group_by("_doc").agg(
            _lead=((pl.col("_lpos") == 0) & (pl.col("line") == "")).any(),
            _trail=((pl.col("_lpos") == pl.col("_n_pieces") - 1) & (pl.col("_n_pieces") > 1) & (pl.col("line") == "")).any(),
        )
        stats = (
            per_doc(shard, para, {"para_n": 1, "para_dup": 0, "para_dup_chars": 0})
            .join(per_doc(shard, line, {"_n": 0, "_dup": 0, "_dup_chars": 0}), on="_doc", maintain_order="left")
            .join(per_doc(shard, edges), on="_doc", maintain_order="left")
            .select(
                "_doc",
                "para_n",
                "para_dup",
                "para_dup_chars",
                (pl.col("_n") + pl.col("_lead").cast(pl.UInt32) + pl.col("_trail").cast(pl.UInt32)).alias("line_n"),
                (pl.col("_dup") + (pl.col("_lead") & pl.col("_trail")).cast(pl.UInt32)).alias("line_dup"),
                pl.col("_dup_chars").alias("line_dup_chars"),
            )
        )
        stats = stats.with_columns(docs.get_column("n_chars"))
        ngram = self._ngram_stats(shard)
        return pl.concat([stats, ngram], how="horizontal") if ngram.width else stats

    def _ngram_stats(self, shard: TextShard) -> pl.DataFrame:
        """Top and duplicated n-gram characters per document, with numpy over all tokens of the shard.

        n-grams are the raw rolling hashes of :mod:`dataplatform.core.ngrams` (one :func:`extend` per
        word, no finishing mix: only equality matters here), salted with the document. An n-gram can
        only repeat where its (n-1)-gram prefix repeats, so each n only looks at the positions whose
        (n-1)-gram occurs more than once -- a set that shrinks quickly with n.
        """
        toks = shard.tokens
        n_docs = shard.n_docs
        out: dict[str, np.ndarray] = {}
        top = {n for n, _ in self.top_n_grams}
        dup = {n for n, _ in self.dup_n_grams}
        max_n = max(top | dup, default=1)
        doc = toks.get_column("_doc").to_numpy().astype(np.int64)
        n_tok = len(doc)
        h = distinct_word_hashes(toks.get_column("tok"))
        tlen = toks.get_column("tok").str.len_chars().to_numpy().astype(np.int64)
        doc_counts = np.bincount(doc, minlength=n_docs).astype(np.int64)
        doc_start = np.concatenate([[0], np.cumsum(doc_counts)[:-1]]).astype(np.int64)
        remaining = doc_counts[doc] - (np.arange(n_tok, dtype=np.int64) - doc_start[doc])
        clen = np.concatenate([[0], np.cumsum(tlen)])
        cand = np.arange(n_tok, dtype=np.int64)
        prefix = h.copy()  # hash of the (n-1)-gram starting at each candidate
        with np.errstate(over="ignore"):
            salt = (doc.astype(np.uint64) + np.uint64(1)) * np.uint64(0xC2B2AE3D27D4EB4F)
            for n in range(2, max_n + 1):
                fits = remaining[cand] >= n
                cand, prefix = cand[fits], prefix[fits]
                prefix = extend(prefix, h[cand + (n - 1)])
                order, run_start = _sort_runs(prefix ^ salt[cand])
                run_id = np.cumsum(run_start) - 1
                run_count = np.bincount(run_id)
                if n in top:
                    out[f"top_{n}_gram_chars"] = self._top_ngram_chars(
                        n, cand[order[run_start]], run_count, doc, doc_counts, doc_start, clen, n_docs
                    )
                if n in dup:
                    dup_pos = np.sort(cand[order[~run_start]])
                    out[f"dup_{n}_gram_chars"] = self._dup_ngram_chars(dup_pos, n, doc, tlen, n_docs)
                keep = np.sort(order[run_count[run_id] > 1])  # n-grams that occur more than once
                cand, prefix = cand[keep], prefix[keep]
        return pl.DataFrame(out)

    @staticmethod
    def _top_ngram_chars(n, first_pos, count, doc, doc_counts, doc_start, clen, n_docs) -> np.ndarray:
        """datatrove's ``find_top_duplicate``: len(most common n-gram joined by spaces) * its count,
        ties going to the n-gram seen first; 0 when the document has fewer than n words.

        ``first_pos``/``count``: first token index and count of every distinct n-gram among the
        candidates (every n-gram that occurs more than once is among them)."""
        res = np.zeros(n_docs, dtype=np.int64)
        # documents whose n-grams are all distinct: the first n-gram, once
        has = doc_counts >= n
        s = doc_start[has]
        res[has] = clen[s + n] - clen[s] + (n - 1)
        rep = count > 1
        if rep.any():
            fp, c = first_pos[rep], count[rep]
            d = doc[fp]
            order = np.lexsort((fp, -c, d))
            d_sorted = d[order]
            first_of_doc = np.ones(len(order), dtype=bool)
            first_of_doc[1:] = d_sorted[1:] != d_sorted[:-1]
            best = order[first_of_doc]
            res[d[best]] = (clen[fp[best] + n] - clen[fp[best]] + (n - 1)) * c[best]
        return res

    @staticmethod
    def _dup_ngram_chars(dpos, n, doc, tlen, n_docs) -> np.ndarray:
        """Characters (without spaces) of the words that datatrove's ``find_all_duplicate`` counts."""
        if len(dpos) == 0:
            return np.zeros(n_docs, dtype=np.int64)
        # maximal runs of consecutive duplicated positions (never crossing documents: the last
        # n-1 tokens of a document start no n-gram)
        new_run = np.ones(len(dpos), dtype=bool)
        new_run[1:] = np.diff(dpos) != 1
        starts = dpos[new_run]
        run_len = np.diff(np.append(np.flatnonzero(new_run), len(dpos)))
        cover = n * ((run_len - 1) // n + 1)
        size = len(tlen) + 1
        delta = np.bincount(starts, minlength=size) - np.bincount(starts + cover, minlength=size)
        covered = np.cumsum(delta[:-1]) > 0
        return np.bincount(doc[covered], weights=tlen[covered], minlength=n_docs).astype(np.int64)


@dataclass
class GopherQualityFilter:
    """Quality filters of Gopher (Rae et al. 2021, section A.1.1), as datatrove's
    ``GopherQualityFilter``: 50..100,000 words, mean word length 3..10 characters, symbol-to-word
    ratio <= 0.1 for ``#`` and for ellipses, <= 90% of lines starting with a bullet, <= 30% of lines
    ending with an ellipsis, >= 80% of words containing an alphabetic character, and >= 2 of the
    stop words *the, be, to, of, and, that, have, with*.

    Word counts and mean length are over "non-symbol" words (a word with a character outside
    datatrove's punctuation set); symbol, bullet, ellipsis and alpha ratios divide by all words.
    """

    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    stop_words: tuple[str, ...] = field(default=STOP_WORDS)

    family = GOPHER_QUALITY

    def rule_names(self) -> list[str]:
        names = [
            "short_doc",
            "long_doc",
            "mean_word_len_low",
            "mean_word_len_high",
            "hash_ratio",
            "ellipsis_ratio",
            "bullet_lines_ratio",
            "end_ellipsis_lines_ratio",
            "alpha_words_ratio",
            "too_few_stop_words",
        ]
        return [f"{self.family}:{n}" for n in names]

    def statistics(self, shard: TextShard) -> pl.DataFrame:
        tok = pl.col("tok")
        nonsym = tok.str.contains(NON_SYMBOL_RE)
        words = shard.tokens.group_by("_doc").agg(
            n_words=pl.len(),
            n_nonsym=nonsym.sum(),
            nonsym_chars=tok.str.len_chars().filter(nonsym).sum(),
            n_alpha=tok.str.contains(r"\p{L}").sum(),
            n_stop=tok.filter(tok.is_in(list(self.stop_words))).n_unique(),
        )
        lines = (
            shard.lines.filter(pl.col("_splitline"))
            .group_by("_doc")
            .agg(
                n_lines=pl.len(),
                n_bullet=pl.col("line").str.contains(r"^\s*[•\-]").sum(),
                n_end_ellipsis=pl.col("line").str.contains(r"(?:\.\.\.|…)\s*$").sum(),
            )
        )
        text = shard.docs.get_column("text")
        return (
            per_doc(shard, words, {"n_words": 0, "n_nonsym": 0, "nonsym_chars": 0, "n_alpha": 0, "n_stop": 0})
            .join(per_doc(shard, lines, {"n_lines": 0, "n_bullet": 0, "n_end_ellipsis": 0}), on="_doc", maintain_order="left")
            .with_columns(
                n_hash=text.str.count_matches("#", literal=True),
                n_ellipsis=text.str.count_matches("...", literal=True) + text.str.count_matches("…", literal=True),
            )
        )

    def evaluate(self, texts: pl.Series | TextShard) -> pl.DataFrame:
        """Per document, in input order: ``passes_gopher_quality`` and ``gopher_quality_reason``."""
        shard = TextShard.of(texts)
        f = self.family
        n_words = pl.col("n_words")
        n_ns = pl.col("n_nonsym")
        mean_len = ratio(pl.col("nonsym_chars"), n_ns)
        checks: list[tuple[str, pl.Expr]] = []
        if self.min_doc_words:
            checks.append((f"{f}:short_doc", n_ns < self.min_doc_words))
        if self.max_doc_words:
            checks.append((f"{f}:long_doc", n_ns > self.max_doc_words))
        if self.min_avg_word_length:
            checks.append((f"{f}:mean_word_len_low", mean_len < self.min_avg_word_length))
        if self.max_avg_word_length:
            checks.append((f"{f}:mean_word_len_high", mean_len > self.max_avg_word_length))
        if self.max_symbol_word_ratio:
            checks.append((f"{f}:hash_ratio", ratio(pl.col("n_hash"), n_words) > self.max_symbol_word_ratio))
            checks.append((f"{f}:ellipsis_ratio", ratio(pl.col("n_ellipsis"), n_words) > self.max_symbol_word_ratio))
        if self.max_bullet_lines_ratio:
            checks.append((f"{f}:bullet_lines_ratio", ratio(pl.col("n_bullet"), pl.col("n_lines")) > self.max_bullet_lines_ratio))
        if self.max_ellipsis_lines_ratio:
            checks.append(
                (
                    f"{f}:end_ellipsis_lines_ratio",
                    ratio(pl.col("n_end_ellipsis"), pl.col("n_lines")) > self.max_ellipsis_lines_ratio,
                )
            )
        if self.min_alpha_words_ratio:
            checks.append((f"{f}:alpha_words_ratio", ratio(pl.col("n_alpha"), n_words) < self.min_alpha_words_ratio))
        if self.min_stop_words:
            checks.append((f"{f}:too_few_stop_words", pl.col("n_stop") < self.min_stop_words))
        reason = first_failure(checks)
        return self.statistics(shard).select(
            reason.is_null().alias(f"passes_{f}"),
            reason.alias(f"{f}_reason"),
        )
