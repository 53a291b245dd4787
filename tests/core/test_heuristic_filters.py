"""Heuristic filter suite: every rule pinned at both sides of its threshold on hand-made documents."""

from __future__ import annotations

import itertools

import polars as pl
import pytest

from dataplatform.core.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    HeuristicFilterSuite,
    apply_heuristic_filters,
    drop_counts,
)

_SYL = ["ka", "lo", "mi", "ne", "su", "ta", "ro", "vi", "pe", "du"]
# 1000 distinct six-letter words
WORDS = ["".join(p) for p in itertools.product(_SYL, repeat=3)]


def words(n: int, start: int = 0) -> list[str]:
    return WORDS[start : start + n]


def only(**family) -> HeuristicFilterSuite:
    """A suite running just one family."""
    base = dict(gopher_repetition=None, gopher_quality=None, c4=None, fineweb=None)
    base.update(family)
    return HeuristicFilterSuite(**base)


def reasons(texts: list[str], suite: HeuristicFilterSuite) -> list[str | None]:
    return suite.apply(pl.DataFrame({"text": texts})).get_column("drop_reason").to_list()


def one(text: str, suite: HeuristicFilterSuite) -> str | None:
    return reasons([text], suite)[0]


GOOD = "\n".join(
    [
        "The committee met on Tuesday to review the annual budget and the plans for the new library.",
        "Several members argued that the reading rooms should stay open later in the evening.",
        "Others worried about the cost of heating such a large building through the winter months.",
        "After a long discussion, they agreed to ask the city for a modest increase in funding.",
        "A final decision will be made at the next meeting, which is planned for early March.",
        "Residents who wish to comment can write to the council or attend the public session.",
    ]
)


def test_good_document_passes_every_family():
    out = apply_heuristic_filters(pl.DataFrame({"text": [GOOD]}))
    row = out.row(0, named=True)
    assert row["drop_reason"] is None
    assert all(row[f"passes_{f}"] for f in ("gopher_repetition", "gopher_quality", "c4", "fineweb"))
    assert row["c4_lines_removed"] == 0
    assert row["text"] == GOOD


# ---------------------------------------------------------------- gopher quality

GQ = only(gopher_quality=GopherQualityFilter())


def test_gopher_short_doc_at_50_words():
    assert one(" ".join(["the", "and"] + words(48)) + ".", GQ) is None
    assert one(" ".join(["the", "and"] + words(47)) + ".", GQ) == "gopher_quality:short_doc"


def test_gopher_long_doc_at_100000_words():
    base = ["the", "and"] + [WORDS[i % 1000] for i in range(99_998)]
    assert one(" ".join(base), GQ) is None
    assert one(" ".join(base + ["kalomi"]), GQ) == "gopher_quality:long_doc"


def test_gopher_mean_word_length_bounds():
    # 50 words: the, and, 48 x three letters -> mean exactly 3.0 passes; one two-letter word fails
    assert one(" ".join(["the", "and"] + ["cat"] * 48), GQ) is None
    assert one(" ".join(["the", "and"] + ["cat"] * 47 + ["ox"]), GQ) == "gopher_quality:mean_word_len_low"
    # mean exactly 10.0 passes (3+3+46*10+2*17 = 500), one more character fails
    long_words = ["the", "and"] + ["abcdefghij"] * 46 + ["abcdefghijklmnopq"] * 2
    assert one(" ".join(long_words), GQ) is None
    assert one(" ".join(long_words[:-1] + ["abcdefghijklmnopqr"]), GQ) == "gopher_quality:mean_word_len_high"


def test_gopher_hash_and_ellipsis_ratio():
    body = ["the", "and"] + words(88)  # 90 words
    assert one(" ".join(body + ["#"] * 10), GQ) is None  # 10 / 100 = 0.1
    assert one(" ".join(body + ["#"] * 11), GQ) == "gopher_quality:hash_ratio"  # 11 / 101
    assert one(" ".join(body + ["..."] * 10) + " end.", GQ) is None  # 10 / 101
    assert one(" ".join(body + ["..."] * 11) + " end.", GQ) == "gopher_quality:ellipsis_ratio"


