"""The LLM engine resource: vLLM on a GPU in production, Hugging Face transformers on CPU elsewhere.

Both backends sit behind ``dataplatform.llm.LLMEngine`` (batched ``generate`` and
``prompt_logprobs``). With no ``model_path`` a tiny randomly initialised model is built locally
(deterministic, from the bundled reference text) so the graph runs end to end without a hub
download; its output is gibberish, which exercises the parsers' failure accounting. Point
``model_path`` at a real instruction model (e.g. a Llama-3.x-Instruct checkpoint) for real data.
"""

import functools
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

DEFAULT_TINY_MODEL_DIR = ".dataplatform/models/tiny-causal-lm"


@functools.lru_cache(maxsize=2)
def _engine(backend: str, model: str, **config):
    from dataplatform.llm import make_engine

    return make_engine(backend, model=model, **config)


def ensure_tiny_model(directory: str | Path) -> Path:
    """Build (once) the tiny local causal LM used when no model is configured."""
    from dataplatform.core.quality_classifier import default_positives
    from dataplatform.llm.tiny_model import build_tiny_causal_lm

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        build_tiny_causal_lm(directory, default_positives(), seed=0)
    return directory


class LLMResource(dg.ConfigurableResource):
    backend: Literal["transformers", "vllm"] = Field(default="transformers", description="'vllm' (GPU) or 'transformers' (CPU)")
    model_path: str = Field(default="", description="local Hugging Face model folder; '' = build a tiny local test model")
    tiny_model_dir: str = Field(default=DEFAULT_TINY_MODEL_DIR, description="where the tiny test model is built")
    tensor_parallel_size: int = Field(default=1, ge=1, description="vLLM: GPUs per engine")
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1, description="vLLM: share of GPU memory for the engine")
    max_model_len: int | None = Field(default=None, description="context length; None = the model's")
    dtype: str = Field(default="auto", description="vLLM dtype ('auto', 'bfloat16'); CPU uses float32")
    seed: int = 0
    max_batch_size: int = Field(default=16, ge=1, description="transformers: prompts per forward pass")

    @property
    def is_test_model(self) -> bool:
        """True when no real model is configured and the tiny random model stands in."""
        return not self.model_path

    def model(self) -> str:
        if self.model_path:
            if not Path(self.model_path).exists():
                raise dg.DagsterInvalidConfigError(f"LLMResource.model_path: no model at {self.model_path}", [], None)
            return self.model_path
        return str(ensure_tiny_model(self.tiny_model_dir))

    def engine(self):
        """The engine for this process (built once). vLLM without vllm or a GPU fails naming what is missing."""
        if self.backend == "vllm":
            config = {"tensor_parallel_size": self.tensor_parallel_size, "gpu_memory_utilization": self.gpu_memory_utilization,
                      "dtype": self.dtype, "seed": self.seed}
        else:
            config = {"max_batch_size": self.max_batch_size, "dtype": "float32"}
        if self.max_model_len:
            config["max_model_len"] = self.max_model_len
        return _engine(self.backend, self.model(), **config)
