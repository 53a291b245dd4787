"""REWIRE: rewrite web documents with an LLM so that more of the crawl becomes usable.

Nguyen et al. 2025, "Recycling the Web: A Method to Enhance Pre-training Data Quality and
Quantity for Language Models". Every document that passed the heuristic filters and global dedup
is given to an instruction-tuned LLM (paper: Llama-3.3-70B-Instruct, temperature 1.0, top_p 0.9,
up to 8192 new tokens) which (1) identifies the purpose of the document, (2) reasons as the expert
best placed to accomplish it, and (3) writes an improved version that is not shorter than the
original. A separate fastText classifier (positives: high-quality reference text, negatives:
random rewrites) scores the rewrites and the top ~10% by rank are mixed 1:1 with the raw top 10%
(+1.0/+1.3/+2.5 pp on 22 tasks at 1B/3B/7B). This module is the generation step (the pool, the
classifier and the rank cut are in ``dataplatform.stages.synthesis``).

Prompt profiles (:data:`PROFILES`; every row records its ``prompt_version``):

* ``paper`` -> ``rewire_v2``: purpose, expert reasoning, then the improved version (not shorter
  than the original) between ``[IMPROVED]`` and ``[/IMPROVED]``; the end marker is a stop string.
  ``rewire_v1`` (the first release: same steps, no "not shorter" rule) stays loadable.
* ``small_model`` -> ``rewire_small_v1``: for the bundled 135M model, which cannot write an
  analysis and then a marked-up answer (with ``rewire_v1`` at 2048 tokens it produced 0/8 usable
  outputs). The whole assistant turn is the rewrite, asked for "about N words" (N = the source's
  word count: the small model's way of saying "not shorter"), sampled at temperature 0.7: at 1.0
  it drifts off the source within a sentence.

Paper departures kept on purpose: ``min_chars`` (default 50) drops degenerate outputs before they
reach the classifier; the length ratios are off by default (the paper has no length filter) but
configurable. Every output that cannot be used becomes a row of the failures frame with a stable
``rewire:<rule>`` reason instead of an exception:

=========================  ==================================================================
``rewire:empty_source``    the source text is empty; the model is not called
``rewire:prompt_too_long`` the prompt does not fit the model's context
``rewire:empty_output``    the model produced only whitespace
``rewire:missing_start_marker``  no ``[IMPROVED]`` in a finished output (marker profiles)
``rewire:truncated``       the token budget ran out before the rewrite was finished
``rewire:empty_rewrite``   nothing between the markers
``rewire:too_short``       shorter than ``min_chars`` or ``min_length_ratio`` x the source
``rewire:too_long``        longer than ``max_length_ratio`` x the source
``rewire:off_source``      fewer than ``min_source_overlap`` of its content words are in the
                           source (``small_model`` profile: 0.3; off for ``paper``)
=========================  ==================================================================

Ids: a rewrite's ``doc_id`` is derived from (prompt version, model id, source doc id), so a re-run
of the same configuration gives the same ids, and ``source_doc_id`` keeps the lineage.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa

from dataplatform.core.synthesis.common import derived_id, load_prompt, render, to_frame
from dataplatform.llm.engine import Generation, LLMEngine, SamplingConfig

__all__ = [
    "END_MARKER",
    "FAILURES_SCHEMA",
    "PROFILES",
    "REASONS",
    "REWRITTEN_SCHEMA",
    "START_MARKER",
    "RewireConfig",
    "RewireProfile",
    "build_rewire_prompts",
    "parse_rewire_output",
    "rewrite_documents",
    "source_overlap",
    "top_by_rank",
    "truncate_document",
]

STAGE = "rewire"
START_MARKER = "[IMPROVED]"
END_MARKER = "[/IMPROVED]"

EMPTY_SOURCE = "rewire:empty_source"
PROMPT_TOO_LONG = "rewire:prompt_too_long"
EMPTY_OUTPUT = "rewire:empty_output"
MISSING_START_MARKER = "rewire:missing_start_marker"
TRUNCATED = "rewire:truncated"
EMPTY_REWRITE = "rewire:empty_rewrite"
TOO_SHORT = "rewire:too_short"
TOO_LONG = "rewire:too_long"
OFF_SOURCE = "rewire:off_source"
REASONS = (
    EMPTY_SOURCE,
    PROMPT_TOO_LONG,
    EMPTY_OUTPUT,
    MISSING_START_MARKER,
    TRUNCATED,
    EMPTY_REWRITE,
    TOO_SHORT,
    TOO_LONG,
    OFF_SOURCE,
)

OutputFormat = Literal["markers", "whole_turn"]
# How each released prompt's answer is laid out.
PROMPT_FORMATS: dict[str, OutputFormat] = {"rewire_v1": "markers", "rewire_v2": "markers", "rewire_small_v1": "whole_turn"}
# A chatty first line ("Here is the rewritten text:") that small models put before the rewrite.
_WORD = re.compile(r"\w+")
_FUNCTION_WORDS = frozenset(
    "the and for are but not you all any can had her was one our out has him his how its may new now see two who did "
    "get let say she too use this that with have from they will would there their what about which when make like "
    "than them then these into more some such only also very just over".split()
)
_PREAMBLE = re.compile(
    r"\A\s*(?:sure|certainly|here(?:'s| is| are)|rewritten|improved|the rewritten|the improved)\b[^\n]{0,100}:[ \t]*\n", re.I
)


@dataclasses.dataclass(frozen=True)
class RewireProfile:
    """A prompt and the sampling temperature that goes with it."""

    prompt_version: str
    temperature: float
    top_p: float = 0.9
    min_source_overlap: float = 0.0


PROFILES = {
    "paper": RewireProfile("rewire_v2", temperature=1.0),
    # A 135M model sometimes writes about the text instead of rewriting it ("The original text
    # contains too many sentences ..."): such outputs share almost no content words with the source.
    "small_model": RewireProfile("rewire_small_v1", temperature=0.7, min_source_overlap=0.3),
}

REWRITTEN_SCHEMA = {
    "doc_id": pl.String,
    "source_doc_id": pl.String,
    "text": pl.String,
    "prompt_version": pl.String,
    "model": pl.String,
    "n_prompt_tokens": pl.Int64,
    "n_generated_tokens": pl.Int64,
}
FAILURES_SCHEMA = {
    "source_doc_id": pl.String,
    "reason": pl.String,
    "raw_output": pl.String,
    "prompt_version": pl.String,
    "model": pl.String,
    "n_generated_tokens": pl.Int64,
}


@dataclasses.dataclass(frozen=True)
class RewireConfig:
    """REWIRE generation settings; defaults are the paper's (temperature 1.0, top_p 0.9, 8192 new
    tokens, no length filter). Length bounds compare the rewrite with the (truncated) source."""

    prompt_version: str = "rewire_v2"
    max_doc_chars: int = 12_000
    sampling: SamplingConfig = SamplingConfig(max_tokens=8192, temperature=1.0, top_p=0.9, stop=(END_MARKER,))
    min_chars: int = 50
    min_length_ratio: float = 0.0
    max_length_ratio: float | None = None
    min_source_overlap: float = 0.0  # share of the rewrite's content words found in the source (0 = no check)
    docs_per_call: int = 4096  # documents per engine.generate call (bounds memory, not batching)
    max_raw_output_chars: int = 4000  # raw output kept per failure, for inspection

    def __post_init__(self) -> None:
        if self.max_doc_chars < 1:
            raise ValueError(f"RewireConfig.max_doc_chars must be >= 1, got {self.max_doc_chars}")
        if self.min_length_ratio < 0 or (self.max_length_ratio is not None and self.max_length_ratio < self.min_length_ratio):
            raise ValueError(
                "RewireConfig.min_length_ratio/max_length_ratio must satisfy 0 <= min <= max, "
                f"got {self.min_length_ratio}/{self.max_length_ratio}"
            )
        if self.docs_per_call < 1:
            raise ValueError(f"RewireConfig.docs_per_call must be >= 1, got {self.docs_per_call}")
        load_prompt(self.prompt_version)  # fail fast on an unknown version
        if self.prompt_version not in PROMPT_FORMATS:
            raise ValueError(
                f"RewireConfig.prompt_version {self.prompt_version!r} is not a REWIRE prompt; one of {sorted(PROMPT_FORMATS)}"
            )

    @property
    def output_format(self) -> OutputFormat:
        return PROMPT_FORMATS[self.prompt_version]

    @classmethod
    def for_profile(
        cls,
        profile: str,
        *,
        max_tokens: int,
        max_doc_chars: int,
        seed: int = 0,
        temperature: float | None = None,
        top_p: float | None = None,
        **kwargs,
    ) -> RewireConfig:
        """The config of a :data:`PROFILES` entry; ``temperature``/``top_p`` override its defaults."""
        if profile not in PROFILES:
            raise ValueError(f"REWIRE prompt profile must be one of {sorted(PROFILES)}, got {profile!r}")
        chosen = PROFILES[profile]
        stop = (END_MARKER,) if PROMPT_FORMATS[chosen.prompt_version] == "markers" else ()
        sampling = SamplingConfig(
            max_tokens=max_tokens,
            seed=seed,
            stop=stop,
            temperature=chosen.temperature if temperature is None else temperature,
            top_p=chosen.top_p if top_p is None else top_p,
        )
        kwargs.setdefault("min_source_overlap", chosen.min_source_overlap)
        return cls(prompt_version=chosen.prompt_version, max_doc_chars=max_doc_chars, sampling=sampling, **kwargs)


def truncate_document(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters, cut at the last whitespace in the final 10% if any."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    cut = max(head.rfind(" "), head.rfind("\n"))
    return head[:cut].rstrip() if cut >= int(max_chars * 0.9) else head


def build_rewire_prompts(texts: Sequence[str], max_doc_chars: int = 12_000, prompt_version: str = "rewire_v2") -> list[str]:
    template = load_prompt(prompt_version)
    prompts = []
    for t in texts:
        document = truncate_document(t or "", max_doc_chars).strip()
        words = max(10, round(len(document.split()) / 10) * 10)
        prompts.append(render(template, document=document, words=str(words)))
    return prompts


def source_overlap(rewrite: str, source: str) -> float:
    """Share of the rewrite's distinct content words (3+ letters, not function words) that occur in
    the source, case-insensitively; 1.0 when the rewrite has no content word."""

    def content(text: str) -> set[str]:
        return {w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in _FUNCTION_WORDS}

    words = content(rewrite)
    return len(words & content(source)) / len(words) if words else 1.0


def _marked_rewrite(raw: str, finish: str) -> tuple[str | None, str | None]:
    start = raw.rfind(START_MARKER)
    if start == -1:
        return None, TRUNCATED if finish == "length" else MISSING_START_MARKER
    body = raw[start + len(START_MARKER) :]
    end = body.find(END_MARKER)
    if end == -1:
        if finish == "length":
            return None, TRUNCATED
        return body, None
    return body[:end], None


def parse_rewire_output(
    generation: Generation | str,
    source_chars: int | None = None,
    *,
    min_chars: int = 50,
    min_length_ratio: float = 0.0,
    max_length_ratio: float | None = None,
    output_format: OutputFormat = "markers",
) -> tuple[str | None, str | None]:
    """``(rewrite, None)`` for a usable output, else ``(None, "rewire:<rule>")``. Never raises.

    A plain string is treated as a finished generation. ``markers``: the rewrite starts after the
    last ``[IMPROVED]`` and ends at ``[/IMPROVED]``; a missing end marker is fine when generation
    stopped (the marker is the stop string and is not part of the text) and means truncation
    when it ran out of tokens. ``whole_turn``: the whole output is the rewrite (a chatty
    "Here is ...:" first line removed); running out of tokens means truncation. Length bounds use
    ``source_chars`` when given.
    """
    if isinstance(generation, Generation):
        raw, finish = generation.text or "", generation.finish_reason
    else:
        raw, finish = generation or "", "stop"
    if finish == "prompt_too_long":
        return None, PROMPT_TOO_LONG
    if not raw.strip():
        return None, TRUNCATED if finish == "length" and raw else EMPTY_OUTPUT
    if output_format == "markers":
        body, reason = _marked_rewrite(raw, finish)
        if body is None:
            return None, reason
    elif finish == "length":
        return None, TRUNCATED
    else:
        body = _PREAMBLE.sub("", raw, count=1)
    text = body.strip()
    if not text:
        return None, EMPTY_REWRITE
    n = len(text)
    if n < min_chars or (source_chars and n < min_length_ratio * source_chars):
        return None, TOO_SHORT
    if source_chars and max_length_ratio is not None and n > max_length_ratio * source_chars:
        return None, TOO_LONG
    return text, None


def rewrite_documents(
    docs: pl.DataFrame | pa.Table, engine: LLMEngine, config: RewireConfig | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rewrite ``docs`` (``doc_id``, ``text``) with ``engine``.

    Returns ``(rewritten, failures)``: ``rewritten`` has :data:`REWRITTEN_SCHEMA` (``doc_id`` is
    the new stable id, ``source_doc_id`` the input's), ``failures`` has :data:`FAILURES_SCHEMA`.
    Every input row appears in exactly one of them, in input order.
    """
    config = config or RewireConfig()
    df = to_frame(docs, ("doc_id", "text"), "rewrite_documents")
    doc_ids = df.get_column("doc_id").to_list()
    texts = [t or "" for t in df.get_column("text").to_list()]
    model = engine.model_id
    rewritten: dict[str, list] = {k: [] for k in REWRITTEN_SCHEMA}
    failures: dict[str, list] = {k: [] for k in FAILURES_SCHEMA}
    failure_rows: list[int] = []

    def fail(i: int, reason: str, raw: str, n_generated: int) -> None:
        failure_rows.append(i)
        for key, value in zip(
            FAILURES_SCHEMA,
            (doc_ids[i], reason, raw[: config.max_raw_output_chars], config.prompt_version, model, n_generated),
            strict=True,
        ):
            failures[key].append(value)

    todo = []
    for i, t in enumerate(texts):
        if t.strip():
            todo.append(i)
        else:
            fail(i, EMPTY_SOURCE, "", 0)
    for start in range(0, len(todo), config.docs_per_call):
        chunk = todo[start : start + config.docs_per_call]
        sources = [truncate_document(texts[i], config.max_doc_chars).strip() for i in chunk]
        prompts = build_rewire_prompts(sources, config.max_doc_chars, config.prompt_version)
        generations = engine.generate(prompts, config.sampling)
        for i, source, gen in zip(chunk, sources, generations, strict=True):
            text, reason = parse_rewire_output(
                gen,
                len(source),
                min_chars=config.min_chars,
                min_length_ratio=config.min_length_ratio,
                max_length_ratio=config.max_length_ratio,
                output_format=config.output_format,
            )
            if text is not None and config.min_source_overlap and source_overlap(text, source) < config.min_source_overlap:
                text, reason = None, OFF_SOURCE
            if text is None:
                fail(i, reason or EMPTY_OUTPUT, gen.text, gen.n_generated_tokens)
                continue
            row = (
                derived_id(STAGE, config.prompt_version, model, doc_ids[i]),
                doc_ids[i],
                text,
                config.prompt_version,
                model,
                gen.n_prompt_tokens,
                gen.n_generated_tokens,
            )
            for key, value in zip(REWRITTEN_SCHEMA, row, strict=True):
                rewritten[key].append(value)
    out = pl.DataFrame(rewritten, schema=REWRITTEN_SCHEMA)
    failed = pl.DataFrame(failures, schema=FAILURES_SCHEMA)
    if failure_rows:  # input order (empty sources were recorded first)
        failed = failed.with_columns(pl.Series("_row", failure_rows)).sort("_row").drop("_row")
    return out, failed


def top_by_rank(scores: Sequence[float] | np.ndarray, ids: Sequence[str], fraction: float) -> np.ndarray:
    """Boolean mask of the ``ceil(fraction * n)`` highest scores (REWIRE keeps the top 10% of the
    rewrites *by rank*, not above an absolute cut). Ties break by id, NaN scores rank last.
    The ceiling (not rounding) keeps at least one rewrite of a small partition, e.g. a CPU run
    that rewrote a handful of documents; at scale the difference is one document."""
    if not 0 < fraction <= 1:
        raise ValueError(f"keep fraction must be in (0, 1], got {fraction}")
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != (len(ids),):
        raise ValueError(f"top_by_rank: {values.shape[0] if values.ndim else 0} scores for {len(ids)} ids")
    n = len(ids)
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    k = min(n, math.ceil(fraction * n - 1e-9))
    key = np.where(np.isnan(values), -np.inf, values)
    order = np.lexsort((np.asarray(ids, dtype=object).astype(str), -key))
    keep[order[:k]] = True
    return keep
