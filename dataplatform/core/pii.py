"""Replace personal identifiers (e-mail, IPv4/IPv6 addresses, phone numbers) with placeholders.

The shape follows datatrove's ``PIIFormatter`` (e-mail + public IPv4) and Dolma's PII tagger
(e-mail, phone, IP), but the whole shard is processed with Polars regex expressions
(``str.replace_all`` / ``str.count_matches``): no per-row Python loop.

Polars uses the Rust ``regex`` crate, which has no look-around. Boundaries are therefore handled
in two ways:

* patterns that may follow/precede a dot (IPv4, IPv6) consume one boundary character on each side
  and put it back with ``${pre}`` / ``${post}``. Because a consumed separator cannot start the next
  match, those patterns run twice (two IPs separated by a single space are both replaced);
* addresses that must *not* be replaced (non-public IPv4, IPv4-looking version numbers) are first
  wrapped in a NUL sentinel, which the replacing pattern refuses as a neighbour, and unwrapped at
  the end.

Choices (and why):

* **IPv4**: octets must be 0-255 without leading zeros (``999.1.1.1`` and ``01.02.03.04`` are left
  alone) and the address must not be part of a longer dotted run (``1.2.3.4.5``) or glued to a
  word (``v1.2.3.4``). Like datatrove's default ``only_remove_public_ips=True`` we only replace
  *public* addresses: loopback, RFC 1918, link-local, CGNAT, documentation, benchmarking,
  multicast and reserved ranges identify nobody and are everywhere in tutorials
  (``127.0.0.1``, ``192.168.1.1``). Set ``ipv4_public_only=False`` to replace them too.
  A dotted quad right after a version keyword (``version 4.2.1.0``, ``release``, ``build``,
  ``firmware`` ...) is treated as a version number, not an address.
* **IPv6**: full form, ``::``-compressed forms with at least one group on each side of ``::`` (or
  two or more groups before a trailing ``::``), and IPv4-embedded forms. ``::1``/``::`` alone are
  not matched, nor are C++ scopes (``std::vector``) or clock times (``12:30:45``). All matched
  IPv6 addresses are replaced (no public-only filter: IPv6 rarely appears in prose by accident).
* **Phone numbers** need structure: a ``+`` country code, a parenthesised area code, dash/dot
  separated North-American 3-3-4 groups, or a trunk ``0`` prefix with separators
  (``020 7946 0958``). Space-only 3-3-4 digit runs are *not* matched (tables of numbers), nor
  are bare digit runs (ISBN-13, ids), years, prices, dates (``2024-01-05``, ``05.01.2024``) or
  ISBN-10 hyphenations.
* **E-mail**: datatrove's RFC-5322-ish local part (plus-addressing allowed) and a dotted domain
  whose last label is alphabetic (``user@host`` without a dot is not matched).

Placeholders must not themselves look like PII (``22.214.171.124`` would be matched again by the
second pass); that is checked and reported as a configuration error naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import polars as pl

__all__ = [
    "EMAIL_PATTERN",
    "IPV4_PATTERN",
    "IPV6_PATTERN",
    "PHONE_PATTERN",
    "PIIConfig",
    "redact_pii",
]

# --------------------------------------------------------------------------------------------
# Patterns (Rust ``regex`` syntax; ASCII classes on purpose: ``\d`` would be Unicode-aware)
# --------------------------------------------------------------------------------------------

_OCT = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_PATTERN = rf"{_OCT}\.{_OCT}\.{_OCT}\.{_OCT}"

# Non-public IPv4 ranges (not replaced when ``ipv4_public_only``): 0/8, 10/8, 100.64/10, 127/8,
# 169.254/16, 172.16/12, 192.0.0/24, 192.0.2/24, 192.168/16, 198.18/15, 198.51.100/24,
# 203.0.113/24, 224/4 (multicast), 240/4 (reserved, incl. 255.255.255.255).
NON_PUBLIC_IPV4_NETWORKS = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
_NON_PUBLIC_IPV4 = (
    r"(?:"
    rf"(?:0|10|127)\.{_OCT}\.{_OCT}\.{_OCT}"
    rf"|100\.(?:6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.{_OCT}\.{_OCT}"
    rf"|169\.254\.{_OCT}\.{_OCT}"
    rf"|172\.(?:1[6-9]|2[0-9]|3[01])\.{_OCT}\.{_OCT}"
    rf"|192\.0\.[02]\.{_OCT}"
    rf"|192\.168\.{_OCT}\.{_OCT}"
    rf"|198\.1[89]\.{_OCT}\.{_OCT}"
    rf"|198\.51\.100\.{_OCT}"
    rf"|203\.0\.113\.{_OCT}"
    rf"|(?:22[4-9]|2[34][0-9]|25[0-5])\.{_OCT}\.{_OCT}\.{_OCT}"
    r")"
)
_VERSION_KEYWORDS = (
    r"(?i:version|versions|ver\.?|v\.|release|releases|build|firmware|update|upgrade|patch"
    r"|revision|rev\.?)"
)

_H = r"[0-9A-Fa-f]{1,4}"
_IPV6_ALTERNATIVES = [
    # IPv4-embedded / mapped forms first (leftmost-first alternation prefers earlier branches).
    rf"::(?:[Ff]{{4}}(?::0{{1,4}})?:){IPV4_PATTERN}",
    rf"(?:{_H}:){{1,4}}:{IPV4_PATTERN}",
    rf"(?:{_H}:){{6}}{IPV4_PATTERN}",
    # full form
    rf"(?:{_H}:){{7}}{_H}",
    # compressed, groups on both sides of '::' (at most 7 groups in all)
    *[rf"(?:{_H}:){{1,{k}}}(?::{_H}){{1,{7 - k}}}" for k in range(6, 0, -1)],
    # trailing '::' with at least two groups before it (2001:db8::)
    rf"(?:{_H}:){{2,7}}:",
]
IPV6_PATTERN = "(?:" + "|".join(_IPV6_ALTERNATIVES) + ")"

EMAIL_PATTERN = (
    r"\b[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\b"
)

_SEP = r"[ .-]"
PHONE_PATTERN = (
    r"(?:"
    # international: +CC [(]area[)] groups, e.g. +1 415-555-0132, +44 20 7946 0958, +33 1 23 45 67 89
    rf"\+[0-9]{{1,3}}{_SEP}?(?:\([0-9]{{1,4}}\)|[0-9]{{1,4}})(?:{_SEP}?[0-9]{{2,4}}){{2,4}}\b"
    # (415) 555-0132, (415)555.0132, (020) 7946 0958
    rf"|\([0-9]{{2,5}}\)[ ]?[0-9]{{3,4}}{_SEP}[0-9]{{4}}\b"
    # North American with dash or dot separators, optional leading 1: 415-555-0132, 1-800-555-0199
    r"|\b(?:1[.-])?[0-9]{3}-[0-9]{3}-[0-9]{4}\b"
    r"|\b(?:1\.)?[0-9]{3}\.[0-9]{3}\.[0-9]{4}\b"
    # national numbers with a trunk 0 and separators: 020 7946 0958, 030-1234-5678
    rf"|\b0[0-9]{{1,4}}{_SEP}[0-9]{{3,4}}{_SEP}[0-9]{{3,4}}\b"
    r")"
)

_SENTINEL = "\x00"
# A dotted quad that must survive (non-public or a version number) is wrapped in the sentinel;
# the replacing pattern does not accept the sentinel as a neighbour.
_IPV4_PRE = r"(?P<pre>^|[^\w.\x00])"
_IPV6_PRE = r"(?P<pre>^|[^\w.:\x00])"
# Trailing dots (end of sentence) are fine; '.5' (longer dotted run) or a word character is not.
_IPV4_POST = r"(?P<post>\.*(?:[^\w.\x00]|$))"
_IPV6_POST = r"(?P<post>\.*(?:[^\w.:\x00]|$))"


@dataclass(frozen=True)
class PIIConfig:
    """What to replace and with what.

    ``per_kind_counts`` adds ``pii_email_count``, ``pii_ip_count`` (IPv4 + IPv6) and
    ``pii_phone_count`` (Int32) next to the always-present ``pii_count``.
    """

    emails: bool = True
    ipv4: bool = True
    ipv6: bool = True
    phone_numbers: bool = True
    ipv4_public_only: bool = True
    keep_version_numbers: bool = True
    email_placeholder: str = "<EMAIL>"
    ip_placeholder: str = "<IP_ADDRESS>"
    phone_placeholder: str = "<PHONE_NUMBER>"
    per_kind_counts: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = str if f.name.endswith("_placeholder") else bool
            if not isinstance(value, expected):
                raise TypeError(f"PIIConfig.{f.name} must be {expected.__name__}, got {type(value).__name__}")
        placeholders = pl.Series([self.email_placeholder, self.ip_placeholder, self.phone_placeholder])
        for pattern in (EMAIL_PATTERN, IPV4_PATTERN, IPV6_PATTERN, PHONE_PATTERN):
            hits = placeholders.str.count_matches(pattern).to_list()
            for name, hit in zip(("email", "ip", "phone"), hits):
                if hit:
                    raise ValueError(
                        f"PIIConfig.{name}_placeholder={getattr(self, name + '_placeholder')!r} "
                        "looks like PII itself and would be matched again; choose a placeholder "
                        "without e-mail/IP/phone shapes"
                    )
        if _SENTINEL in (self.email_placeholder + self.ip_placeholder + self.phone_placeholder):
            raise ValueError("PIIConfig placeholders must not contain NUL characters")


def _escape_replacement(text: str) -> str:
    # '$' introduces a group reference in the Rust regex replacement syntax.
    return text.replace("$", "$$")


def _bounded_replace(text: pl.Expr, core: str, pre: str, post: str, placeholder: str) -> tuple[pl.Expr, pl.Expr]:
    """Replace ``pre core post`` keeping the boundary characters; two passes (see module doc)."""
    pattern = f"{pre}{core}{post}"
    replacement = "${pre}" + _escape_replacement(placeholder) + "${post}"
    count = text.str.count_matches(pattern)
    once = text.str.replace_all(pattern, replacement)
    count = count + once.str.count_matches(pattern)
    twice = once.str.replace_all(pattern, replacement)
    return twice, count


_TMP_TEXT = "__pii_text__"


@dataclass(frozen=True)
class _RedactionPass:
    """One kind of identifier: optional protecting rewrites of the text, then replace + count."""

    kind: str
    text: pl.Expr
    count: pl.Expr
    protect: tuple[pl.Expr, ...] = ()


def _email_pass(text: pl.Expr, config: PIIConfig) -> _RedactionPass:
    replaced = text.str.replace_all(EMAIL_PATTERN, _escape_replacement(config.email_placeholder))
    return _RedactionPass("email", replaced, text.str.count_matches(EMAIL_PATTERN))


def _ipv6_pass(text: pl.Expr, config: PIIConfig) -> _RedactionPass:
    replaced, count = _bounded_replace(text, IPV6_PATTERN, _IPV6_PRE, _IPV6_POST, config.ip_placeholder)
    return _RedactionPass("ipv6", replaced, count)


def _ipv4_pass(text: pl.Expr, config: PIIConfig) -> _RedactionPass:
    """Protect version numbers and non-public addresses with the sentinel, replace, unprotect."""
    protect = []
    if config.keep_version_numbers:
        protect.append(
            text.str.replace_all(
                rf"(?P<kw>\b{_VERSION_KEYWORDS}[ \t]*)(?P<ip>{IPV4_PATTERN})\b",
                "${kw}" + _SENTINEL + "${ip}" + _SENTINEL,
            )
        )
    if config.ipv4_public_only:
        protect.append(
            text.str.replace_all(
                rf"(?P<pre>^|[^\w.\x00])(?P<ip>{_NON_PUBLIC_IPV4})\b",
                "${pre}" + _SENTINEL + "${ip}" + _SENTINEL,
            )
        )
    replaced, count = _bounded_replace(text, IPV4_PATTERN, _IPV4_PRE, _IPV4_POST, config.ip_placeholder)
    if protect:
        replaced = replaced.str.replace_all(r"\x00(?P<ip>[0-9.]+)\x00", "${ip}")
    return _RedactionPass("ipv4", replaced, count, tuple(protect))


def _phone_pass(text: pl.Expr, config: PIIConfig) -> _RedactionPass:
    replaced = text.str.replace_all(PHONE_PATTERN, _escape_replacement(config.phone_placeholder))
    return _RedactionPass("phone", replaced, text.str.count_matches(PHONE_PATTERN))


def _redaction_passes(config: PIIConfig) -> list[_RedactionPass]:
    """The enabled passes, in order: e-mail first (an address may contain IP- or phone-like parts,
    user@[1.2.3.4]), IPv6 before IPv4 (embedded IPv4 forms), phone numbers last."""
    text = pl.col(_TMP_TEXT)
    builders = (
        (config.emails, _email_pass),
        (config.ipv6, _ipv6_pass),
        (config.ipv4, _ipv4_pass),
        (config.phone_numbers, _phone_pass),
    )
    return [build(text, config) for enabled, build in builders if enabled]


def _count_columns(config: PIIConfig, done: set[str]) -> list[pl.Expr]:
    """``pii_count`` and, with ``per_kind_counts``, the per-kind counts (Int32, 0 for null text)."""

    def total(kind: str) -> pl.Expr:
        if kind not in done:
            return pl.lit(0, dtype=pl.Int32)
        return pl.col(f"__pii_{kind}__").fill_null(0).cast(pl.Int32)

    email_n = total("email")
    ip_n = total("ipv4") + total("ipv6")
    phone_n = total("phone")
    out_cols = [(email_n + ip_n + phone_n).cast(pl.Int32).alias("pii_count")]
    if config.per_kind_counts:
        out_cols += [
            email_n.alias("pii_email_count"),
            ip_n.cast(pl.Int32).alias("pii_ip_count"),
            phone_n.alias("pii_phone_count"),
        ]
    return out_cols


def _check_text_column(df: pl.DataFrame, text_column: str) -> None:
    if text_column not in df.columns:
        raise ValueError(f"redact_pii: text_column {text_column!r} not in columns {df.columns}")
    dtype = df.schema[text_column]
    if dtype not in (pl.String, pl.Null):
        raise ValueError(f"redact_pii: text_column {text_column!r} must be String, got {dtype}")


def redact_pii(df: pl.DataFrame, text_column: str = "text", config: PIIConfig | None = None) -> pl.DataFrame:
    """Return ``df`` with PII in ``text_column`` replaced and a ``pii_count`` (Int32) column.

    ``pii_count`` is the total number of replacements per document (0 for null text, which stays
    null). With ``config.per_kind_counts`` the per-kind counts are added too. All other columns
    are passed through unchanged, in order.
    """
    config = config or PIIConfig()
    _check_text_column(df, text_column)
    lf = df.lazy().with_columns(pl.col(text_column).cast(pl.String).alias(_TMP_TEXT))
    done: set[str] = set()
    for step in _redaction_passes(config):
        for protected in step.protect:
            lf = lf.with_columns(protected.alias(_TMP_TEXT))
        lf = lf.with_columns(step.text.alias(_TMP_TEXT), step.count.alias(f"__pii_{step.kind}__"))
        done.add(step.kind)
    out_cols = _count_columns(config, done)
    lf = lf.with_columns(pl.col(_TMP_TEXT).alias(text_column), *out_cols)
    out_names = [e.meta.output_name() for e in out_cols]
    keep = [c for c in df.columns if c not in out_names] + out_names
    return lf.select(keep).collect()