def test_gopher_bullet_and_end_ellipsis_lines():
    lines = [" ".join(["the", "and"] + words(6, 6 * i)) for i in range(10)]
    assert one("\n".join(["- " + line for line in lines[:9]] + lines[9:]), GQ) is None  # 0.9
    assert one("\n".join("• " + line for line in lines), GQ) == "gopher_quality:bullet_lines_ratio"
    assert one("\n".join([line + "..." for line in lines[:3]] + lines[3:]), GQ) is None  # 0.3
    assert one("\n".join([line + "…" for line in lines[:4]] + lines[4:]), GQ) == "gopher_quality:end_ellipsis_lines_ratio"


def test_gopher_alpha_words_ratio():
    alpha = ["the", "and"] + words(78)  # 80 words with a letter
    assert one(" ".join(alpha + ["123"] * 20), GQ) is None  # 80 / 100
    assert one(" ".join(alpha + ["123"] * 21), GQ) == "gopher_quality:alpha_words_ratio"


def test_gopher_stop_words_are_case_sensitive():
    assert one(" ".join(["the", "with"] + words(60)), GQ) is None
    assert one(" ".join(["the", "The"] + words(60)), GQ) == "gopher_quality:too_few_stop_words"


# ---------------------------------------------------------------- gopher repetition

GR = only(gopher_repetition=GopherRepetitionFilter())


def long_line(i: int) -> str:
    return " ".join(words(20, 20 * i)) + "."


def test_gopher_repetition_empty():
    assert one("", GR) == "gopher_repetition:empty"


def test_dup_paragraph_fraction():
    uniq = [long_line(i) for i in range(6)]
    assert one("\n\n".join(uniq + ["Short."] * 4), GR) is None  # 3 dups / 10
    assert one("\n\n".join(uniq + ["Short."] * 5), GR) == "gopher_repetition:dup_para_frac"  # 4 / 11


def test_dup_line_fraction():
    uniq = [long_line(i) for i in range(6)]
    assert one("\n".join(uniq + ["Short."] * 4), GR) is None
    assert one("\n".join(uniq + ["Short."] * 5), GR) == "gopher_repetition:dup_line_frac"


def _straddle(make, ratio, thr):
    """The first two consecutive sizes k where ratio(make(k)) goes from <= thr to > thr."""
    for k in range(1, 400):
        if ratio(make(k)) <= thr < ratio(make(k + 1)):
            return make(k), make(k + 1)
    raise AssertionError("no straddle")


@pytest.mark.parametrize("sep,rule", [("\n\n", "dup_para_char_frac"), ("\n", "dup_line_char_frac")])
def test_dup_char_fraction(sep, rule):
    uniq = [long_line(i) for i in range(12)]

    def make(k):
        dup = " ".join(words(k, 600)) + "."
        return sep.join(uniq[:6] + [dup] + uniq[6:] + [dup])

    def ratio(text):
        return (len(text.split(sep)[-1])) / len(text)

    ok, bad = _straddle(make, ratio, 0.2)
    # the repeated block is also a run of duplicated n-grams; look at the line/paragraph rules only
    lines_only = only(gopher_repetition=GopherRepetitionFilter(top_n_grams=(), dup_n_grams=()))
    assert one(ok, lines_only) is None
    assert one(bad, lines_only) == f"gopher_repetition:{rule}"


def test_top_2_gram():
    def make(k):  # "kakaka kakalo" k times, separated by three fresh words
        parts = []
        for i in range(k):
            parts += ["kakaka", "kakalo"] + words(3, 100 + 3 * i)
        return " ".join(parts + words(40, 600))

    ok, bad = _straddle(make, lambda t: len("kakaka kakalo") * t.count("kakaka kakalo") / len(t), 0.2)
    assert one(ok, GR) is None
    assert one(bad, GR) == "gopher_repetition:top_2_gram"


def test_top_3_gram():
    def make(k):
        parts = []
        for i in range(k):
            parts += ["kakaka", "kakalo", "kakami"] + words(2, 100 + 2 * i)
        return " ".join(parts + words(60, 600))

    def ratio(t):
        return len("kakaka kakalo kakami") * t.count("kakaka kakalo kakami") / len(t)

    def two(t):
        return len("kakaka kakalo") * t.count("kakaka kakalo") / len(t)

    ok, bad = _straddle(make, ratio, 0.18)
    assert two(bad) <= 0.2
    assert one(ok, GR) is None
    assert one(bad, GR) == "gopher_repetition:top_3_gram"


