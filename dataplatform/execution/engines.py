"""Choosing a shard engine by name: the one place that knows every :class:`ShardExecutor`."""

from __future__ import annotations

from dataplatform.execution.ray_executor import RayShardExecutor
from dataplatform.execution.shard_executor import InlineExecutor, ProcessPoolShardExecutor, ShardExecutor

ENGINES = ("process", "inline", "ray")


def make_executor(kind: str = "process", max_workers: int | None = None, *, ray_address: str | None = None) -> ShardExecutor:
    """``inline``, ``process`` (pool of ``max_workers``) or ``ray`` (``ray_address``; ``max_workers``
    is the CPUs of a local Ray instance, or this map's share of a cluster). Ray itself is imported
    only when a ``ray`` executor maps its first task."""
    if kind == "inline":
        return InlineExecutor()
    if kind == "process":
        return ProcessPoolShardExecutor(max_workers)
    if kind == "ray":
        return RayShardExecutor(address=ray_address, num_cpus=max_workers)
    raise ValueError(f"executor kind must be one of {', '.join(repr(e) for e in ENGINES)}, got {kind!r}")
