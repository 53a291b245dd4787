"""VLLMEngine's plumbing against a stand-in ``vllm`` module (no GPU here): request building,
per-request token limits, order, finish reasons and prompt-logprob extraction."""

import importlib.machinery
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

from dataplatform.llm.engine import SamplingConfig, make_engine


@pytest.fixture
def fake_vllm(monkeypatch, tiny_model_dir):
    from transformers import AutoTokenizer

    mod = types.ModuleType("vllm")
    mod.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    created = {}

    class SamplingParams:
        def __init__(self, max_tokens=16, temperature=1.0, top_p=1.0, seed=None, stop=None, prompt_logprobs=None, **extra):
            self.max_tokens, self.temperature, self.top_p, self.seed = max_tokens, temperature, top_p, seed
            self.stop, self.prompt_logprobs, self.extra = stop, prompt_logprobs, extra

    class LLM:
        def __init__(self, model, **kwargs):
            created["kwargs"] = kwargs
            self._tok = AutoTokenizer.from_pretrained(model)
            self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=kwargs["max_model_len"] or 128))
            self.requests = []

        def get_tokenizer(self):
            return self._tok

        def generate(self, prompts, params, use_tqdm=True):
            assert use_tqdm is False
            params = params if isinstance(params, list) else [params] * len(prompts)
            outs = []
            for prompt, p in zip(prompts, params):
                ids = prompt["prompt_token_ids"]
                self.requests.append((len(ids), p))
                n = min(p.max_tokens, 5)
                plp = None
                if p.prompt_logprobs is not None:
                    plp = [None] + [{ids[i]: SimpleNamespace(logprob=-0.5 * i)} for i in range(1, len(ids))]
                outs.append(
                    SimpleNamespace(
                        prompt_token_ids=ids,
                        prompt_logprobs=plp,
                        outputs=[
                            SimpleNamespace(
                                text=f"out{len(ids)}",
                                token_ids=list(range(n)),
                                finish_reason="length" if n == p.max_tokens else "stop",
                            )
                        ],
                    )
                )
            return outs

    mod.LLM, mod.SamplingParams = LLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", mod)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return created


def test_vllm_engine_generate_and_logprobs_plumbing(fake_vllm, tiny_model_dir):
    engine = make_engine(
        "vllm",
        model=str(tiny_model_dir),
        max_model_len=128,
        gpu_memory_utilization=0.5,
        tensor_parallel_size=1,
        seed=3,
        sampling_overrides={"repetition_penalty": 1.1},
    )
    assert fake_vllm["kwargs"]["gpu_memory_utilization"] == 0.5 and fake_vllm["kwargs"]["seed"] == 3
    assert engine.model_id == tiny_model_dir.name and engine.max_model_len == 128
    prompts = ["short", "a somewhat longer prompt " * 2, "word " * 300]
    gens = engine.generate(prompts, SamplingConfig(max_tokens=30, temperature=0.7, top_p=0.9, seed=5, stop=("[/X]",)))
    ids = engine.encode_prompts(prompts)
    assert gens[2].finish_reason == "prompt_too_long" and gens[2].n_generated_tokens == 0
    for g, i in zip(gens[:2], ids[:2]):
        assert g.text == f"out{len(i)}" and g.n_prompt_tokens == len(i) and g.finish_reason == "stop"
    sent = engine.llm.requests
    assert len(sent) == 2  # the over-long prompt never reaches vLLM
    for n_prompt, p in sent:
        assert p.max_tokens == min(30, 128 - n_prompt) and p.seed == 5 and p.stop == ["[/X]"]
        assert (p.temperature, p.top_p) == (0.7, 0.9)  # the paper's sampling reaches vLLM
        assert p.extra == {"repetition_penalty": 1.1}
    # greedy: no seed, top_p neutral; a budget that runs out is "length"
    g = engine.generate(["short"], SamplingConfig(max_tokens=3))[0]
    assert g.finish_reason == "length" and engine.llm.requests[-1][1].seed is None

    texts = ["hello world again", "x"]
    lps = engine.prompt_logprobs(texts)
    n = len(engine.tokenizer(texts[0])["input_ids"])
    np.testing.assert_allclose(lps[0], -0.5 * np.arange(1, n), rtol=1e-6)
    assert lps[1].shape == (len(engine.tokenizer("x")["input_ids"]) - 1,)
    assert engine.llm.requests[-1][1].prompt_logprobs == 0 and engine.llm.requests[-1][1].max_tokens == 1
    # a judge's constrained choice runs on vLLM through the prompt log-probs
    choices = engine.score_continuations(["rate it"], ["4", "5"], response_prefix="Rating: ")
    ids = engine.encode_prompts(["rate it"], "Rating: ")[0]
    for j, option in enumerate(["4", "5"]):
        c = engine.tokenizer(option, add_special_tokens=False)["input_ids"]
        assert choices[0, j] == pytest.approx(sum(-0.5 * i for i in range(len(ids), len(ids) + len(c))))
