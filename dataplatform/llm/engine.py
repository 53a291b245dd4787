"""One batch-inference interface for the GPU synthesis stages, two backends.

* :class:`VLLMEngine` — production: vLLM's offline ``LLM.generate`` on one GPU worker
  (``tensor_parallel_size`` > 1 to shard a big model over the GPUs of one node).
* :class:`TransformersEngine` — CPU (or any torch device) with Hugging Face transformers, batched
  with padding. Tests and the demo run use it with the tiny model from
  :mod:`dataplatform.llm.tiny_model`.

Both engines tokenize prompts themselves with the model's own tokenizer, so that

* ``n_prompt_tokens`` means the same on both backends,
* a prompt longer than the model's context becomes a ``Generation`` with
  ``finish_reason="prompt_too_long"`` (data, counted downstream) instead of an exception that
  would kill a whole batch (vLLM raises on over-long prompts),
* chat prompts are rendered once, with the tokenizer's chat template, without a doubled BOS.

Semantics shared by both backends:

* ``generate`` returns results in the order of ``prompts``; stop strings are not included in the
  text and give ``finish_reason="stop"``, as does end-of-sequence; running out of
  ``max_tokens`` (or of context) gives ``"length"``.
* ``temperature == 0`` is greedy decoding. With ``temperature > 0`` every prompt gets its own
  random generator seeded from ``SamplingConfig.seed`` (vLLM's per-request ``seed``; the
  transformers backend derives a per-prompt seed from the seed and the prompt text), so the
  output of a prompt does not depend on what else is in its batch.
* ``prompt_logprobs(texts)`` scores each text as the tokenizer encodes it by default (with BOS
  where the model uses one) and returns the log-probability of every token after the first,
  one ``float32`` array per text; texts longer than the context are truncated to it.
* ``count_tokens(texts)`` counts tokens without special tokens (what a training mix holds).
* ``score_continuations(prompts, continuations)`` is the log-probability of each candidate
  continuation (e.g. the ratings ``"1"`` .. ``"5"`` of a judge) after each chat-rendered prompt:
  constrained choice, the same on both backends (it is built on the prompt log-probs).

``make_engine("vllm", ...)`` on a machine without vLLM or without a CUDA GPU raises
:class:`EngineUnavailable` naming what is missing and how to install it.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import hashlib
import importlib.util
import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "EngineUnavailable",
    "Generation",
    "LLMEngine",
    "SamplingConfig",
    "TransformersEngine",
    "VLLMEngine",
    "check_vllm_available",
    "make_engine",
    "plan_batches",
    "quiet_loading",
]

FinishReason = Literal["stop", "length", "prompt_too_long"]


class EngineUnavailable(RuntimeError):
    """The requested backend cannot run here (missing package or accelerator)."""


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """Decoding parameters. ``temperature=0`` is greedy; ``seed`` makes sampling reproducible."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):  # a lone string is one stop string, not its characters
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if self.max_tokens < 1:
            raise ValueError(f"SamplingConfig.max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"SamplingConfig.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingConfig.top_p must be in (0, 1], got {self.top_p}")
        if any(not s for s in self.stop):
            raise ValueError("SamplingConfig.stop must not contain empty strings")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclasses.dataclass(frozen=True)
class Generation:
    text: str
    n_prompt_tokens: int
    n_generated_tokens: int
    finish_reason: FinishReason


def plan_batches(
    lengths: Sequence[int], max_batch_size: int, max_batch_tokens: int | None = None, extra_tokens: int = 0
) -> list[list[int]]:
    """Group item indices into batches of similar length.

    Items are sorted by length, longest first (a batch that does not fit fails on the first
    batch, not after an hour), ties by index, and cut into batches of at most ``max_batch_size``
    items whose padded size ``n_items * (longest + extra_tokens)`` stays within
    ``max_batch_tokens`` (an item that alone exceeds it gets a batch of its own). Callers scatter
    results back by index, which restores the original order.
    """
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    batches: list[list[int]] = []
    current: list[int] = []
    current_width = 0
    for i in order:
        width = max(current_width, int(lengths[i]) + extra_tokens)
        too_many = len(current) >= max_batch_size
        too_big = max_batch_tokens is not None and current and width * (len(current) + 1) > max_batch_tokens
        if current and (too_many or too_big):
            batches.append(current)
            current, width = [], int(lengths[i]) + extra_tokens
        current.append(i)
        current_width = width
    if current:
        batches.append(current)
    return batches


def _model_id(model: str, model_id: str | None) -> str:
    """A name for the model that is the same on every machine (not a local absolute path)."""
    if model_id:
        return model_id
    return Path(str(model).rstrip("/")).name or str(model)


def _prompt_seed(seed: int, prompt: str) -> int:
    h = hashlib.blake2b(digest_size=8)
    h.update(str(int(seed)).encode())
    h.update(b"\x00")
    h.update(prompt.encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


def _truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = -1
    for s in stop:
        pos = text.find(s)
        if pos != -1 and (cut == -1 or pos < cut):
            cut = pos
    return (text[:cut], True) if cut != -1 else (text, False)


class LLMEngine(abc.ABC):
    """Batched generation and scoring with one model. Subclasses implement the ``_`` hooks."""

    backend: str = "abstract"
    model_id: str = ""
    max_model_len: int = 0

    def __init__(self, use_chat_template: bool | None = None) -> None:
        self.use_chat_template = use_chat_template

    # --- hooks --------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def tokenizer(self) -> Any:
        """A Hugging Face tokenizer (``PreTrainedTokenizerBase``)."""

    @abc.abstractmethod
    def _generate_ids(self, prompt_ids: list[list[int]], prompts: list[str], sampling: SamplingConfig) -> list[Generation]:
        """Generate for prompts that fit the context; one result per prompt, in order."""

    @abc.abstractmethod
    def _prompt_logprobs_ids(self, token_ids: list[list[int]]) -> list[np.ndarray]:
        """Log-probs of tokens 1.. of each (non-empty) sequence, in order."""

    # --- shared -------------------------------------------------------------------------
    def _chat(self) -> bool:
        if self.use_chat_template is None:
            return bool(getattr(self.tokenizer, "chat_template", None))
        return self.use_chat_template

    def render_prompts(self, prompts: Sequence[str], response_prefix: str = "") -> list[str]:
        """The text actually fed to the model (chat template applied when enabled), followed by
        ``response_prefix``: the start of the assistant's turn, written for it (e.g. ``"Rating: "``)."""
        if not self._chat():
            return [p + response_prefix for p in prompts]
        tok = self.tokenizer
        return [
            tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            + response_prefix
            for p in prompts
        ]

    def encode_prompts(self, prompts: Sequence[str], response_prefix: str = "") -> list[list[int]]:
        """Token ids of each prompt as the model sees it: template applied, exactly one BOS."""
        tok = self.tokenizer
        rendered = self.render_prompts(prompts, response_prefix)
        bos = tok.bos_token
        out: list[list[int]] = []
        plain = [r for r in rendered if not (bos and r.startswith(bos))]
        plain_ids = iter(tok(plain, add_special_tokens=True)["input_ids"]) if plain else iter(())
        templated = [r for r in rendered if bos and r.startswith(bos)]
        templated_ids = iter(tok(templated, add_special_tokens=False)["input_ids"]) if templated else iter(())
        for r in rendered:
            out.append(list(next(templated_ids) if bos and r.startswith(bos) else next(plain_ids)))
        return out

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig | None = None) -> list[Generation]:
        sampling = sampling or SamplingConfig()
        prompts = list(prompts)
        if not prompts:
            return []
        ids = self.encode_prompts(prompts)
        results: list[Generation | None] = [None] * len(prompts)
        runnable = []
        for i, p_ids in enumerate(ids):
            if len(p_ids) >= self.max_model_len:
                results[i] = Generation("", len(p_ids), 0, "prompt_too_long")
            else:
                runnable.append(i)
        if runnable:
            gens = self._generate_ids([ids[i] for i in runnable], [prompts[i] for i in runnable], sampling)
            for i, g in zip(runnable, gens, strict=True):
                results[i] = g
        return results  # type: ignore[return-value]

    def prompt_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        texts = list(texts)
        if not texts:
            return []
        encoded = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        ids = [list(e)[: self.max_model_len] for e in encoded]
        results: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(texts)
        scorable = [i for i, e in enumerate(ids) if len(e) >= 2]
        if scorable:
            arrays = self._prompt_logprobs_ids([ids[i] for i in scorable])
            for i, a in zip(scorable, arrays, strict=True):
                results[i] = np.asarray(a, dtype=np.float32)
        return results

    def score_continuations(self, prompts: Sequence[str], continuations: Sequence[str], response_prefix: str = "") -> np.ndarray:
        """``(len(prompts), len(continuations))`` array: log p(continuation | rendered prompt).

        Each continuation is tokenized on its own (no special tokens) and appended to the prompt's
        ids (:meth:`encode_prompts`, so the chat template and ``response_prefix`` apply); its
        score is the sum of its tokens' log-probs. A row whose longest sequence does not fit the
        context is NaN. Used for constrained choices such as a judge's 1-5 rating: the argmax is
        what greedy decoding restricted to the valid answers would write.
        """
        prompts, continuations = list(prompts), list(continuations)
        out = np.full((len(prompts), len(continuations)), np.nan, dtype=np.float64)
        if not prompts or not continuations:
            return out
        cont_ids = [list(ids) for ids in self.tokenizer(continuations, add_special_tokens=False)["input_ids"]]
        if any(not ids for ids in cont_ids):
            raise ValueError("score_continuations: a continuation encodes to no tokens")
        longest = max(len(c) for c in cont_ids)
        encoded = self.encode_prompts(prompts, response_prefix)
        fits = [i for i, p_ids in enumerate(encoded) if p_ids and len(p_ids) + longest <= self.max_model_len]
        if fits:
            out[fits] = self._continuation_logprobs_ids([encoded[i] for i in fits], cont_ids)
        return out

    def _continuation_logprobs_ids(self, prompt_ids: list[list[int]], cont_ids: list[list[int]]) -> np.ndarray:
        """Summed log-probs of each continuation after each prompt (every sequence fits the context).
        Generic: score every prompt + continuation sequence; backends may share the prompt's work."""
        sequences = [p + c for p in prompt_ids for c in cont_ids]
        sums = [
            float(np.asarray(lp, dtype=np.float64)[-len(sequences[k]) + len(prompt_ids[k // len(cont_ids)]) :].sum())
            for k, lp in enumerate(self._prompt_logprobs_ids(sequences))
        ]
        return np.asarray(sums, dtype=np.float64).reshape(len(prompt_ids), len(cont_ids))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        texts = list(texts)
        if not texts:
            return []
        return [len(e) for e in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "model_id": self.model_id, "max_model_len": self.max_model_len}

    def close(self) -> None:  # noqa: B027 - a no-op by default, overridden where there is something to free
        pass


# ------------------------------------------------------------------------------ transformers


class TransformersEngine(LLMEngine):
    """Hugging Face transformers on CPU (default) or a torch device; batched with padding.

    ``max_batch_size`` / ``max_batch_tokens`` bound one forward pass (padded tokens, prompt plus
    new tokens); prompts are bucketed by length to keep padding low.

    ``gguf_file`` loads a llama.cpp GGUF file inside ``model`` (de-quantised to ``dtype`` by
    transformers; needs the ``gguf`` and ``accelerate`` packages), which is how the bundled default
    model (:mod:`dataplatform.llm.default_model`) is shipped. ``num_threads`` applies to this
    engine's calls only (set and restored around each call, so other torch users in the process
    keep theirs): on a small shared CPU one thread per engine is faster than torch's default of
    one per core (measured for the 135M default model: 14.8 vs 3.7 tokens/s with 4 prompts on 2
    busy cores).
    """

    backend = "transformers"

    def __init__(
        self,
        model: str,
        *,
        model_id: str | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        max_batch_size: int = 16,
        max_batch_tokens: int = 32_768,
        max_model_len: int | None = None,
        use_chat_template: bool | None = None,
        num_threads: int | None = None,
        local_files_only: bool = True,
        gguf_file: str | None = None,
    ) -> None:
        super().__init__(use_chat_template)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.num_threads = int(num_threads) if num_threads else None
        self.model_id = _model_id(gguf_file.removesuffix(".gguf") if gguf_file else model, model_id)
        self.device = torch.device(device)
        try:
            torch_dtype = getattr(torch, dtype)
        except AttributeError:
            raise ValueError(f"TransformersEngine.dtype: unknown torch dtype {dtype!r}") from None
        files = {"local_files_only": local_files_only, **({"gguf_file": gguf_file} if gguf_file else {})}
        with self._threads(), quiet_loading():
            self._tokenizer = AutoTokenizer.from_pretrained(model, **files)
            self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype, **files)
        self.model.to(self.device).eval()
        # transformers 5 renamed forward's ``past_key_values`` to ``cache``
        self._cache_kwarg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        ctx = getattr(self.model.config, "max_position_embeddings", None) or 2048
        self.max_model_len = int(min(max_model_len, ctx) if max_model_len else ctx)
        self.max_batch_size = int(max_batch_size)
        self.max_batch_tokens = int(max_batch_tokens)
        tok = self._tokenizer
        self.eos_ids = self._eos_ids()
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos_ids[0]
        # Special tokens that must never be generated (they would be mistaken for padding).
        self._suppress = sorted({i for i in (tok.pad_token_id, tok.bos_token_id) if i is not None} - set(self.eos_ids))

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @contextlib.contextmanager
    def _threads(self):
        import torch

        if not self.num_threads:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "device": str(self.device), "num_threads": self.num_threads}

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for v in (gen_eos, self._tokenizer.eos_token_id):
            if v is None:
                continue
            ids.extend(v if isinstance(v, (list, tuple)) else [v])
        if not ids:
            raise ValueError("TransformersEngine: the tokenizer/model defines no eos token")
        return sorted(set(int(i) for i in ids))

    def _generate_ids(self, prompt_ids, prompts, sampling):
        with self._threads():
            return self._generate_batches(prompt_ids, prompts, sampling)

    def _generate_batches(self, prompt_ids, prompts, sampling):
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList
        from transformers.generation.stopping_criteria import StopStringCriteria

        lengths = [len(p) for p in prompt_ids]
        batches = plan_batches(lengths, self.max_batch_size, self.max_batch_tokens, extra_tokens=sampling.max_tokens)
        results: list[Generation | None] = [None] * len(prompt_ids)
        for batch in batches:
            width = max(lengths[i] for i in batch)
            max_new = max(1, min(sampling.max_tokens, self.max_model_len - width))
            input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):  # left padding
                input_ids[row, width - lengths[i] :] = torch.tensor(prompt_ids[i], dtype=torch.long)
                mask[row, width - lengths[i] :] = 1
            processor = _RowSampler(
                suppress=self._suppress,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                seeds=None if sampling.greedy else [_prompt_seed(sampling.seed, prompts[i]) for i in batch],
            )
            criteria = StoppingCriteriaList()
            if sampling.stop:
                criteria.append(StopStringCriteria(tokenizer=self._tokenizer, stop_strings=list(sampling.stop)))
            gen_config = GenerationConfig(
                max_new_tokens=max_new,
                do_sample=False,  # choices are made by _RowSampler; generate then takes the argmax
                eos_token_id=self.eos_ids,
                pad_token_id=self.pad_id,
            )
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    generation_config=gen_config,
                    logits_processor=LogitsProcessorList([processor]),
                    stopping_criteria=criteria,
                )
            new_tokens = out[:, width:].cpu().tolist()
            for row, i in enumerate(batch):
                results[i] = self._finish(new_tokens[row], lengths[i], max_new, sampling)
        return results

    def _finish(self, tokens: list[int], n_prompt: int, max_new: int, sampling: SamplingConfig) -> Generation:
        eos = set(self.eos_ids)
        n = 0
        hit_eos = False
        for t in tokens:
            if t == self.pad_id and self.pad_id not in eos:
                break  # row finished earlier than the batch (pad is suppressed, never generated)
            n += 1
            if t in eos:
                hit_eos = True
                break
        body = tokens[: n - 1] if hit_eos else tokens[:n]
        text = self._tokenizer.decode(body, skip_special_tokens=True)
        text, hit_stop = _truncate_at_stop(text, sampling.stop)
        reason: FinishReason = "stop" if (hit_eos or hit_stop) else "length"
        return Generation(text=text, n_prompt_tokens=n_prompt, n_generated_tokens=n, finish_reason=reason)

    def _prompt_logprobs_ids(self, token_ids):
        with self._threads():
            return self._score_batches(token_ids)

    def _continuation_logprobs_ids(self, prompt_ids, cont_ids):
        """One forward pass per prompt, its KV cache shared by all continuations (a judge's five
        ratings cost one prompt pass, not five)."""
        import torch

        out = np.zeros((len(prompt_ids), len(cont_ids)), dtype=np.float64)
        width = max(len(c) for c in cont_ids)
        cont = torch.full((len(cont_ids), width), self.pad_id, dtype=torch.long)
        cont_mask = torch.zeros((len(cont_ids), width), dtype=torch.long)
        for j, c in enumerate(cont_ids):
            cont[j, : len(c)] = torch.tensor(c, dtype=torch.long)
            cont_mask[j, : len(c)] = 1
        with self._threads(), torch.inference_mode():
            for i, p in enumerate(prompt_ids):
                first = self.model(input_ids=torch.tensor([p], device=self.device), use_cache=True)
                head = torch.log_softmax(first.logits[0, -1].float(), dim=-1).cpu()
                scores = head[cont[:, 0]].double()
                if width > 1:
                    cache = first["cache"] if "cache" in first else first["past_key_values"]
                    cache.batch_repeat_interleave(len(cont_ids))
                    mask = torch.cat([torch.ones((len(cont_ids), len(p)), dtype=torch.long), cont_mask], dim=1)
                    rest = self.model(
                        input_ids=cont.to(self.device), attention_mask=mask.to(self.device), **{self._cache_kwarg: cache}
                    )
                    logp = torch.log_softmax(rest.logits[:, :-1].float(), dim=-1).cpu()
                    picked = logp.gather(-1, cont[:, 1:].unsqueeze(-1)).squeeze(-1).double()
                    scores = scores + (picked * cont_mask[:, 1:]).sum(dim=1)
                out[i] = scores.numpy()
        return out

    def _score_batches(self, token_ids):
        import torch

        lengths = [len(t) for t in token_ids]
        results: list[np.ndarray | None] = [None] * len(token_ids)
        for batch in plan_batches(lengths, self.max_batch_size, self.max_batch_tokens):
            width = max(lengths[i] for i in batch)
            input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):  # right padding: positions are the natural ones
                input_ids[row, : lengths[i]] = torch.tensor(token_ids[i], dtype=torch.long)
                mask[row, : lengths[i]] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)).logits
                logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                picked = logp.gather(-1, input_ids[:, 1:].to(self.device).unsqueeze(-1)).squeeze(-1).cpu().numpy()
            for row, i in enumerate(batch):
                results[i] = picked[row, : lengths[i] - 1].astype(np.float32)
        return results  # type: ignore[return-value]


