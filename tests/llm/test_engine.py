import numpy as np
import pytest

from dataplatform.llm.engine import (
    EngineUnavailable,
    Generation,
    SamplingConfig,
    make_engine,
    plan_batches,
)

PROMPTS = [
    "The history of the printing press",
    "To bake bread, mix flour",
    "Photosynthesis",
    "Install the package with pip, then import it in Python and call the main function",
]


def test_tiny_model_loads_with_auto_classes(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert tok.eos_token == "</s>" and tok.pad_token == "<pad>" and tok.bos_token == "<s>"
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tok) <= 600
    ids = tok("hello world")["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.decode(ids, skip_special_tokens=True) == "hello world"
    rendered = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert "hi" in rendered and rendered.endswith("<|assistant|>\n")


def test_tiny_model_build_is_deterministic(tmp_path):
    import hashlib

    from dataplatform.llm.tiny_model import build_tiny_causal_lm

    corpus = ["one two three four five six", "seven eight nine ten eleven"] * 5

    def digest(d):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}

    a = build_tiny_causal_lm(tmp_path / "a", corpus, seed=1, vocab_size=300, hidden_size=32, num_layers=1)
    b = build_tiny_causal_lm(tmp_path / "b", list(reversed(corpus)), seed=1, vocab_size=300, hidden_size=32, num_layers=1)
    assert digest(a) == digest(b)
    with pytest.raises(ValueError, match="corpus_texts is empty"):
        build_tiny_causal_lm(tmp_path / "c", [])


def test_generate_shapes_and_greedy_determinism(tiny_engine):
    sampling = SamplingConfig(max_tokens=12)
    first = tiny_engine.generate(PROMPTS, sampling)
    second = tiny_engine.generate(PROMPTS, sampling)
    assert first == second
    assert len(first) == len(PROMPTS)
    assert all(isinstance(g, Generation) for g in first)
    for g, n_prompt in zip(first, (len(i) for i in tiny_engine.encode_prompts(PROMPTS))):
        assert g.n_prompt_tokens == n_prompt
        assert 1 <= g.n_generated_tokens <= 12
        assert g.finish_reason in ("stop", "length")
        assert isinstance(g.text, str)
    # order is the input order, whatever the length bucketing did
    assert tiny_engine.generate(PROMPTS[::-1], sampling) == first[::-1]
    assert tiny_engine.generate([], sampling) == []


def test_seeded_sampling_is_reproducible_and_batch_independent(tiny_engine):
    s = SamplingConfig(max_tokens=10, temperature=1.0, top_p=0.9, seed=7)
    a = tiny_engine.generate(PROMPTS, s)
    assert a == tiny_engine.generate(PROMPTS, s)
    assert tiny_engine.generate(PROMPTS[2:3], s)[0] == a[2]  # same prompt alone: same sample
    other = tiny_engine.generate(PROMPTS, SamplingConfig(max_tokens=10, temperature=1.0, top_p=0.9, seed=8))
    assert [g.text for g in other] != [g.text for g in a]


def test_stop_strings_and_prompt_too_long(tiny_engine):
    gens = tiny_engine.generate(PROMPTS, SamplingConfig(max_tokens=40, temperature=1.0, seed=0, stop=("e", "a")))
    for g in gens:
        assert "e" not in g.text and "a" not in g.text
    assert any(g.finish_reason == "stop" for g in gens)
    too_long = "word " * 5000
    out = tiny_engine.generate([too_long, "short prompt"], SamplingConfig(max_tokens=4))
    assert out[0].finish_reason == "prompt_too_long" and out[0].text == "" and out[0].n_generated_tokens == 0
    assert out[1].finish_reason in ("stop", "length")


def test_prompt_logprobs_shapes_finite_deterministic(tiny_engine):
    texts = ["The history of the printing press begins", "Photosynthesis is a process", "a", ""]
    lps = tiny_engine.prompt_logprobs(texts)
    n_tokens = [len(ids) for ids in tiny_engine.tokenizer(texts)["input_ids"]]  # includes BOS
    assert [a.shape for a in lps] == [(n - 1,) for n in n_tokens]
    for a in lps:
        assert a.dtype == np.float32 and np.all(np.isfinite(a)) and np.all(a <= 0)
    again = tiny_engine.prompt_logprobs(texts)
    for x, y in zip(lps, again):
        np.testing.assert_array_equal(x, y)
    alone = tiny_engine.prompt_logprobs(texts[1:2])[0]
    np.testing.assert_allclose(alone, lps[1], rtol=1e-4, atol=1e-4)  # padding does not change scores


