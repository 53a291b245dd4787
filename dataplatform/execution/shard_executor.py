"""Map a picklable function over shards: in this process, in a process pool, or on Ray.

Results come back in input order. A task that raises fails the whole map with the shard named:
per-record problems are handled inside the task (quarantine), so an exception here is an
infrastructure or programming error that must not be papered over.
"""

from __future__ import annotations

import abc
import collections
import concurrent.futures as cf
import ctypes
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class ShardTaskError(RuntimeError):
    pass


class ShardExecutor(abc.ABC):
    """``tasks`` may be any iterable, a generator included: engines take tasks from it as they
    submit them, so a driver need not hold one object per task of a 90k-file snapshot."""

    @abc.abstractmethod
    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]: ...

    def map_isolated(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        """:meth:`map`, but never in the calling process when the engine has others: for a task
        whose peak memory must not stay with the step's driver (a model's training)."""
        return self.map(fn, tasks)

    def describe(self) -> str:
        return type(self).__name__


class InlineExecutor(ShardExecutor):
    def map(self, fn, tasks):
        for task in tasks:
            yield fn(task)

    def describe(self) -> str:
        return "inline"


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent_pid: int) -> None:
    """Pool worker initializer: end this worker when the process that started it dies.

    Workers otherwise finish (or hang in) their current task long after a SIGKILLed driver is gone.
    On Linux the kernel delivers SIGKILL when the parent exits (``PR_SET_PDEATHSIG``); elsewhere, and
    as a backstop for the race between fork and prctl, a daemon thread polls the parent pid.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


# Tasks submitted ahead of the one whose result is awaited, per worker: enough that a slow task does
# not idle the pool while the next ones queue, few enough that waiting results stay small.
IN_FLIGHT_PER_WORKER = 8


def _result(task, future: cf.Future):
    try:
        return future.result()
    except Exception as exc:
        raise ShardTaskError(f"shard task failed: {task!r}: {exc}") from exc


class ProcessPoolShardExecutor(ShardExecutor):
    """A process pool per map call. ``spawn`` start method: safe under Dagster's threads and grpc."""

    def __init__(self, max_workers: int | None = None, start_method: str = "spawn") -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers or os.cpu_count() or 1
        self.start_method = start_method

    def map(self, fn, tasks):
        tasks = iter(tasks)
        head = list(itertools.islice(tasks, 2))
        if len(head) <= 1 or self.max_workers == 1:  # a pool costs ~1-2 s of start-up: not for one task
            return InlineExecutor().map(fn, itertools.chain(head, tasks))
        return self._pool_map(fn, itertools.chain(head, tasks))

    def map_isolated(self, fn, tasks):
        return self._pool_map(fn, tasks)

    def _pool_map(self, fn, tasks):
        """Tasks are taken from ``tasks`` and submitted a window ahead of the one being yielded,
        never all at once: a future keeps its result until it is dropped, so submitting 13k tasks
        up front held every result (shard lists, tallies, examples) in the driver until the map
        ended."""
        tasks = iter(tasks)
        # No more workers than tasks: the first ``max_workers`` tasks tell how many there are.
        head = list(itertools.islice(tasks, self.max_workers))
        if not head:
            return
        ctx = multiprocessing.get_context(self.start_method)
        window = IN_FLIGHT_PER_WORKER * self.max_workers
        pending: collections.deque = collections.deque()
        with cf.ProcessPoolExecutor(
            max_workers=len(head), mp_context=ctx, initializer=_die_with_parent, initargs=(os.getpid(),)
        ) as pool:
            try:
                for task in itertools.chain(head, tasks):
                    pending.append((task, pool.submit(fn, task)))
                    if len(pending) >= window:
                        yield _result(*pending.popleft())
                while pending:
                    yield _result(*pending.popleft())
            finally:
                for _, future in pending:
                    future.cancel()

    def describe(self) -> str:
        return f"process pool ({self.max_workers} workers)"