@contextlib.contextmanager
def quiet_loading():
    """No progress bars while a model loads (they would fill the demo's terminal and every log)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


class _RowSampler:
    """Logits processor: suppresses special tokens and, when sampling, draws each row's token
    with that row's own seeded generator (batch-independent), leaving only that token possible so
    that ``generate`` in greedy mode picks it."""

    def __init__(self, suppress: list[int], temperature: float, top_p: float, seeds: list[int] | None) -> None:
        import torch

        self.suppress = suppress
        self.temperature = temperature
        self.top_p = top_p
        self.generators = None
        if seeds is not None:
            self.generators = []
            for s in seeds:
                g = torch.Generator(device="cpu")
                g.manual_seed(s)
                self.generators.append(g)

    def __call__(self, input_ids, scores):
        import torch

        scores = scores.float()
        if self.suppress:
            scores[:, self.suppress] = -float("inf")
        if self.generators is None:
            return scores
        probs = torch.softmax(scores / self.temperature, dim=-1).cpu()
        if self.top_p < 1.0:
            sorted_p, idx = torch.sort(probs, dim=-1, descending=True)
            keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < self.top_p  # always keeps the top token
            sorted_p = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
            probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p)
        chosen = [int(torch.multinomial(probs[r], 1, generator=g)) for r, g in enumerate(self.generators)]
        out = torch.full_like(scores, -float("inf"))
        out[torch.arange(len(chosen)), torch.tensor(chosen)] = 0.0
        return out


# ------------------------------------------------------------------------------ vLLM

_GPU_INSTALL_HINT = "install the GPU extra on a CUDA machine: `pip install .[gpu]` (or `pip install vllm`)"


def check_vllm_available() -> None:
    """Raise :class:`EngineUnavailable` naming what is missing for the vLLM backend."""
    missing = []
    if importlib.util.find_spec("vllm") is None:
        missing.append("the `vllm` package is not installed")
    try:
        import torch

        if not torch.cuda.is_available():
            missing.append(f"no CUDA GPU is visible to torch {torch.__version__} (torch.cuda.is_available() is False)")
    except ImportError:
        missing.append("torch is not installed")
    if missing:
        raise EngineUnavailable(
            "LLM backend 'vllm' is unavailable on this machine: "
            + "; ".join(missing)
            + f". To use it, {_GPU_INSTALL_HINT}; or select backend='transformers' to run on CPU."
        )


class VLLMEngine(LLMEngine):
    """vLLM offline inference (``vllm.LLM``); one engine per GPU worker.

    All prompts of a call go to ``LLM.generate`` at once (vLLM schedules them with continuous
    batching; ``chunk_size`` only bounds how many request outputs are held in memory at a time).
    Extra keyword arguments go to ``vllm.LLM`` unchanged (e.g. ``enable_prefix_caching``);
    ``sampling_overrides`` go to every generation ``SamplingParams`` (e.g. ``repetition_penalty``).
    """

    backend = "vllm"

    def __init__(
        self,
        model: str,
        *,
        model_id: str | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        dtype: str = "auto",
        seed: int = 0,
        use_chat_template: bool | None = None,
        chunk_size: int = 100_000,
        sampling_overrides: dict[str, Any] | None = None,
        **llm_kwargs: Any,
    ) -> None:
        super().__init__(use_chat_template)
        check_vllm_available()
        import vllm  # lazy: importing vllm initialises CUDA machinery

        self._vllm = vllm
        self.model_id = _model_id(model, model_id)
        self.chunk_size = int(chunk_size)
        self.sampling_overrides = dict(sampling_overrides or {})
        self.llm = vllm.LLM(
            model=model,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            dtype=dtype,
            seed=seed,
            **llm_kwargs,
        )
        self._tokenizer = self.llm.get_tokenizer()
        model_config = getattr(self.llm, "model_config", None) or self.llm.llm_engine.model_config
        self.max_model_len = int(model_config.max_model_len)

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def sampling_params(self, sampling: SamplingConfig, max_tokens: int | None = None):
        return self._vllm.SamplingParams(
            max_tokens=max_tokens or sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
            seed=None if sampling.greedy else sampling.seed,
            stop=list(sampling.stop) or None,
            **self.sampling_overrides,
        )

    def _generate_ids(self, prompt_ids, prompts, sampling):
        results: list[Generation] = []
        for start in range(0, len(prompt_ids), self.chunk_size):
            chunk = prompt_ids[start : start + self.chunk_size]
            # Requests whose prompt leaves less room than max_tokens get their own, smaller limit.
            params = [
                self.sampling_params(sampling, max(1, min(sampling.max_tokens, self.max_model_len - len(ids)))) for ids in chunk
            ]
            same = all(p.max_tokens == sampling.max_tokens for p in params)
            outputs = self.llm.generate(
                [{"prompt_token_ids": ids} for ids in chunk],
                params[0] if same else params,
                use_tqdm=False,
            )
            for ids, out in zip(chunk, outputs, strict=True):
                c = out.outputs[0]
                reason: FinishReason = "length" if c.finish_reason == "length" else "stop"
                results.append(Generation(c.text, len(ids), len(c.token_ids), reason))
        return results

    def _prompt_logprobs_ids(self, token_ids):
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        results: list[np.ndarray] = []
        for start in range(0, len(token_ids), self.chunk_size):
            chunk = token_ids[start : start + self.chunk_size]
            outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in chunk], params, use_tqdm=False)
            for ids, out in zip(chunk, outputs, strict=True):
                entries = out.prompt_logprobs or []
                values = np.empty(len(ids) - 1, dtype=np.float32)
                for pos in range(1, len(ids)):
                    entry = entries[pos] if pos < len(entries) else None
                    if not entry or ids[pos] not in entry:
                        raise RuntimeError(f"vLLM returned no prompt log-prob for token {pos} of a sequence")
                    values[pos - 1] = entry[ids[pos]].logprob
                results.append(values)
        return results

    def close(self) -> None:
        self.llm = None  # type: ignore[assignment]


# ------------------------------------------------------------------------------ factory

BACKENDS = ("transformers", "vllm")


def make_engine(backend: str, **config: Any) -> LLMEngine:
    """Build an engine: ``make_engine("transformers", model=path)`` or ``make_engine("vllm", model=...)``."""
    if backend == "transformers":
        return TransformersEngine(**config)
    if backend == "vllm":
        check_vllm_available()  # fail before anything is loaded, with the install hint
        return VLLMEngine(**config)
    raise ValueError(f"LLM engine backend must be one of {BACKENDS}, got {backend!r}")


def hub_offline() -> None:
    """Make every Hugging Face library refuse network access in this process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
