"""Generate the bundled sample crawl (WARC files, ``warc.paths.gz``, ground truth, benchmark).

Run ``python -m dataplatform.sample_data.generate_sample_crawl [--out DIR]``. The output is byte
for byte deterministic: fixed seeds, sorted iteration, gzip members with ``mtime=0`` (the bytes
depend on the zlib build, so regenerate with the same interpreter/zlib the tests use).

Everything is authored here: invented ``.example`` domains, combinatorial English prose built from
the banks in :mod:`._banks`, hand-written German/French/Spanish/Italian/Portuguese/Dutch
sentences, and a tiny multiple-choice benchmark (:mod:`._benchmark_items`).

WARC records are written by hand (WARC/1.0, one gzip member per record, as Common Crawl does).
FastWARC 2.x can build records but always writes ``WARC/1.1``, adds no payload digest and cannot
express the deliberately broken records (bad digest, non-HTTP block, truncated member), so the
writer below is ~40 lines of plain bytes; the tests read everything back with FastWARC.

Near-duplicate similarity is :func:`word_5gram_jaccard` over the page's *main text* (title plus
article paragraphs, lower-cased ``\\w+`` words), see :func:`main_text`.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import html
import itertools
import json
import random
import re
import shutil
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dataplatform.sample_data import _banks as B
from dataplatform.sample_data._benchmark_items import BENCHMARK_NAME, ITEMS

SEED = "dataplatform-sample-crawl-v1"
SNAPSHOTS = {
    # Common Crawl names snapshots by ISO week; records are dated inside that week.
    "CC-SAMPLE-2026-05": datetime(2026, 1, 26, 8, 30, tzinfo=UTC),
    "CC-SAMPLE-2026-10": datetime(2026, 3, 2, 8, 30, tzinfo=UTC),
}
FILES_PER_SNAPSHOT = 3
MAX_ARTICLE_PAIR_JACCARD = 0.2

Q = "quarantine:"
NON_HTTP, REVISIT, EMPTY_PAYLOAD = Q + "non_http", Q + "revisit", Q + "empty_payload"
HTTP_STATUS, NON_HTML, UNDECODABLE = Q + "http_status", Q + "non_html", Q + "undecodable_charset"
TRUNCATED, DIGEST_MISMATCH = Q + "truncated_warc", Q + "digest_mismatch"

UUID_NS = uuid.UUID("6f1c3a52-7d0e-5b7e-9a43-2c8e1f0b9d11")
REVISIT_PROFILE = "http://netpreserve.org/warc/1.0/revisit/identical-payload-digest"


# ----------------------------------------------------------------------------------------------
# Text helpers


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def word_5gram_jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


_ALT = re.compile(r"\[([^\[\]]+)\]")
_SLOT = re.compile(r"\{(\w+)\}")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


class Filler:
    """Fills ``{slot}`` / ``[a|b]`` templates from a topic's banks with one RNG."""

    def __init__(self, rng: random.Random, topic: dict | None = None, extra: dict | None = None):
        self.rng = rng
        self.topic = topic or {}
        self.extra = extra or {}

    def value(self, key: str, ctx: dict) -> str:
        r, t = self.rng, self.topic
        if key in ctx:
            return ctx[key]
        if key in self.extra:
            return r.choice(self.extra[key])
        if key == "noun":
            ctx["noun"] = r.choice(t["nouns"])
            return ctx["noun"]
        if key == "noun2":
            ctx["noun2"] = r.choice([n for n in t["nouns"] if n != ctx.get("noun")])
            return ctx["noun2"]
        simple = {
            "role": lambda: r.choice(t["roles"]),
            "verb": lambda: r.choice(t["verbs"]),
            "adj": lambda: r.choice(t["adjs"]),
            "place": lambda: r.choice(B.PLACES),
            "year": lambda: str(r.randint(1952, 2025)),
            "num": lambda: str(r.choice([r.randint(3, 40), r.randint(41, 400), r.randint(401, 5000)])),
            "pct": lambda: str(r.randint(6, 84)),
            "years": lambda: str(r.randint(2, 38)),
            "minutes": lambda: str(r.randint(5, 95)),
            "amount": lambda: r.choice(
                ["fifty pounds", "a hundred dollars", "two hundred euros", "eighty pounds", "a few hundred kronor"]
            ),
            "name": lambda: f"{r.choice(B.FIRST_NAMES)} {r.choice(B.LAST_NAMES)}",
            "numword": lambda: r.choice(B.NUMWORDS),
            "weekday": lambda: r.choice(B.WEEKDAYS),
            "month": lambda: r.choice(B.MONTHS),
            "adv": lambda: r.choice(B.ADVERBS),
        }
        return simple[key]()

    def fill(self, template: str) -> str:
        s = _ALT.sub(lambda m: self.rng.choice(m.group(1).split("|")), template)
        ctx: dict[str, str] = {}

        def slot(m: re.Match) -> str:
            key = m.group(1)
            val = self.value(key.lower(), ctx)
            return _cap(val) if key[0].isupper() else val

        return _SLOT.sub(slot, s)


def sentence(filler: Filler, template: str) -> str:
    s = filler.fill(template)
    first = template.split(" ", 1)[0]
    if filler.rng.random() < 0.18 and not first.startswith("{") and first not in ("A", "I"):
        s = f"{filler.rng.choice(B.OPENERS)} {s[:1].lower()}{s[1:]}"
    return s


@dataclass
class ArticleText:
    title: str
    paragraphs: list[list[str]]  # paragraphs of sentences
    topic: str

    def text(self) -> str:
        return main_text(self.title, self.paragraphs)

    def n_words(self) -> int:
        return len(words(self.text()))

    def copy(self) -> ArticleText:
        return ArticleText(self.title, [list(p) for p in self.paragraphs], self.topic)


def main_text(title: str, paragraphs: list[list[str]]) -> str:
    return title + "\n" + "\n".join(" ".join(p) for p in paragraphs)


