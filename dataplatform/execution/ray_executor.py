"""Map a picklable function over shards as Ray tasks: a local Ray instance or a Ray cluster.

Same contract as the other :class:`ShardExecutor`\\ s, so a stage (and the asset around it) runs
on a Ray cluster unchanged: results come back in input order, and a task that raises fails the
map with a :class:`ShardTaskError` naming the shard.

Memory stays bounded by shards, not by the snapshot: at most ``max_in_flight`` tasks are submitted
at a time (default: twice the CPUs this map may use), and the next task is submitted only when the
oldest one has been collected. Task results are small summaries (the data goes straight to
storage), so holding the in-flight window costs little on the driver.

Ray is imported lazily (on the first ``map``), so importing this module, building the executor and
loading a code location need no Ray, no cluster and no connection.

Workers must be able to import the task function and its arguments: on a cluster, run the Ray
workers from the same image as the Dagster code location (``dataplatform`` installed), or pass a
``runtime_env``. Task functions must be pure (inputs in, summary out, data to shared storage), so
Ray's retries of tasks whose worker died are safe: a retried shard overwrites the same key inside
the materialization's private version prefix.
"""

from __future__ import annotations

import collections
import importlib.util
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from dataplatform.execution.shard_executor import ShardExecutor, ShardTaskError

_NO_TASK = object()

T = TypeVar("T")
R = TypeVar("R")

RAY_MISSING = "the 'ray' shard engine needs Ray: pip install 'dataplatform[ray]'"


def _apply(fn: Callable[[T], R], task: T) -> R:
    """The one remote function: ``fn`` travels once through the object store, each task by value.
    (``ray.remote`` accepts only plain functions; this also admits builtins, partials, callables.)"""
    return fn(task)


def _import_ray():
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(RAY_MISSING) from exc
    return ray


class RayShardExecutor(ShardExecutor):
    """Run each task as a Ray task.

    ``address``: ``None`` starts (or reuses) a local Ray instance in this process, unless
    ``RAY_ADDRESS`` is set, in which case Ray connects there; ``"auto"`` or ``"ray://host:10001"``
    connects to a running cluster. Ray is initialised only if it is not already.

    ``num_cpus``: CPUs of the local instance when one is started; when connecting to a cluster it
    is this map's share of the cluster (the in-flight window is ``2 * num_cpus``). ``None`` = the
    cluster's CPUs, re-read while the map runs so an autoscaling cluster can grow.

    ``max_in_flight``: explicit cap on submitted-but-not-collected tasks (overrides the 2x rule).
    ``task_options``: passed to ``.options()`` of the remote function (``num_cpus``, ``memory``,
    ``max_retries``, ``resources``, ...).
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        *,
        max_in_flight: int | None = None,
        task_options: Mapping[str, Any] | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if num_cpus is not None and num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1, got {num_cpus}")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if address is not None and not address.strip():
            raise ValueError("address must be None or a Ray address such as 'auto' or 'ray://head:10001'")
        if importlib.util.find_spec("ray") is None:
            raise ImportError(RAY_MISSING)
        self.address = address
        self.num_cpus = num_cpus
        self.max_in_flight = max_in_flight
        self.task_options = dict(task_options or {})
        self.init_kwargs = dict(init_kwargs or {})

    # ----------------------------------------------------------------------------- ray session
    def _ensure_ray(self):
        ray = _import_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": True}
            if self.address is None:
                # Local instance (or RAY_ADDRESS from the environment): no dashboard in a run worker.
                kwargs["include_dashboard"] = False
                if self.num_cpus is not None:
                    kwargs["num_cpus"] = self.num_cpus
            else:
                kwargs["address"] = self.address
            kwargs.update(self.init_kwargs)
            try:
                ray.init(**kwargs)
            except ValueError:
                # RAY_ADDRESS pointed at a cluster: resources cannot be set when connecting.
                kwargs.pop("num_cpus", None)
                kwargs.pop("include_dashboard", None)
                ray.init(**kwargs)
        return ray

    def _window(self, ray) -> int:
        if self.max_in_flight is not None:
            return self.max_in_flight
        cpus = self.num_cpus
        if cpus is None:
            cpus = int(ray.cluster_resources().get("CPU", 0))
        # At least 2, so a cluster whose head has no CPUs still asks its autoscaler for workers.
        return max(2, 2 * cpus)

    # ----------------------------------------------------------------------------------- map
    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        tasks = iter(tasks)
        first = next(tasks, _NO_TASK)
        if first is _NO_TASK:
            return
        tasks = itertools.chain([first], tasks)
        ray = self._ensure_ray()
        remote = ray.remote(_apply)
        fn_ref = ray.put(fn)
        if self.task_options:
            remote = remote.options(**self.task_options)
        pending: collections.deque = collections.deque()

        def fill() -> None:
            window = self._window(ray)
            while len(pending) < window:
                task = next(tasks, _NO_TASK)
                if task is _NO_TASK:
                    return
                pending.append((task, remote.remote(fn_ref, task)))

        try:
            fill()
            while pending:
                task, ref = pending.popleft()
                try:
                    result = ray.get(ref)
                except Exception as exc:  # RayTaskError (wraps the task's exception), worker/node loss
                    cause = getattr(exc, "cause", None) or exc
                    raise ShardTaskError(f"shard task failed: {task!r}: {type(cause).__name__}: {cause}") from exc
                fill()
                yield result
        finally:
            # An error, or a consumer that stopped early: do not leave work running on the cluster.
            for _, ref in pending:
                try:
                    ray.cancel(ref)
                except Exception:
                    pass

    def describe(self) -> str:
        where = self.address or "local"
        cpus = f", {self.num_cpus} CPUs" if self.num_cpus else ""
        return f"ray ({where}{cpus})"