def test_dup_5_gram_counts_the_repeated_span():
    span = words(10, 900)  # repeated 10-word span: 10 * 6 = 60 duplicated characters

    def make(k):
        return " ".join(span + words(k, 100) + span)

    # duplicated 5-gram chars = the second copy (datatrove jumps 5 words per duplicate)
    ok, bad = _straddle(lambda k: make(60 - k), lambda t: 60 / len(t), 0.15)
    assert 54 / len(bad) <= 0.16  # top 4-gram (2 x "w w w w") stays below its own threshold
    # (the longer n-grams of the span would trip their own, lower thresholds: test n=5 alone)
    five = only(gopher_repetition=GopherRepetitionFilter(dup_n_grams=((5, 0.15),)))
    assert one(ok, five) is None
    assert one(bad, five) == "gopher_repetition:dup_5_gram"


# ---------------------------------------------------------------- C4

C4S = only(c4=C4QualityFilter())


def sentences(n: int, start: int = 0) -> list[str]:
    return [" ".join(words(4, 4 * (start + i))).capitalize() + "." for i in range(n)]


def test_c4_min_sentences_counts_sentences_not_lines():
    s = sentences(5)
    assert one("\n".join([" ".join(s[:3]), " ".join(s[3:])]), C4S) is None
    assert one("\n".join([" ".join(s[:3]), s[3]]), C4S) == "c4:too_few_sentences"


def test_c4_line_rules_edit_the_text():
    s = sentences(6)
    text = "\n".join(
        [
            s[0] + " [1]",  # citation cut, then ends in a space: removed
            s[1] + "[2]",  # citation cut: kept as s[1]
            "Menu Home About",  # no terminal punctuation
            "Hi there.",  # two words
            "Please enable JavaScript in your browser.",
            "Read our privacy policy before you go.",
            "This line trails off...",
            "  " + s[2] + "  ",
            s[3],
            s[4],
            s[5],
        ]
    )
    out = C4S.apply(pl.DataFrame({"text": [text]})).row(0, named=True)
    assert out["drop_reason"] is None
    assert out["text"] == "\n".join([s[1], s[2], s[3], s[4], s[5]])
    assert out["c4_lines_removed"] == 6


def test_c4_document_rules_and_their_order():
    s = sentences(6)
    assert one("\n".join(s + ["Lorem ipsum dolor sit amet."]), C4S) == "c4:lorem_ipsum"
    assert one("\n".join(s + ["Call f(x) { return x } now."]), C4S) == "c4:curly_bracket"
    # a doc rule on an earlier line wins
    assert one("\n".join(["We use {braces} here."] + s + ["Lorem ipsum dolor sit."]), C4S) == "c4:curly_bracket"
    # lines already removed (no punctuation) never trigger document rules
    assert one("\n".join(s + ["lorem ipsum { dolor"]), C4S) is None


def test_c4_word_longer_than_1000_chars_removes_the_line():
    s = sentences(5)
    out = C4S.apply(pl.DataFrame({"text": ["\n".join(s + ["a b " + "x" * 1000 + "."])]})).row(0, named=True)
    assert out["c4_lines_removed"] == 1 and out["drop_reason"] is None
    out = C4S.apply(pl.DataFrame({"text": ["\n".join(s + ["a b " + "x" * 999 + "."])]})).row(0, named=True)
    assert out["c4_lines_removed"] == 0


# ---------------------------------------------------------------- FineWeb

FW = only(fineweb=FineWebQualityFilter())


def fw_lines(n: int, punct: int, start: int = 0) -> list[str]:
    """n distinct lines of 6 words (> 30 chars); the first ``punct`` end with a period."""
    return [" ".join(words(6, 6 * (start + i))) + ("." if i < punct else "") for i in range(n)]


def test_fineweb_line_punct_ratio():
    assert one("\n".join(fw_lines(25, 3)), FW) is None  # 3 / 25 = 0.12
    assert one("\n".join(fw_lines(25, 2)), FW) == "fineweb:line_punct_ratio"


def test_fineweb_short_line_ratio():
    short = [f"Item {WORDS[i]} ok now." for i in range(67)]  # 4 words, <= 30 chars
    assert one("\n".join(short + fw_lines(33, 33)), FW) is None  # 67 / 100
    assert one("\n".join(short + [f"Item {WORDS[500]} ok now."] + fw_lines(32, 32)), FW) == "fineweb:short_line_ratio"