def make_article(rng: random.Random, topic_name: str, used_titles: set[str]) -> ArticleText:
    topic = B.TOPICS[topic_name]
    f = Filler(rng, topic)
    for _ in range(100):
        title = _cap(f.fill(rng.choice(B.TITLE_TEMPLATES)))
        if title not in used_titles:
            used_titles.add(title)
            break
    pool: list[str] = []
    n_paras = rng.choice([4, 4, 5, 5, 6, 6, 7, 8, 9, 11, 13])
    paragraphs = []
    for _ in range(n_paras):
        para = []
        for _ in range(rng.randint(3, 6)):
            if not pool:
                pool = list(B.GENERIC_TEMPLATES) + list(topic["templates"])
                rng.shuffle(pool)
            para.append(sentence(f, pool.pop()))
        paragraphs.append(para)
    art = ArticleText(title, paragraphs, topic_name)
    while art.n_words() > 1150:
        art.paragraphs.pop()
    while art.n_words() < 260:
        art.paragraphs.append([sentence(f, rng.choice(B.GENERIC_TEMPLATES)) for _ in range(4)])
    return art


def slugify(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")[:70]


# ----------------------------------------------------------------------------------------------
# Captures (one WARC response/revisit record each) and their HTML


@dataclass
class Capture:
    url: str
    category: str
    language: str | None
    body: bytes = b""
    status: int = 200
    reason: str = "OK"
    content_type: str | None = "text/html; charset=utf-8"
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    warc_type: str = "response"
    raw_block: bytes | None = None  # block without an HTTP message (non_http)
    duplicate_of: str | None = None
    jaccard: float | None = None
    benchmark: str | None = None
    benchmark_item_id: str | None = None
    expected_quarantine: str | None = None
    corrupt_digest: bool = False
    truncate: bool = False
    revisit_of: Capture | None = None
    text: str | None = None  # main text, for similarity checks
    kind: str = "response"  # record-id discriminator
    # filled in when placed into a file
    date: datetime | None = None
    record_id: str | None = None
    request_id: str | None = None
    payload_digest: str | None = None
    snapshot: str | None = None
    warc_file: str | None = None


COOKIE_TEXTS = [
    "We use cookies to improve your experience and to measure how our pages are used. By continuing to browse you agree to our use of cookies.",
    "This site uses cookies for analytics and personalised content. You can change your preferences at any time.",
    "Cookies help us deliver our services. Some are essential, others help us understand how visitors use the site.",
]


def site_name(host: str) -> str:
    core = host.removeprefix("www.").removesuffix(".example")
    return " ".join(w.capitalize() for w in core.split("-"))


def esc(s: str) -> str:
    return html.escape(s, quote=False)


def page_html(
    host: str,
    title: str,
    main_html: str,
    nav: list[str],
    rng: random.Random,
    lang: str = "en",
    chrome: dict | None = None,
    extra_main: str = "",
) -> str:
    name = site_name(host)
    chrome = chrome or {
        "home": "Home",
        "news": "Latest",
        "about": "About us",
        "contact": "Contact",
        "cookie": rng.choice(COOKIE_TEXTS),
        "accept": "Accept all",
        "rights": "All rights reserved.",
    }
    nav_html = "".join(f'<li><a href="/{slugify(n)}/">{esc(n)}</a></li>' for n in nav)
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)} | {esc(name)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="stylesheet" href="/static/css/site.css">\n'
        "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}"
        "gtag('js',new Date());gtag('config','G-SAMPLE0001');</script>\n</head>\n<body>\n"
        f'<div class="cookie-banner" id="cookie-consent"><p>{esc(chrome["cookie"])}</p>'
        f'<button type="button">{esc(chrome["accept"])}</button></div>\n'
        f'<header class="site-header"><a class="logo" href="/">{esc(name)}</a>\n'
        f'<nav class="main-nav"><ul><li><a href="/">{esc(chrome["home"])}</a></li>{nav_html}'
        f'<li><a href="/about/">{esc(chrome["about"])}</a></li></ul></nav></header>\n'
        f"<main>\n{main_html}\n{extra_main}</main>\n"
        f'<footer class="site-footer"><p>&copy; 2026 {esc(name)}. {esc(chrome["rights"])}</p>\n'
        f'<ul><li><a href="/privacy/">Privacy</a></li><li><a href="/terms/">Terms</a></li>'
        f'<li><a href="/contact/">{esc(chrome["contact"])}</a></li></ul></footer>\n</body>\n</html>\n'
    )


