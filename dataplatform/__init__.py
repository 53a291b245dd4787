"""dataplatform: web-crawl snapshots to LLM pre-training data, orchestrated as Dagster assets."""

__version__ = "0.2.0"
