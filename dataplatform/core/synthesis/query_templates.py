"""FineInstructions templates from user query logs, made by the LLM.

The paper turns ~18M real user queries into generic templates: the specific entities become typed
slots, and a description says which documents the template fits. A query log here is a JSONL file
with one ``{"query": "..."}`` object per line (``text`` is accepted too; blank and ``#`` lines are
skipped). Two profiles, like the other synthesis stages:

* ``paper`` (``query_template_v1``): the LLM writes ``[TEMPLATE]..[/TEMPLATE]``, the slot types in
  ``[SLOTS]name: type[/SLOTS]`` and the ``[FITS]..[/FITS]`` description; the result is validated
  like a template file line.
* ``small_model``: the bundled 135M model answers a query instead of abstracting it (0/8 templates
  in a probe, also with few-shot examples), but it can *choose*. So the LLM picks, by
  log-probability (:meth:`LLMEngine.score_continuations`), which span of the query (1-3 words,
  not starting or ending with a function word) names the specific thing it is about
  (``query_slot_small_v1``) and which slot type from :data:`SMALL_SLOT_TYPES` it is
  (``query_slot_type_small_v1``); the span becomes the slot and ``fits`` is "Documents that
  answer search queries such as: <query>".

Template ids are ``query-<blake2b(query)>``, so the same query gives the same template on every
run. Queries that yield no valid template are returned as failures with a stable reason:
``query_templates:truncated``, ``:missing_template``, ``:invalid_template`` (with the validation
message), ``:no_candidate_span``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from dataplatform.core.synthesis.common import derived_id, load_prompt, render
from dataplatform.core.synthesis.fineinstructions import InstructionTemplate, TemplateError, parse_template
from dataplatform.llm.engine import LLMEngine, SamplingConfig

__all__ = ["FAILURES_SCHEMA", "SMALL_SLOT_TYPES", "load_query_log", "parse_template_output", "templates_from_queries"]

TRUNCATED = "query_templates:truncated"
MISSING_TEMPLATE = "query_templates:missing_template"
INVALID_TEMPLATE = "query_templates:invalid_template"
NO_CANDIDATE = "query_templates:no_candidate_span"

SMALL_SLOT_TYPES = (
    "place",
    "person",
    "food",
    "product",
    "medical condition",
    "medication",
    "animal",
    "plant",
    "organisation",
    "event",
    "software",
    "device",
    "sport",
    "topic",
)
_FUNCTION_WORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it its me my of on or that the their this to was what "
    "when where which who why will with you your should".split()
)
_QUERY_WORD = re.compile(r"\w[\w'-]*")
FAILURES_SCHEMA = {
    "query": pl.String,
    "reason": pl.String,
    "detail": pl.String,
    "raw_output": pl.String,
    "prompt_version": pl.String,
    "model": pl.String,
}
Parsed = tuple[InstructionTemplate | None, str | None, str]  # template, failure reason, detail


def load_query_log(paths: Iterable[str | Path]) -> list[str]:
    """Queries of the JSONL files, in file order, each once; a bad line raises naming file and line."""
    queries: list[str] = []
    seen: set[str] = set()
    for path in paths:
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise TemplateError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            query = obj.get("query", obj.get("text")) if isinstance(obj, dict) else None
            if not isinstance(query, str) or not query.strip():
                raise TemplateError(f"{path}:{n}: expected an object with a non-empty 'query' string")
            query = " ".join(query.split())
            if query not in seen:
                seen.add(query)
                queries.append(query)
    return queries


def _template_id(query: str) -> str:
    return "query-" + derived_id("query_template", query)[:16]


def _tagged(raw: str, tag: str) -> str | None:
    start, end = raw.find(f"[{tag}]"), raw.find(f"[/{tag}]")
    if start == -1 or end == -1 or end < start:
        return None
    return raw[start + len(tag) + 2 : end].strip()


def parse_template_output(query: str, raw: str, finish: str = "stop") -> Parsed:
    """``paper`` profile: ``(template, None, "")`` or ``(None, "query_templates:<rule>", why)``. Never raises."""
    template, slots, fits = (_tagged(raw, tag) for tag in ("TEMPLATE", "SLOTS", "FITS"))
    if template is None or slots is None or fits is None:
        return None, TRUNCATED if finish == "length" else MISSING_TEMPLATE, ""
    slot_types = {}
    for line in slots.splitlines():
        name, sep, kind = line.partition(":")
        if sep and name.strip():
            slot_types[name.strip().strip("{}")] = kind.strip()
    return _validated(query, template, slot_types, fits)


def _validated(query: str, template: str, slot_types: dict[str, str], fits: str) -> Parsed:
    if not slot_types:
        return None, INVALID_TEMPLATE, "the template has no slot"
    try:
        return (
            parse_template(
                {"template_id": _template_id(query), "template": template, "slot_types": slot_types, "fits": fits},
                "generated template",
            ),
            None,
            "",
        )
    except TemplateError as exc:
        return None, INVALID_TEMPLATE, str(exc)


def _candidate_spans(query: str) -> list[tuple[int, int]]:
    words = list(_QUERY_WORD.finditer(query))
    spans = []
    for i in range(len(words)):
        for j in range(i, min(i + 3, len(words))):
            if words[i].group().lower() in _FUNCTION_WORDS or words[j].group().lower() in _FUNCTION_WORDS:
                continue
            spans.append((words[i].start(), words[j].end()))
    return spans


def _best(engine: LLMEngine, prompt: str, options: Sequence[str], prefix: str) -> int:
    scores = engine.score_continuations([prompt], [f" {o}" for o in options], response_prefix=prefix)[0]
    return int(np.argmax(np.where(np.isfinite(scores), scores, -np.inf)))


def _small_model_template(query: str, engine: LLMEngine) -> Parsed:
    spans = _candidate_spans(query)
    if not spans:
        return None, NO_CANDIDATE, ""
    texts = [query[a:b] for a, b in spans]
    chosen = _best(engine, render(load_prompt("query_slot_small_v1"), query=query), [f'"{t}"' for t in texts], "The words are")
    start, end = spans[chosen]
    kind = SMALL_SLOT_TYPES[
        _best(engine, render(load_prompt("query_slot_type_small_v1"), query=query, span=texts[chosen]), SMALL_SLOT_TYPES, "Type:")
    ]
    slot = kind.replace(" ", "_")
    template = query[:start] + "{" + slot + "}" + query[end:]
    template = template[0].upper() + template[1:]
    return _validated(query, template, {slot: kind}, f"Documents that answer search queries such as: {query}")


def templates_from_queries(
    queries: Sequence[str], engine: LLMEngine, profile: str = "paper", max_tokens: int = 256
) -> tuple[list[InstructionTemplate], pl.DataFrame]:
    """Templates made from ``queries`` by ``engine`` (see the module docstring) and a failures frame
    (:data:`FAILURES_SCHEMA`): every query is in exactly one of them, in input order."""
    if profile not in ("paper", "small_model"):
        raise ValueError(f"query template profile must be 'paper' or 'small_model', got {profile!r}")
    version = "query_template_v1" if profile == "paper" else "query_slot_small_v1"
    results: list[tuple[Parsed, str]] = []  # (parsed, raw output)
    if profile == "paper":
        prompts = [render(load_prompt(version), query=q) for q in queries]
        generations = engine.generate(prompts, SamplingConfig(max_tokens=max_tokens, temperature=0.0, stop=("[/FITS]",)))
        for q, g in zip(queries, generations, strict=True):
            closed = g.text + ("[/FITS]" if g.finish_reason == "stop" and "[/FITS]" not in g.text else "")  # the stop string
            results.append((parse_template_output(q, closed, g.finish_reason), g.text))
    else:
        results = [(_small_model_template(q, engine), "") for q in queries]
    templates = [t for (t, _, _), _ in results if t is not None]
    failed = [(q, reason, detail, raw) for q, ((t, reason, detail), raw) in zip(queries, results) if t is None]
    failures = pl.DataFrame(
        {
            "query": [f[0] for f in failed],
            "reason": [f[1] for f in failed],
            "detail": [f[2] for f in failed],
            "raw_output": [f[3] for f in failed],
            "prompt_version": [version] * len(failed),
            "model": [engine.model_id] * len(failed),
        },
        schema=FAILURES_SCHEMA,
    )
    return templates, failures
