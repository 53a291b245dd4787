"""Core of the GPU synthesis stages (REWIRE rewriting, FineInstructions pairs, Min-K% Prob audit).

Pure functions over Polars frames plus an :class:`dataplatform.llm.engine.LLMEngine`; no Dagster.
"""
