"""Batch LLM inference behind one interface (vLLM on GPUs, transformers on CPU). No Dagster."""

from dataplatform.llm.engine import (
    EngineUnavailable,
    Generation,
    LLMEngine,
    SamplingConfig,
    TransformersEngine,
    VLLMEngine,
    make_engine,
    plan_batches,
)

__all__ = [
    "EngineUnavailable",
    "Generation",
    "LLMEngine",
    "SamplingConfig",
    "TransformersEngine",
    "VLLMEngine",
    "make_engine",
    "plan_batches",
]