def article_html(
    host: str,
    art: ArticleText,
    rng: random.Random,
    published: datetime,
    updated: datetime | None = None,
    extra_para: str | None = None,
) -> str:
    topic = B.TOPICS[art.topic]
    f = Filler(rng, topic)
    author = f"{rng.choice(B.FIRST_NAMES)} {rng.choice(B.LAST_NAMES)}"
    minutes = max(2, art.n_words() // 220)
    date_line = f'<time datetime="{published:%Y-%m-%d}">{published.day} {published:%B %Y}</time>'
    if updated:
        date_line += f' · Updated <time datetime="{updated:%Y-%m-%d}">{updated.day} {updated:%B %Y}</time>'
    paras = [f"<p>{esc(' '.join(p))}</p>" for p in art.paragraphs]
    if extra_para is not None:
        paras.insert(min(2, len(paras)), f"<p>{esc(extra_para)}</p>")
    related = "".join(
        f'<li><a href="/articles/{slugify(t)}/">{esc(t)}</a></li>'
        for t in (_cap(f.fill(rng.choice(B.TITLE_TEMPLATES))) for _ in range(3))
    )
    main = (
        f'<div class="breadcrumbs"><a href="/">Home</a> &rsaquo; <a href="/{art.topic}/">{art.topic.capitalize()}</a></div>\n'
        f"<article>\n<h1>{esc(art.title)}</h1>\n"
        f'<p class="byline">By {esc(author)} · {date_line} · {minutes} min read</p>\n'
        + "\n".join(paras)
        + "\n</article>\n"
        + f'<aside class="related"><h2>Related reading</h2><ul>{related}</ul></aside>\n'
    )
    return page_html(host, art.title, main, topic["nav"], rng)


# ----------------------------------------------------------------------------------------------
# Page builders for each category


def build_non_english(rng: random.Random, lang: str) -> tuple[str, str, str]:
    bank = B.NON_ENGLISH[lang]
    city = rng.choice(bank["cities"])
    f = Filler(
        rng,
        extra={
            "city": [city],
            "name": [f"{a} {b}" for a in B.FIRST_NAMES[:20] for b in B.LAST_NAMES[:12]],
            "num": [str(n) for n in range(3, 41)],
            "year": [str(y) for y in range(1995, 2026)],
        },
    )
    title = f.fill(rng.choice(bank["titles"]))
    sents = [f.fill(s) for s in rng.sample(bank["sentences"], rng.randint(11, 14))]
    cuts = sorted(rng.sample(range(2, len(sents) - 1), 2))
    paras = [sents[: cuts[0]], sents[cuts[0] : cuts[1]], sents[cuts[1] :]]
    host = rng.choice(bank["sites"])
    main = f"<article>\n<h1>{esc(title)}</h1>\n" + "\n".join(f"<p>{esc(' '.join(p))}</p>" for p in paras) + "\n</article>"
    nav = [bank["chrome"]["news"], city]
    page = page_html(host, title, main, nav, rng, lang=lang, chrome=bank["chrome"])
    url = f"https://{host}/{slugify(city)}/{slugify(title)}-{rng.randint(1000, 9999)}"
    return url, page, main_text(title, paras)


def build_boilerplate(rng: random.Random, idx: int) -> tuple[str, str]:
    kind = ["index", "login", "cookie_policy", "tag_listing", "contact", "sitemap"][idx % 6]
    topic_name = sorted(B.TOPICS)[rng.randrange(len(B.TOPICS))]
    topic = B.TOPICS[topic_name]
    f = Filler(rng, topic)
    if kind in ("login", "contact"):
        host = B.BOILERPLATE_SITES[idx % len(B.BOILERPLATE_SITES)]
    else:
        host = rng.choice(topic["sites"])
    titles = [_cap(f.fill(rng.choice(B.TITLE_TEMPLATES))) for _ in range(rng.randint(12, 24))]
    if kind == "index":
        title = "Home"
        items = "".join(f'<li><a href="/articles/{slugify(t)}/">{esc(t)}</a></li>' for t in titles)
        main = (
            f"<h1>{esc(site_name(host))}</h1>\n<h2>Latest stories</h2>\n<ul>{items}</ul>\n"
            f"<h2>Popular tags</h2>\n<ul>"
            + "".join(f"<li><a href='/tag/{slugify(n)}/'>{esc(n)}</a></li>" for n in rng.sample(topic["nouns"], 8))
            + "</ul>"
        )
        path = "/"
    elif kind == "login":
        title = "Sign in"
        main = (
            "<h1>Sign in to your account</h1>\n<form method='post' action='/login'>\n<label>Email address</label>\n"
            "<input type='email' name='email'>\n<label>Password</label>\n<input type='password' name='password'>\n"
            "<label><input type='checkbox'> Remember me</label>\n<button>Sign in</button>\n</form>\n"
            "<p><a href='/forgot'>Forgot your password?</a></p>\n<p><a href='/register'>Create an account</a></p>\n"
            "<p>Need help? <a href='/support'>Contact support</a></p>"
        )
        path = f"/login?next=%2F{slugify(rng.choice(topic['nouns']))}"
    elif kind == "cookie_policy":
        title = "Cookie policy"
        cookies = rng.sample(["_ga", "_gid", "session_id", "csrftoken", "consent", "ab_test", "lang", "_fbp"], 5)
        main = (
            f"<h1>Cookie policy</h1>\n<p>Last updated: {rng.randint(1, 28)} {rng.choice(B.MONTHS)} 2025</p>\n"
            "<h2>Necessary cookies</h2>\n<ul>" + "".join(f"<li>{c}</li>" for c in cookies[:2]) + "</ul>\n"
            "<h2>Analytics cookies</h2>\n<ul>" + "".join(f"<li>{c}</li>" for c in cookies[2:]) + "</ul>\n"
            "<p>Manage preferences</p>\n<button>Accept all</button>\n<button>Reject all</button>\n<button>Save settings</button>"
        )
        path = "/cookie-policy/"
    elif kind == "tag_listing":
        tag = rng.choice(topic["nouns"])
        title = f"Posts tagged {tag}"
        items = "".join(
            f'<li><a href="/articles/{slugify(t)}/">{esc(t)}</a> <span>{rng.randint(1, 28)} {rng.choice(B.MONTHS)[:3]} 2025</span></li>'
            for t in titles
        )
        main = (
            f"<h1>{esc(title)}</h1>\n<ul class='posts'>{items}</ul>\n"
            "<nav class='pagination'><a href='?page=1'>1</a> <a href='?page=2'>2</a> <a href='?page=3'>3</a> <a href='?page=2'>Next</a></nav>"
        )
        path = f"/tag/{slugify(tag)}/"
    elif kind == "contact":
        title = "Contact us"
        main = (
            f"<h1>Contact us</h1>\n<p>Customer service</p>\n<p>Phone: +00 {rng.randint(100, 999)} {rng.randint(1000, 9999)}</p>\n"
            f"<p>Email: help@{host}</p>\n<p>Opening hours: Mon-Fri 9:00-17:00</p>\n"
            f"<p>{rng.randint(1, 200)} {rng.choice(B.LAST_NAMES)} Street</p>\n<p>{rng.choice(B.PLACES)}</p>\n"
            "<form><label>Name</label><input><label>Message</label><textarea></textarea><button>Send</button></form>"
        )
        path = "/contact/"
    else:
        title = "Sitemap"
        items = "".join(f"<li><a href='/{slugify(n)}/'>{esc(n)}</a></li>" for n in topic["nav"] + topic["nouns"][:10])
        main = (
            f"<h1>Sitemap</h1>\n<ul>{items}</ul>\n<ul>"
            + "".join(f"<li><a href='/articles/{slugify(t)}/'>{esc(t)}</a></li>" for t in titles[:10])
            + "</ul>"
        )
        path = "/sitemap/"
    return f"https://{host}{path}", page_html(host, title, main, topic["nav"], rng)


def build_spam(rng: random.Random, idx: int) -> tuple[str, str]:
    product = B.SPAM_PRODUCTS[idx % len(B.SPAM_PRODUCTS)]
    host = f"www.{slugify(product)}-{rng.choice(['outlet', 'deals', 'store', 'discount', 'shop'])}{idx}.example"
    kinds = rng.sample(["stuffing", "repeated", "links"], rng.randint(1, 2))
    up = product.upper()
    parts = [f"<h1>BEST {esc(up)} CHEAP {esc(up)} ONLINE</h1>"]
    for kind in kinds:
        if kind == "stuffing":
            toks = []
            for _ in range(rng.randint(120, 220)):
                toks.append(
                    rng.choice(
                        [
                            product,
                            product,
                            f"cheap {product}",
                            f"best {product}",
                            f"buy {product}",
                            f"{product} online",
                            f"{product} sale",
                            rng.choice(B.SPAM_PHRASES),
                        ]
                    )
                )
            parts.append(f"<p>{esc(' '.join(toks))}</p>")
        elif kind == "repeated":
            line = f"CLICK HERE for the BEST {up} deals!!! {rng.choice(B.SPAM_PHRASES).upper()}!!!"
            parts.extend(f"<p>{esc(line)}</p>" for _ in range(rng.randint(20, 40)))
            parts.append(f"<p>{esc(rng.choice(B.SPAM_PHRASES))} {esc(rng.choice(B.SPAM_PHRASES))}</p>")
        else:
            links = []
            for _ in range(rng.randint(40, 70)):
                city = rng.choice(B.PLACES)
                links.append(
                    f'<li><a href="https://{slugify(product)}-{slugify(city)}.example/">best {esc(product)} {esc(city)}</a></li>'
                )
            parts.append("<ul>" + "".join(links) + "</ul>")
    parts.append(f"<p>{esc(rng.choice(B.SPAM_PHRASES).upper())} {esc(rng.choice(B.SPAM_PHRASES).upper())}</p>")
    url = f"https://{host}/{slugify(product)}-{rng.choice(['cheap', 'best', 'sale'])}-{rng.randint(10, 999)}.html"
    return url, page_html(host, f"Best {product} cheap", "\n".join(parts), ["Deals", "Shop", "Offers"], rng)


def edit_article(rng: random.Random, art: ArticleText, band: str) -> tuple[ArticleText, float]:
    """A near-duplicate of ``art``: light edits (``band='high'``, Jaccard >= 0.8) or a partial
    rewrite (``band='hard'``, 0.5 <= Jaccard < 0.8)."""
    f = Filler(rng, B.TOPICS[art.topic])
    lo, hi = (0.8, 0.97) if band == "high" else (0.52, 0.78)
    for _attempt in range(200):
        new = art.copy()
        locs = [(i, j) for i, p in enumerate(new.paragraphs) for j in range(len(p))]
        if band == "high":
            for i, j in rng.sample(locs, rng.randint(1, 3)):  # small word edits
                ws = new.paragraphs[i][j].split(" ")
                k = rng.randrange(1, len(ws) - 1)
                ws[k] = rng.choice(["notably", "certain", "local", "recent", "several", "older", "newer", "main"])
                new.paragraphs[i][j] = " ".join(ws)
            if rng.random() < 0.6:  # add a sentence
                p = new.paragraphs[rng.randrange(len(new.paragraphs))]
                p.insert(rng.randrange(len(p) + 1), sentence(f, rng.choice(B.GENERIC_TEMPLATES)))
            if rng.random() < 0.5:  # remove a sentence
                p = max(new.paragraphs, key=len)
                p.pop(rng.randrange(len(p)))
        else:
            frac = rng.uniform(0.18, 0.32)
            for i, j in rng.sample(locs, max(1, int(len(locs) * frac))):
                new.paragraphs[i][j] = sentence(f, rng.choice(B.GENERIC_TEMPLATES))
        jac = word_5gram_jaccard(art.text(), new.text())
        if lo <= jac < hi:
            return new, round(jac, 4)
    raise RuntimeError(f"could not reach Jaccard band {band} for {art.title!r}")


def leak_paragraph(item_idx: int) -> tuple[str, str]:
    question, choices, _ = ITEMS[item_idx]
    letters = "ABCD"
    opts = "; ".join(f"{letters[i]}) {c}" for i, c in enumerate(choices))
    text = (
        f"A reader sent us a quiz question that has been circulating in study groups, quoted here exactly: "
        f"{question} The options given were {opts}. We will come back to the answer in a later column."
    )
    return text, f"{BENCHMARK_NAME}-{item_idx:04d}"


# ----------------------------------------------------------------------------------------------
# WARC writing


def sha1_b32(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")


def warc_date(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def http_date(d: datetime) -> str:
    return d.strftime("%a, %d %b %Y %H:%M:%S GMT")


def record_id(*parts: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(UUID_NS, '|'.join(parts))}>"


def ip_for(host: str) -> str:
    h = hashlib.sha1(host.encode()).digest()
    return f"{'198.51.100' if h[0] % 2 else '203.0.113'}.{h[1] % 250 + 2}"


def warc_record(headers: list[tuple[str, str]], block: bytes) -> bytes:
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("utf-8") + block + b"\r\n\r\n"


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def http_response_block(c: Capture) -> tuple[bytes, bytes]:
    """(HTTP header bytes, payload bytes)."""
    lines = [f"HTTP/1.1 {c.status} {c.reason}", f"Date: {http_date(c.date)}", "Server: nginx/1.24.0"]
    if c.content_type:
        lines.append(f"Content-Type: {c.content_type}")
    lines.append(f"Content-Length: {len(c.body)}")
    lines += [f"{k}: {v}" for k, v in c.extra_headers]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), c.body


def request_block(url: str) -> bytes:
    m = re.match(r"https?://([^/]+)(.*)", url)
    host, path = m.group(1), m.group(2) or "/"
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
        "User-Agent: dataplatform-sample-bot/1.0 (+https://dataplatform.example/bot)\r\n"
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        "Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: br,gzip\r\nConnection: Keep-Alive\r\n\r\n"
    ).encode()


def payload_type(c: Capture) -> str:
    return (c.content_type or "application/octet-stream").split(";")[0].strip()


# long function: one data recipe whose random draws must stay in this order (the bundled WARC bytes are pinned)
def render_capture(c: Capture, warcinfo_id: str) -> list[bytes]:
    """The gzip members (request, response/revisit) for one capture."""
    host = re.match(r"https?://([^/]+)", c.url).group(1)
    req = request_block(c.url)
    req_rec = warc_record(
        [
            ("WARC-Type", "request"),
            ("WARC-Date", warc_date(c.date)),
            ("WARC-Record-ID", c.request_id),
            ("Content-Length", str(len(req))),
            ("Content-Type", "application/http; msgtype=request"),
            ("WARC-Warcinfo-ID", warcinfo_id),
            ("WARC-IP-Address", ip_for(host)),
            ("WARC-Target-URI", c.url),
            ("WARC-Block-Digest", sha1_b32(req)),
        ],
        req,
    )
    common = [("WARC-Date", warc_date(c.date)), ("WARC-Record-ID", c.record_id)]
    if c.warc_type == "revisit":
        orig = c.revisit_of
        head, _ = http_response_block(c)
        block = head
        headers = [
            ("WARC-Type", "revisit"),
            *common,
            ("Content-Length", str(len(block))),
            ("Content-Type", "application/http; msgtype=response"),
            ("WARC-Warcinfo-ID", warcinfo_id),
            ("WARC-Concurrent-To", c.request_id),
            ("WARC-IP-Address", ip_for(host)),
            ("WARC-Target-URI", c.url),
            ("WARC-Profile", REVISIT_PROFILE),
            ("WARC-Refers-To", orig.record_id),
            ("WARC-Refers-To-Target-URI", orig.url),
            ("WARC-Refers-To-Date", warc_date(orig.date)),
            ("WARC-Payload-Digest", orig.payload_digest),
            ("WARC-Block-Digest", sha1_b32(block)),
        ]
        c.payload_digest = orig.payload_digest
    elif c.raw_block is not None:
        block = c.raw_block
        headers = [
            ("WARC-Type", "response"),
            *common,
            ("Content-Length", str(len(block))),
            ("Content-Type", "application/http; msgtype=response"),
            ("WARC-Warcinfo-ID", warcinfo_id),
            ("WARC-Concurrent-To", c.request_id),
            ("WARC-IP-Address", ip_for(host)),
            ("WARC-Target-URI", c.url),
            ("WARC-Block-Digest", sha1_b32(block)),
        ]
    else:
        head, payload = http_response_block(c)
        block = head + payload
        c.payload_digest = sha1_b32(payload)
        block_digest = sha1_b32(block)
        if c.corrupt_digest:
            # Bit rot after the crawler computed its digests: flip one bit in the middle of the text.
            pos = len(head) + len(payload) // 2
            while not chr(block[pos]).isalpha():
                pos += 1
            block = block[:pos] + bytes([block[pos] ^ 0x01]) + block[pos + 1 :]
        headers = [
            ("WARC-Type", "response"),
            *common,
            ("Content-Length", str(len(block))),
            ("Content-Type", "application/http; msgtype=response"),
            ("WARC-Warcinfo-ID", warcinfo_id),
            ("WARC-Concurrent-To", c.request_id),
            ("WARC-IP-Address", ip_for(host)),
            ("WARC-Target-URI", c.url),
            ("WARC-Payload-Digest", c.payload_digest),
            ("WARC-Block-Digest", block_digest),
            ("WARC-Identified-Payload-Type", payload_type(c)),
        ]
    resp = gz(warc_record(headers, block))
    if c.truncate:
        resp = truncate_member(resp, warc_record(headers, block))
    return [gz(req_rec), resp]


def truncate_member(member: bytes, raw: bytes) -> bytes:
    """Cut a gzip member so that the WARC header survives but the block is incomplete."""
    header_end = raw.index(b"\r\n\r\n") + 4
    for frac in (0.55, 0.6, 0.65, 0.7, 0.5, 0.45):
        cut = member[: int(len(member) * frac)]
        out = zlib.decompressobj(31).decompress(cut)
        if header_end + 200 < len(out) < len(raw) - 200:
            return cut
    raise RuntimeError("could not find a cut point inside the record block")


def warcinfo_record(snapshot: str, filename: str, date: datetime, rid: str) -> bytes:
    body = (
        "software: dataplatform-sample-generator/1.0 (synthetic)\r\n"
        "format: WARC File Format 1.0\r\n"
        "conformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.0/\r\n"
        f"isPartOf: {snapshot}\r\n"
        "publisher: dataplatform project (synthetic sample crawl)\r\n"
        "description: Synthetic Common-Crawl-shaped sample for tests; all sites are invented .example domains\r\n"
        "robots: checked via crawler-commons\r\n"
        "operator: dataplatform maintainers\r\n"
    ).encode()
    return gz(
        warc_record(
            [
                ("WARC-Type", "warcinfo"),
                ("WARC-Date", warc_date(date)),
                ("WARC-Filename", filename),
                ("WARC-Record-ID", rid),
                ("Content-Length", str(len(body))),
                ("Content-Type", "application/warc-fields"),
                ("WARC-Block-Digest", sha1_b32(body)),
            ],
            body,
        )
    )


# ----------------------------------------------------------------------------------------------
# Snapshot assembly


def _give_distinct_urls(caps: list[Capture]) -> None:
    """Distinct pages get distinct URLs (a second index page becomes /?page=2)."""
    seen: set[str] = set()
    for c in caps:
        n = 1
        base = c.url
        while c.url and c.url in seen:
            n += 1
            c.url = base + ("&" if "?" in base else "?") + f"page={n}"
        seen.add(c.url)


class Generator:
    def __init__(self) -> None:
        self.used_titles: set[str] = set()
        self.used_urls: set[tuple[str, str]] = set()
        self.topics = sorted(B.TOPICS)
        self.article_pool: dict[str, list[tuple[Capture, ArticleText, str]]] = {}
        self.captures_by_snapshot: dict[str, list[list[Capture]]] = {}
        self.unique_english: list[tuple[str, str]] = []  # (url, main text) for the similarity check
        self.non_english_texts: list[tuple[str, str, str]] = []

    def rng(self, *parts: object) -> random.Random:
        return random.Random(":".join([SEED, *map(str, parts)]))

    def new_article(
        self, snapshot: str, i: int, category: str = "article", extra_para: str | None = None, min_words: int = 0
    ) -> tuple[Capture, ArticleText, str]:
        rng = self.rng(snapshot, "article", i)
        topic = self.topics[i % len(self.topics)]
        while True:
            art = make_article(rng, topic, self.used_titles)
            if art.n_words() >= min_words:
                break
        host = B.TOPICS[topic]["sites"][rng.randrange(3)]
        style = rng.randrange(3)
        slug = slugify(art.title)
        path = [
            f"/articles/{slug}/",
            f"/{2025 - rng.randrange(3)}/{rng.randint(1, 12):02d}/{slug}.html",
            f"/{topic}/{slug}-{rng.randint(100, 99999)}",
        ][style]
        url = f"https://{host}{path}"
        published = SNAPSHOTS[snapshot] - timedelta(days=rng.randint(2, 900))
        extra_text = None
        if extra_para is not None:
            extra_text = extra_para
        page = article_html(host, art, rng, published, extra_para=extra_text)
        text = art.text() if extra_text is None else art.text() + "\n" + extra_text
        cap = Capture(url=url, category=category, language="en", body=page.encode("utf-8"), text=text)
        self.unique_english.append((url, text))
        return cap, art, host

    # long function: one data recipe whose random draws must stay in this order (the bundled WARC bytes are pinned)
    def snapshot_captures(
        self, snapshot: str, n_articles: int, prev: str | None
    ) -> tuple[list[Capture], list[Capture], list[Capture]]:
        """(main captures to shuffle, within-snapshot duplicate captures, truncated-file captures)."""
        s_idx = list(SNAPSHOTS).index(snapshot)
        caps: list[Capture] = []
        articles: list[tuple[Capture, ArticleText, str]] = []
        for i in range(n_articles):
            a = self.new_article(snapshot, i, min_words=380 if i < 24 else 0)
            articles.append(a)
            caps.append(a[0])
        # benchmark leak: an otherwise normal article quoting one item verbatim
        item_idx = [6, 13][s_idx]
        leak_text, item_id = leak_paragraph(item_idx)
        leak, _, _ = self.new_article(snapshot, 10_000, category="benchmark_leak", extra_para=leak_text)
        leak.benchmark, leak.benchmark_item_id = BENCHMARK_NAME, item_id
        caps.append(leak)
        for i in range(15):
            url, page = build_boilerplate(self.rng(snapshot, "boiler", i), i + 6 * s_idx)
            caps.append(Capture(url=url, category="boilerplate", language="en", body=page.encode()))
        for i in range(12):
            url, page = build_spam(self.rng(snapshot, "spam", i), i + 12 * s_idx)
            caps.append(Capture(url=url, category="spam", language="en", body=page.encode()))
        langs = sorted(B.NON_ENGLISH)
        for i in range(17):
            lang = langs[(i + s_idx) % len(langs)]
            url, page, text = build_non_english(self.rng(snapshot, "lang", i), lang)
            self.non_english_texts.append((lang, url, text))
            caps.append(Capture(url=url, category="non_english", language=lang, body=page.encode()))
        caps += self.malformed(snapshot, s_idx, articles)
        _give_distinct_urls(caps)

        dups: list[Capture] = []
        # originals of within-snapshot duplicates: the first long articles (they land in files 0/1
        # because duplicates are appended to the last file)
        originals = articles[:24]
        for k in range(4 - s_idx):  # exact mirrors / tracking-parameter variants
            cap, art, host = originals[k]
            if k % 2 == 0:
                url = f"https://webcache-mirror.example/{cap.url.split('://', 1)[1]}"
            else:
                url = cap.url + ("&" if "?" in cap.url else "?") + f"utm_source=newsletter&utm_medium=email&utm_campaign=week{k}"
            dups.append(
                Capture(
                    url=url,
                    category="exact_duplicate",
                    language="en",
                    body=cap.body,
                    duplicate_of=cap.url,
                    jaccard=None,
                    text=cap.text,
                )
            )
        for k, band in enumerate(["high", "high", "high", "hard"][: 4 - s_idx]):
            cap, art, host = originals[4 + k]
            erng = self.rng(snapshot, "near", k)
            new, jac = edit_article(erng, art, band)
            topic = B.TOPICS[art.topic]
            other = [s for s in topic["sites"] if s != host][erng.randrange(2)]
            url = f"https://{other}/syndicated/{slugify(new.title)}-{erng.randint(100, 999)}"
            page = article_html(other, new, erng, SNAPSHOTS[snapshot] - timedelta(days=erng.randint(1, 30)))
            dups.append(
                Capture(
                    url=url,
                    category="near_duplicate",
                    language="en",
                    body=page.encode(),
                    duplicate_of=cap.url,
                    jaccard=jac,
                    text=new.text(),
                )
            )
        if prev is not None:
            # cross-snapshot: same URLs re-crawled, identical or lightly edited
            prev_articles = self.article_pool[prev][30:60]
            for k in range(5):
                cap, art, host = prev_articles[k]
                caps.append(
                    Capture(
                        url=cap.url,
                        category="exact_duplicate",
                        language="en",
                        body=cap.body,
                        duplicate_of=cap.url,
                        text=cap.text,
                        kind="recrawl",
                    )
                )
            for k, band in enumerate(["high", "high", "high", "high", "hard"]):
                cap, art, host = prev_articles[5 + k]
                erng = self.rng(snapshot, "cross-near", k)
                new, jac = edit_article(erng, art, band)
                published = SNAPSHOTS[prev] - timedelta(days=erng.randint(30, 300))
                page = article_html(host, new, erng, published, updated=SNAPSHOTS[snapshot] - timedelta(days=erng.randint(1, 20)))
                caps.append(
                    Capture(
                        url=cap.url,
                        category="near_duplicate",
                        language="en",
                        body=page.encode(),
                        duplicate_of=cap.url,
                        jaccard=jac,
                        text=new.text(),
                        kind="recrawl",
                    )
                )
        # the extra, truncated file: three fine articles, then a record cut mid-block
        trunc = [self.new_article(snapshot, 20_000 + k)[0] for k in range(3)]
        cut, _, _ = self.new_article(snapshot, 20_003, category="malformed", min_words=700)
        cut.expected_quarantine, cut.truncate = TRUNCATED, True
        trunc.append(cut)
        self.article_pool[snapshot] = articles
        return caps, dups, trunc

    # long function: one data recipe whose random draws must stay in this order (the bundled WARC bytes are pinned)
    def malformed(self, snapshot: str, s_idx: int, articles: list) -> list[Capture]:
        rng = self.rng(snapshot, "malformed")
        out: list[Capture] = []
        base = ["www.legacy-intranet", "www.oldforum-archive", "files.docs-portal", "cdn.assets-hub"]

        def host(i: int) -> str:
            return f"{base[i % len(base)]}{s_idx + 1}.example"

        # non-HTTP block in a response record
        out.append(
            Capture(
                url=f"https://{host(0)}/raw/page-{rng.randint(100, 999)}",
                category="malformed",
                language=None,
                raw_block=b"<html><body><p>Raw page content stored without any HTTP status line or headers.</p></body></html>\n",
                expected_quarantine=NON_HTTP,
            )
        )
        # revisit (identical payload digest); filled in with its original at placement time
        out.append(
            Capture(url="", category="malformed", language=None, warc_type="revisit", kind="revisit", expected_quarantine=REVISIT)
        )
        # empty payload
        out.append(
            Capture(
                url=f"https://{host(1)}/threads/{rng.randint(1000, 9999)}",
                category="malformed",
                language=None,
                body=b"",
                expected_quarantine=EMPTY_PAYLOAD,
            )
        )
        # HTTP status
        redirect = [(301, "Moved Permanently"), (302, "Found")][s_idx]
        target = f"https://{host(1)}/new-location/{rng.randint(10, 99)}"
        out.append(
            Capture(
                url=f"https://{host(1)}/old-location/{rng.randint(10, 99)}",
                category="malformed",
                language=None,
                status=redirect[0],
                reason=redirect[1],
                extra_headers=[("Location", target)],
                body=f'<html><head><title>{redirect[0]} {redirect[1]}</title></head><body><h1>{redirect[1]}</h1><p>The document has moved <a href="{target}">here</a>.</p></body></html>\n'.encode(),
                expected_quarantine=HTTP_STATUS,
            )
        )
        err = [(404, "Not Found"), (500, "Internal Server Error")][s_idx]
        out.append(
            Capture(
                url=f"https://{host(0)}/missing/{rng.randint(100, 999)}.html",
                category="malformed",
                language=None,
                status=err[0],
                reason=err[1],
                body=page_html(
                    host(0),
                    f"{err[0]} {err[1]}",
                    f"<h1>{err[0]} {err[1]}</h1>\n<p>Sorry, something went wrong.</p>",
                    ["Help"],
                    rng,
                ).encode(),
                expected_quarantine=HTTP_STATUS,
            )
        )
        # non-HTML payloads
        if s_idx == 0:
            pdf = (
                b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
                b"trailer<</Root 1 0 R>>\n%%EOF\n"
            )
            out.append(
                Capture(
                    url=f"https://{host(2)}/reports/annual-{rng.randint(2010, 2025)}.pdf",
                    category="malformed",
                    language=None,
                    body=pdf,
                    content_type="application/pdf",
                    expected_quarantine=NON_HTML,
                )
            )
        else:
            out.append(
                Capture(
                    url=f"https://{host(2)}/api/v1/items?page={rng.randint(2, 9)}",
                    category="malformed",
                    language=None,
                    body=b'{"items": [], "next": null}\n',
                    content_type="application/json",
                    expected_quarantine=NON_HTML,
                )
            )
        png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
        out.append(
            Capture(
                url=f"https://{host(3)}/img/logo-{rng.randint(10, 99)}.png",
                category="malformed",
                language=None,
                body=png,
                content_type="image/png",
                expected_quarantine=NON_HTML,
            )
        )
        # undecodable charsets
        invalid = bytes(list(range(0x80, 0xC2)) + list(range(0xF5, 0x100)))  # never valid UTF-8 on their own

        def garble(text: str, frac: float) -> bytes:
            out_b = bytearray()
            for ch in text.encode("ascii"):
                out_b.append(rng.choice(invalid) if ch != 0x20 and rng.random() < frac else ch)
            return bytes(out_b)

        seed_text = " ".join(
            rng.choice(B.GENERIC_TEMPLATES).replace("{", "").replace("}", "").replace("[", "").replace("]", "") for _ in range(6)
        )
        klingon = (
            b'<html><head><meta charset="x-klingon"><title>'
            + garble("tlhIngan Hol Dajatlh'a'", 0.5)
            + b"</title></head><body><p>"
            + garble(seed_text, 0.35)
            + b"</p></body></html>\n"
        )
        out.append(
            Capture(
                url=f"https://{host(1)}/qep/{rng.randint(100, 999)}",
                category="malformed",
                language=None,
                body=klingon,
                content_type="text/html; charset=x-klingon",
                expected_quarantine=UNDECODABLE,
            )
        )
        bad_utf8 = (
            b'<html><head><meta charset="utf-8"><title>Notes</title></head><body><p>'
            + garble(seed_text, 0.9)
            + b"</p></body></html>\n"
        )
        out.append(
            Capture(
                url=f"https://{host(0)}/notes/{rng.randint(100, 999)}",
                category="malformed",
                language=None,
                body=bad_utf8,
                content_type="text/html; charset=utf-8",
                expected_quarantine=UNDECODABLE,
            )
        )
        for c in out[-2:]:
            try:
                c.body.decode("utf-8")
                raise AssertionError("undecodable page decodes as UTF-8")
            except UnicodeDecodeError:
                pass
        # digest mismatch: an ordinary article whose block was corrupted after digesting
        bad, _, _ = self.new_article(snapshot, 30_000, category="malformed")
        bad.corrupt_digest, bad.expected_quarantine = True, DIGEST_MISMATCH
        out.append(bad)
        return out

    # --------------------------------------------------------------------------------------

    def place(self, snapshot: str, caps: list[Capture], dups: list[Capture], trunc: list[Capture]) -> list[list[Capture]]:
        rng = self.rng(snapshot, "placement")
        rng.shuffle(caps)
        files: list[list[Capture]] = [[] for _ in range(FILES_PER_SNAPSHOT)]
        dup_origins = {d.duplicate_of for d in dups}
        # originals of within-snapshot duplicates go to the first files, duplicates to the last
        origin_caps = [c for c in caps if c.url in dup_origins and c.category == "article"]
        # revisits go to the last file so that the record they refer to is always older
        revisits = [c for c in caps if c.warc_type == "revisit"]
        rest = [c for c in caps if c not in origin_caps and c not in revisits]
        for i, c in enumerate(origin_caps):
            files[i % (FILES_PER_SNAPSHOT - 1)].append(c)
        for i, c in enumerate(rest):
            files[i % FILES_PER_SNAPSHOT].append(c)
        for f in files[:-1]:
            rng.shuffle(f)
        files[-1].extend(revisits)
        rng.shuffle(files[-1])
        files[-1].extend(dups)
        files.append(trunc)
        return files

    def finalize(self, snapshot: str, files: list[list[Capture]], prev: str | None) -> list[dict]:
        """Assign dates, ids and file names; returns per-file descriptors."""
        rng = self.rng(snapshot, "dates")
        start = SNAPSHOTS[snapshot]
        s_idx = list(SNAPSHOTS).index(snapshot)
        seg_a = f"{int(start.timestamp() * 1000) + 123}.{11 + 5 * s_idx}"
        seg_b = f"{int((start + timedelta(days=3)).timestamp() * 1000) + 457}.{27 + 5 * s_idx}"
        descs = []
        for fi, caps in enumerate(files):
            t = start + timedelta(hours=36 * fi, minutes=rng.randint(0, 50))
            t0 = t
            for c in caps:
                t += timedelta(seconds=rng.randint(3, 90))
                c.date = t
                if c.warc_type == "revisit":
                    self.bind_revisit(snapshot, c, prev, fi)
                c.snapshot = snapshot
                c.record_id = record_id(snapshot, c.url, c.kind)
                c.request_id = record_id(snapshot, c.url, "request-" + c.kind)
                key = (snapshot, c.record_id)
                assert key not in self.used_urls, key
                self.used_urls.add(key)
            serial = fi
            suffix = "-truncated" if fi == FILES_PER_SNAPSHOT else ""
            name = f"CC-SAMPLE-{t0:%Y%m%d%H%M%S}-{t:%Y%m%d%H%M%S}-{serial:05d}{suffix}.warc.gz"
            seg = seg_a if fi < 2 else seg_b
            rel = f"crawl-data/{snapshot}/segments/{seg}/warc/{name}"
            for c in caps:
                c.warc_file = rel
            descs.append({"rel": rel, "name": name, "start": t0, "caps": caps})
        return descs

    def bind_revisit(self, snapshot: str, c: Capture, prev: str | None, file_idx: int) -> None:
        if prev is None:
            # same-snapshot revisit of an article captured in an earlier file
            orig = next(x for x in self.captures_by_snapshot[snapshot][0] if x.category == "article")
        else:
            orig = self.article_pool[prev][70][0]
        assert orig.date is not None and orig.date < c.date
        c.revisit_of = orig
        c.url = orig.url
        c.content_type = "text/html; charset=utf-8"
        c.body = orig.body  # only its length is used (HTTP headers of the revisit)


def write_snapshot(out: Path, snapshot: str, descs: list[dict]) -> list[dict]:
    truth = []
    for d in descs:
        path = out / "crawl" / d["rel"]
        path.parent.mkdir(parents=True, exist_ok=True)
        info_id = record_id(snapshot, d["name"], "warcinfo")
        members = [warcinfo_record(snapshot, d["name"], d["start"], info_id)]
        for c in d["caps"]:
            members += render_capture(c, info_id)
            truth.append(truth_row(c))
        path.write_bytes(b"".join(members))
    paths = out / "crawl" / "crawl-data" / snapshot / "warc.paths.gz"
    listing = "".join(d["rel"] + "\n" for d in sorted(descs, key=lambda d: d["rel"])).encode()
    paths.write_bytes(gz(listing))
    return truth


def truth_row(c: Capture) -> dict:
    return {
        "snapshot": c.snapshot,
        "warc_file": c.warc_file,
        "warc_record_id": c.record_id,
        "warc_type": c.warc_type,
        "url": c.url,
        "http_status": None if c.raw_block is not None or c.truncate else c.status,
        "category": c.category,
        "language": c.language,
        "duplicate_of": c.duplicate_of,
        "near_duplicate_jaccard": c.jaccard,
        "benchmark": c.benchmark,
        "benchmark_item_id": c.benchmark_item_id,
        "expected_quarantine": c.expected_quarantine,
    }


def check_similarity(gen: Generator) -> dict:
    """Distinct English articles must not look like near-duplicates of each other."""
    sets = [(u, shingles(t)) for u, t in gen.unique_english]
    worst = (0.0, "", "")
    for (ua, sa), (ub, sb) in itertools.combinations(sets, 2):
        inter = len(sa & sb)
        if inter == 0:
            continue
        j = inter / (len(sa) + len(sb) - inter)
        if j > worst[0]:
            worst = (j, ua, ub)
    assert worst[0] < MAX_ARTICLE_PAIR_JACCARD, f"articles too similar: {worst}"
    ne = [(lang, shingles(t)) for lang, _, t in gen.non_english_texts]
    worst_ne = max((len(a & b) / len(a | b) for (la, a), (lb, b) in itertools.combinations(ne, 2) if la == lb), default=0.0)
    return {"max_article_pair_jaccard": round(worst[0], 4), "max_non_english_pair_jaccard": round(worst_ne, 4)}


def write_benchmark(out: Path) -> None:
    d = out / "benchmarks"
    d.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": f"{BENCHMARK_NAME}-{i:04d}", "question": q, "choices": ch, "answer": ch[a]} for i, (q, ch, a) in enumerate(ITEMS)
    ]
    (d / f"{BENCHMARK_NAME}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def generate(out: Path) -> dict:
    out = Path(out)
    if (out / "crawl").exists():
        shutil.rmtree(out / "crawl")
    gen = Generator()
    truth: list[dict] = []
    prev = None
    for snapshot in SNAPSHOTS:
        caps, dups, trunc = gen.snapshot_captures(snapshot, 110, prev)
        files = gen.place(snapshot, caps, dups, trunc)
        gen.captures_by_snapshot[snapshot] = files
        descs = gen.finalize(snapshot, files, prev)
        truth += write_snapshot(out, snapshot, descs)
        prev = snapshot
    stats = check_similarity(gen)
    for row in truth:
        if row["category"] == "article":
            assert row["expected_quarantine"] is None
    (out / "ground_truth.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in truth), encoding="utf-8")
    write_benchmark(out)
    stats["records"] = len(truth)
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="output folder (default: the dataplatform/sample_data package folder)",
    )
    args = parser.parse_args(argv)
    stats = generate(args.out)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