def test_fineweb_dup_line_char_ratio():
    lines = fw_lines(20, 20)
    # duplicated line chars / non-newline chars: 1 copy of a 41-char line in ~861 chars
    text_ok = "\n".join(lines + [lines[0]])
    assert len(lines[0]) / len(text_ok.replace("\n", "")) <= 0.1
    assert one(text_ok, FW) is None
    text_bad = "\n".join(lines[:8] + lines[:2])
    assert 2 * len(lines[0]) / len(text_bad.replace("\n", "")) > 0.1
    assert one(text_bad, FW) == "fineweb:dup_line_char_ratio"


def test_fineweb_newline_word_ratio():
    # 10 lines of 3 words + "." : 9 newlines / 40 tokens passes; blank lines push it over
    lines = [" ".join(words(3, 3 * i)) + "." for i in range(10)]
    assert one("\n".join(lines), only(fineweb=FineWebQualityFilter(short_line_thr=1.0))) is None
    assert (
        one("\n\n\n".join(lines), only(fineweb=FineWebQualityFilter(short_line_thr=1.0))) == "fineweb:newline_word_ratio"
    )  # 27 / 40


def test_fineweb_empty():
    assert one(" \n\t\n", FW) == "fineweb:empty"


# ---------------------------------------------------------------- the suite


def test_first_failure_wins_and_flags_keep_the_rest():
    bad = "Short page.\nShort page.\nShort page."
    out = apply_heuristic_filters(pl.DataFrame({"text": [bad]})).row(0, named=True)
    assert out["drop_reason"] == "gopher_repetition:dup_line_frac"
    assert out["passes_gopher_repetition"] is False
    assert out["passes_gopher_quality"] is False  # 6 words
    assert out["passes_c4"] is False
    assert out["text"] == bad  # dropped rows keep their original text


def test_incoming_drop_reason_is_never_overwritten():
    df = pl.DataFrame({"text": [GOOD, "", GOOD], "drop_reason": ["language:de", "quarantine:empty_text", None]})
    out = apply_heuristic_filters(df)
    assert out.get_column("drop_reason").to_list() == ["language:de", "quarantine:empty_text", None]
    assert out.get_column("passes_gopher_repetition").to_list() == [True, False, True]


def test_empty_frame():
    out = apply_heuristic_filters(pl.DataFrame({"text": []}, schema={"text": pl.Utf8}))
    assert out.height == 0
    assert {"passes_gopher_repetition", "passes_c4", "passes_fineweb", "drop_reason"} <= set(out.columns)
    assert drop_counts(out)["kept"] == 0


def test_null_and_empty_texts():
    out = apply_heuristic_filters(pl.DataFrame({"text": [None, ""]}, schema={"text": pl.Utf8}))
    assert out.get_column("drop_reason").to_list() == ["gopher_repetition:empty"] * 2


def test_non_ascii_text():
    de = "\n".join(
        [
            "Die Straße führt über die Brücke zum Bahnhof, wo täglich viele Züge halten.",
            "Im Frühling blühen die Bäume, und die Vögel singen schon früh am Morgen.",
            "Wir haben das Museum besucht und die Ausstellung über Künstler gesehen.",
            "Danach aßen wir Käse und Brötchen in einem kleinen Café am Marktplatz.",
            "Am Abend fuhren wir müde, aber glücklich mit dem Zug nach Hause zurück.",
            "The café served crème brûlée to the visitors — it was a très bon day, naïvely said.",
        ]
    )
    cjk = "日本語のテキストです。これは文です。ここに句読点があります。" * 3
    out = apply_heuristic_filters(pl.DataFrame({"text": [de, cjk, "😀 emoji only 🎉"]}))
    assert out.get_column("passes_gopher_repetition").to_list()[0] is True
    assert out.get_column("passes_c4").to_list()[0] is True
    assert out.get_column("drop_reason").to_list()[1].startswith("gopher_")
    assert out.height == 3


def test_drop_counts_uses_reason_strings():
    df = pl.DataFrame({"text": [GOOD, "", "Short page.\nShort page.\nShort page."], "drop_reason": [None, None, None]})
    counts = drop_counts(apply_heuristic_filters(df))
    assert counts["kept"] == 1
    assert counts["gopher_repetition:empty"] == 1
    assert counts["gopher_repetition:dup_line_frac"] == 1
    assert counts["c4:too_few_sentences"] == 0
    assert all(":" in k for k in counts if k != "kept")


def test_other_columns_and_order_are_kept():
    df = pl.DataFrame({"id": ["a", "b"], "text": ["", GOOD]})
    out = apply_heuristic_filters(df)
    assert out.get_column("id").to_list() == ["a", "b"]
    assert out.columns[:2] == ["id", "text"]