def test_score_continuations_matches_prompt_logprobs(tiny_engine):
    from dataplatform.llm.engine import LLMEngine

    prompts = ["Rate the answer", "The history of the printing press", "word " * 3000]
    options = ["4", " printing press", " bread"]
    scores = tiny_engine.score_continuations(prompts, options, response_prefix="Rating: ")
    assert scores.shape == (3, 3) and np.isnan(scores[2]).all() and np.all(scores[:2] < 0)
    ids = tiny_engine.encode_prompts(prompts[:2], "Rating: ")
    cont = [tiny_engine.tokenizer(o, add_special_tokens=False)["input_ids"] for o in options]
    # the KV-cache path of the transformers engine equals scoring every full sequence
    np.testing.assert_allclose(scores[:2], LLMEngine._continuation_logprobs_ids(tiny_engine, ids, cont), rtol=1e-4, atol=1e-4)
    full = tiny_engine._prompt_logprobs_ids([ids[1] + cont[1]])[0]
    assert scores[1, 1] == pytest.approx(float(full[-len(cont[1]) :].sum()), abs=1e-4)
    assert tiny_engine.render_prompts(["hi"], "Rating: ")[0].endswith("<|assistant|>\nRating: ")
    assert tiny_engine.score_continuations([], options).shape == (0, 3)
    with pytest.raises(ValueError, match="no tokens"):
        tiny_engine.score_continuations(["x"], [""])


def test_default_model_loads_from_the_wheel_and_chats(default_engine):
    from dataplatform.llm.default_model import DEFAULT_MODEL_ID, default_model_location, is_small_model

    folder, gguf = default_model_location()
    assert (folder / gguf).stat().st_size > 50_000_000 and gguf.endswith(".gguf")
    assert default_engine.model_id == DEFAULT_MODEL_ID and is_small_model(default_engine.model_id)
    assert default_engine.max_model_len == 8192 and default_engine.num_threads == 1
    assert default_engine.render_prompts(["hi"])[0].endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    [g] = default_engine.generate(["What is the capital of France? Answer in one word."], SamplingConfig(max_tokens=8))
    assert "Paris" in g.text and g.n_generated_tokens <= 8


def test_count_tokens_and_chat_rendering(tiny_engine):
    assert tiny_engine.count_tokens(["hello world", ""]) == [
        len(tiny_engine.tokenizer("hello world", add_special_tokens=False)["input_ids"]),
        0,
    ]
    ids = tiny_engine.encode_prompts(["hi"])[0]
    bos = tiny_engine.tokenizer.bos_token_id
    assert ids[0] == bos and ids.count(bos) == 1  # chat template applied, exactly one BOS
    assert tiny_engine.render_prompts(["hi"])[0].startswith("<|user|>")


def test_vllm_unavailable_here_is_a_clear_error():
    pytest.importorskip("torch")
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available():
        pytest.skip("vLLM and a GPU are available here")
    with pytest.raises(EngineUnavailable) as err:
        make_engine("vllm", model="some/model")
    msg = str(err.value)
    assert "vllm" in msg and "pip install .[gpu]" in msg
    assert ("not installed" in msg) or ("CUDA" in msg)


def test_unknown_backend_and_bad_sampling():
    with pytest.raises(ValueError, match="backend must be one of"):
        make_engine("tensorrt", model="x")
    with pytest.raises(ValueError, match="max_tokens"):
        SamplingConfig(max_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0)
    assert SamplingConfig(stop="[/X]").stop == ("[/X]",)


def test_plan_batches_limits_and_order():
    lengths = [5, 50, 7, 50, 1, 30, 8]
    batches = plan_batches(lengths, max_batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) <= 3 for b in batches)
    assert batches[0] == [1, 3, 5]  # longest first, ties by index
    by_tokens = plan_batches(lengths, max_batch_size=10, max_batch_tokens=100, extra_tokens=10)
    for b in by_tokens:
        assert len(b) == 1 or len(b) * (max(lengths[i] for i in b) + 10) <= 100
    assert plan_batches([500], max_batch_size=4, max_batch_tokens=10) == [[0]]  # oversize item alone
    assert plan_batches([], 4) == []
