"""Map a picklable function over shards: in this process, in a process pool, or on Ray.

Results come back in input order. A task that raises fails the whole map with the shard named:
per-record problems are handled inside the task (quarantine), so an exception here is an
infrastructure or programming error that must not be papered over.
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class ShardTaskError(RuntimeError):
    pass


class ShardExecutor(abc.ABC):
    @abc.abstractmethod
    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> Iterator[R]: ...

    def describe(self) -> str:
        return type(self).__name__


class InlineExecutor(ShardExecutor):
    def map(self, fn, tasks):
        for task in tasks:
            yield fn(task)

    def describe(self) -> str:
        return "inline"


class ProcessPoolShardExecutor(ShardExecutor):
    """A process pool per map call. ``spawn`` start method: safe under Dagster's threads and grpc."""

    def __init__(self, max_workers: int | None = None, start_method: str = "spawn") -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers or os.cpu_count() or 1
        self.start_method = start_method

    def map(self, fn, tasks):
        tasks = list(tasks)
        if len(tasks) <= 1 or self.max_workers == 1:
            yield from InlineExecutor().map(fn, tasks)
            return
        ctx = multiprocessing.get_context(self.start_method)
        with cf.ProcessPoolExecutor(max_workers=min(self.max_workers, len(tasks)), mp_context=ctx) as pool:
            futures = [pool.submit(fn, task) for task in tasks]
            try:
                for task, future in zip(tasks, futures):
                    try:
                        yield future.result()
                    except Exception as exc:
                        raise ShardTaskError(f"shard task failed: {task!r}: {exc}") from exc
            finally:
                for future in futures:
                    future.cancel()

    def describe(self) -> str:
        return f"process pool ({self.max_workers} workers)"


def make_executor(
    kind: str = "process", max_workers: int | None = None, *, ray_address: str | None = None
) -> ShardExecutor:
    """``inline``, ``process`` (pool of ``max_workers``) or ``ray`` (``ray_address``; ``max_workers``
    is the CPUs of a local Ray instance, or this map's share of a cluster). Ray is imported only
    when a ``ray`` executor maps its first task."""
    if kind == "inline":
        return InlineExecutor()
    if kind == "process":
        return ProcessPoolShardExecutor(max_workers)
    if kind == "ray":
        from dataplatform.execution.ray_executor import RayShardExecutor

        return RayShardExecutor(address=ray_address, num_cpus=max_workers)
    raise ValueError(f"executor kind must be 'inline', 'process' or 'ray', got {kind!r}")
