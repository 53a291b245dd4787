"""The one skeleton every stage runs on: shard tasks fanned out, completion recorded, results
merged into one :class:`StageReport`, the partition committed.

A stage module holds only what is specific to it: its task dataclass (picklable, one per shard),
the task function (``task -> TaskResult``; data goes straight to storage, a small summary comes
back) and the metadata only it knows. :class:`StageRun` owns the rest::

    with StageRun(store, names.FILTERED, snapshot, executor, config=options, upstream=...) as run:
        run.declare(names.DATA, FILTERED_SCHEMA)
        run.map("filter", run_filter_task, [FilterTask(i, ...) for i, key in enumerate(keys)])
        report = run.commit(extra={...})

**Up to date.** A partition whose committed version has the same fingerprint is not rebuilt: the
stage returns the committed report (``run.up_to_date``), so re-running a finished or half-finished
pipeline redoes only what was not finished. ``DATAPLATFORM_REBUILD=1`` (or ``rebuild=True``) forces
a rebuild.

**Resume inside a partition.** Each finished task writes a completion record (its
:class:`TaskResult`, shards included) into the materialization's version prefix, from the worker
that ran it. The version is keyed by a fingerprint of the stage, its configuration and the
versions of its inputs; re-running the same partition with the same fingerprint after a crash, a
kill or a failed step reopens that version, skips every task with a record and runs the rest, so
the output is byte-identical to an uninterrupted run. A changed configuration or input starts a
fresh version (see ``dataplatform.io.datasets`` for the commit protocol).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import PurePath
from typing import Any

import pyarrow as pa

import dataplatform
from dataplatform import names
from dataplatform.execution.shard_executor import ShardExecutor
from dataplatform.io.datasets import DatasetStore, PartitionWriter, ShardInfo
from dataplatform.io.object_store import StoreLocation

ProgressSink = Callable[[str], None]
EXAMPLES_PER_REASON = 3
# Set (to 1) to rebuild partitions that are up to date instead of reporting the committed version.
REBUILD_ENV = "DATAPLATFORM_REBUILD"


def add_counts(into: dict[str, int], counts: Mapping[str, int]) -> None:
    """Add ``counts`` into ``into`` key by key, skipping zeros."""
    for key, value in counts.items():
        if value:
            into[key] = into.get(key, 0) + value


# ------------------------------------------------------------------------------------------ tasks
@dataclasses.dataclass(frozen=True)
class ShardTask:
    """Base of every stage's task: ``index`` is the shard it works on, stable across runs (output
    shard ``i`` of a stage comes from input shard ``i``, so shards line up across stages)."""

    index: int

    @property
    def task_id(self) -> str:
        return f"part-{self.index:05d}"


class TaskList(Sequence):
    """A stage's tasks, each built when it is needed from its input (``make(index, input)``):
    the driver keeps the inputs (shard keys), not one task object per shard of a 90k-file
    snapshot, since :meth:`StageRun.map` reads the ids first and the engine builds each task's
    call as it submits it. ``make`` must be deterministic (a task is built more than once)."""

    def __init__(self, inputs: Sequence[Any], make: Callable[[int, Any], ShardTask]) -> None:
        self.inputs, self.make = inputs, make

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return self.make(i, self.inputs[i])


@dataclasses.dataclass
class TaskResult:
    """What one shard task reports back. Everything here is summed (or, for ``examples``, capped)
    across tasks by :meth:`StageReport.add`; ``payload`` carries stage-specific JSON values."""

    shards: list[ShardInfo] = dataclasses.field(default_factory=list)
    rows_in: int = 0
    rows_out: int = 0
    bytes_in: int = 0
    drop_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    routed: dict[str, int] = dataclasses.field(default_factory=dict)
    counters: dict[str, int] = dataclasses.field(default_factory=dict)
    tallies: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    examples: dict[str, list[dict[str, str]]] = dataclasses.field(default_factory=dict)
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)
    cpu_seconds: float = 0.0

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | Mapping[str, Any]) -> TaskResult:
        data = dict(json.loads(raw) if isinstance(raw, bytes) else raw)
        data["shards"] = [ShardInfo(**s) for s in data.get("shards", [])]
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class RecordedCall:
    """Runs one task in a worker and writes its completion record there, so a task that finished
    counts as finished even when the driver dies before collecting it."""

    fn: Callable[[Any], TaskResult]
    task: Any
    location: StoreLocation
    record_key: str


def run_recorded(call: RecordedCall) -> TaskResult:
    started = time.process_time()
    result = call.fn(call.task)
    # CPU time of the worker on this task (the data for per-core throughput and cost projections).
    result.cpu_seconds = round(time.process_time() - started, 4)
    call.location.open().put_bytes(call.record_key, result.to_json())
    return result


# ----------------------------------------------------------------------------------------- report
@dataclasses.dataclass
class StageReport:
    """What one stage did to one partition; becomes Dagster metadata and the CLI summary.

    Rows add up: ``rows_in = rows_out + dropped + sum(routed)``, where ``routed`` counts rows the
    stage handed to another table on purpose (e.g. the REWIRE pool), not dropped.
    """

    stage: str
    partition: str
    rows_in: int = 0
    rows_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    shards: int = 0
    wall_seconds: float = 0.0
    drop_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    routed: dict[str, int] = dataclasses.field(default_factory=dict)
    counters: dict[str, int] = dataclasses.field(default_factory=dict)
    tallies: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    examples: dict[str, list[dict[str, str]]] = dataclasses.field(default_factory=dict)
    tasks_resumed: int = 0
    task_cpu_seconds: float = 0.0
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return sum(self.drop_counts.values())

    def add(self, result: TaskResult, output_table: str = names.DATA) -> None:
        self.rows_in += result.rows_in
        self.rows_out += result.rows_out
        self.bytes_in += result.bytes_in
        self.bytes_out += sum(s.bytes for s in result.shards if s.table == output_table)
        add_counts(self.drop_counts, result.drop_counts)
        add_counts(self.routed, result.routed)
        add_counts(self.counters, result.counters)
        for name, tally in result.tallies.items():
            add_counts(self.tallies.setdefault(name, {}), tally)
        for reason, items in result.examples.items():
            bucket = self.examples.setdefault(reason, [])
            bucket.extend(items[: EXAMPLES_PER_REASON - len(bucket)])

    @classmethod
    def from_metadata(cls, stage: str, partition: str, metadata: Mapping[str, Any]) -> StageReport:
        """The report of a committed materialization, from its manifest metadata."""
        known = {
            "rows_in",
            "rows_out",
            "rows_dropped",
            "rows_routed",
            "bytes_in",
            "bytes_out",
            "shards",
            "shards_resumed",
            "wall_seconds",
            "task_cpu_seconds",
            "drop_counts",
            "drop_examples",
        }
        return cls(
            stage,
            partition,
            rows_in=metadata.get("rows_in", 0),
            rows_out=metadata.get("rows_out", 0),
            bytes_in=metadata.get("bytes_in", 0),
            bytes_out=metadata.get("bytes_out", 0),
            shards=metadata.get("shards", 0),
            wall_seconds=metadata.get("wall_seconds", 0.0),
            drop_counts=dict(metadata.get("drop_counts", {})),
            routed=dict(metadata.get("rows_routed", {})),
            examples=dict(metadata.get("drop_examples", {})),
            tasks_resumed=metadata.get("shards_resumed", 0),
            task_cpu_seconds=metadata.get("task_cpu_seconds", 0.0),
            extra={k: v for k, v in metadata.items() if k not in known},
        )

    def as_metadata(self) -> dict[str, Any]:
        metadata = {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_dropped": self.dropped,
            "rows_routed": dict(sorted(self.routed.items())),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "shards": self.shards,
            "shards_resumed": self.tasks_resumed,
            "wall_seconds": round(self.wall_seconds, 3),
            "task_cpu_seconds": round(self.task_cpu_seconds, 3),
            "drop_counts": dict(sorted(self.drop_counts.items())),
            **self.counters,
            **{name: dict(sorted(tally.items())) for name, tally in self.tallies.items()},
        }
        if self.examples:
            metadata["drop_examples"] = self.examples
        return {**metadata, **self.extra}


# ------------------------------------------------------------------------------------ fingerprint
def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__, **{k: _canonical(v) for k, v in dataclasses.asdict(value).items()}}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_canonical(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"fingerprint: {type(value).__name__} is not a configuration value (use dataclasses and plain values)")


def fingerprint(**parts: Any) -> str:
    """sha256 (first 24 hex) of the canonical JSON of ``parts`` plus the package version: the key
    under which an unfinished materialization may be resumed."""
    body = json.dumps({"code": dataplatform.__version__, **_canonical(parts)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:24]


def upstream_versions(store: DatasetStore, inputs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``{"asset/partition": committed version}`` of a stage's inputs, for its fingerprint."""
    return {f"{asset}/{partition}": store.require_manifest(asset, partition)["version"] for asset, partition in inputs}


# --------------------------------------------------------------------------------------- the run
class StageRun:
    """One materialization of one stage's partition. See the module docstring."""

    def __init__(
        self,
        store: DatasetStore,
        asset: str,
        partition: str,
        executor: ShardExecutor | None = None,
        *,
        config: Any = None,
        upstream: Mapping[str, str] | None = None,
        progress: ProgressSink | None = None,
        stage: str | None = None,
        rebuild: bool | None = None,
    ) -> None:
        self.store, self.asset, self.partition, self.executor = store, asset, partition, executor
        self.fingerprint = fingerprint(asset=asset, partition=partition, config=config, upstream=dict(upstream or {}))
        self.progress = progress
        self.rebuild = rebuild if rebuild is not None else os.environ.get(REBUILD_ENV, "") not in ("", "0", "false")
        self.report = StageReport(stage or asset, partition)
        self.up_to_date = False
        self.phases_resumed: dict[str, int] = {}  # phase -> tasks skipped because a record said done
        self._started = 0.0
        self._context = None
        self.writer: PartitionWriter

    def __enter__(self) -> StageRun:
        """Open the materialization; when the committed version already has this fingerprint (same
        stage, configuration and inputs) nothing is opened and ``up_to_date`` is set: the stage
        returns ``report`` (the committed one) instead of redoing finished work."""
        self._started = time.perf_counter()
        current = self.store.manifest(self.asset, self.partition)
        if not self.rebuild and current is not None and current.get("fingerprint") == self.fingerprint:
            self.up_to_date = True
            self.report = StageReport.from_metadata(self.report.stage, self.partition, current["metadata"])
            self.report.extra["up_to_date"] = True
            if self.progress:
                self.progress(f"{self.report.stage} {self.partition}: up to date (version {current['version']}), nothing to do")
            return self
        self._context = self.store.write_partition(self.asset, self.partition, fingerprint=self.fingerprint)
        self.writer = self._context.__enter__()
        if self.writer.resumed and self.progress:
            self.progress(f"{self.report.stage} {self.partition}: resuming version {self.writer.version}")
        return self

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        return self._context.__exit__(exc_type, exc, tb) if self._context is not None else None

    @property
    def prefix(self) -> str:
        return self.writer.prefix

    @property
    def location(self) -> StoreLocation:
        return self.store.location

    def declare(self, table: str, schema: pa.Schema) -> None:
        self.writer.declare_table(table, schema)

    def shard_key(self, index: int, table: str = names.DATA) -> str:
        return self.writer.shard_key(index, table)

    def work_key(self, name: str) -> str:
        return self.writer.work_key(name)

    def map(
        self,
        phase: str,
        fn: Callable[[Any], TaskResult],
        tasks: Sequence[ShardTask],
        *,
        collect: bool = True,
        output_table: str = names.DATA,
        isolated: bool = False,
        fold: Callable[[TaskResult], Any] | None = None,
    ) -> list[Any]:
        """Run ``fn`` over ``tasks`` (skipping those recorded as done); results in task order.

        With ``collect`` the results' shards join the partition and their counts the report;
        phases that only produce intermediate files pass ``collect=False``. ``isolated`` tasks
        never run in the driver's process (see :meth:`ShardExecutor.map_isolated`).

        Each result is handled as it arrives, in task order, so the driver holds what the
        returned results keep, not every task's full report: with ``collect`` their tallies and
        examples are folded into the report and dropped; ``fold`` may slim each result further
        (e.g. merge a histogram into the caller's own and drop it from the payload) or return
        only what the caller needs (its value is what the list holds). A phase
        whose caller needs nothing back uses :meth:`map_into_report`, which keeps no result.
        """
        return list(self._results(phase, fn, tasks, collect, output_table, isolated, fold))

    def map_into_report(
        self, phase: str, fn: Callable[[Any], TaskResult], tasks: Sequence[ShardTask], *, output_table: str = names.DATA
    ) -> None:
        """:meth:`map` with ``collect`` for a phase whose results matter only through the
        partition and the report: each result is dropped once its shards and counts are taken,
        so the driver keeps nothing per task beyond the shard list the commit needs (a kept
        result was ~1-3 KB of driver memory per task, ~100 MB over a 90k-file snapshot)."""
        for _ in self._results(phase, fn, tasks, True, output_table, False, None):
            pass

    def _results(
        self,
        phase: str,
        fn: Callable[[Any], TaskResult],
        tasks: Sequence[ShardTask],
        collect: bool,
        output_table: str,
        isolated: bool,
        fold: Callable[[TaskResult], Any] | None,
    ) -> Iterator[Any]:
        if self.executor is None:
            raise RuntimeError(f"StageRun({self.asset}) was opened without an executor")
        ids = [t.task_id for t in tasks]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{self.asset} phase {phase!r}: task ids must be unique")
        self.writer.touch()
        done = self.writer.completed_ids(phase) & set(ids)
        self.phases_resumed[phase] = len(done)
        # A generator: the engine builds each call as it submits it (see :class:`TaskList`).
        calls = (
            RecordedCall(fn, t, self.location, self.writer.progress_key(phase, t.task_id)) for t in tasks if t.task_id not in done
        )
        ticker = _Ticker(self.progress, f"{self.report.stage} {self.partition} [{phase}]", len(tasks), len(done))
        fresh = iter((self.executor.map_isolated if isolated else self.executor.map)(run_recorded, calls))
        if collect:
            self.report.tasks_resumed += len(done)
            self.report.shards += len(tasks)
        for tid in ids:
            if tid in done:
                result = TaskResult.from_json(self.writer.read_record(phase, tid))
            else:
                result = next(fresh)
                ticker.tick(result.rows_in)
            self.report.task_cpu_seconds += result.cpu_seconds  # every phase's work counts
            if collect:
                for shard in result.shards:
                    self.writer.add(shard)
                self.report.add(result, output_table)
                result = dataclasses.replace(result, tallies={}, examples={})
            yield fold(result) if fold else result

    def add_shard(self, shard: ShardInfo, output_table: str = names.DATA) -> None:
        """A shard written by the driver itself (small tables)."""
        self.writer.add(shard)
        if shard.table == output_table:
            self.report.bytes_out += shard.bytes

    def write_table(self, table: str, data: pa.Table, index: int = 0) -> ShardInfo:
        info = self.writer.write_table(table, data, index)
        if table == names.DATA:
            self.report.bytes_out += info.bytes
        self.report.shards = max(self.report.shards, 1)
        return info

    def commit(self, extra: Mapping[str, Any] | None = None) -> StageReport:
        """Finish the report (wall time, docs/s, MB/s) and publish the partition with it as metadata."""
        report = self.report
        report.wall_seconds = time.perf_counter() - self._started
        seconds = max(report.wall_seconds, 1e-9)
        report.extra["docs_per_s"] = round(report.rows_in / seconds, 1)
        if report.bytes_in:
            report.extra["input_mb_per_s"] = round(report.bytes_in / 1e6 / seconds, 2)
        if self.executor is not None:
            report.extra["engine"] = self.executor.describe()
        report.extra.update(extra or {})
        self.writer.commit(report.as_metadata())
        return report


class _Ticker:
    """Progress lines: shards done / total, docs/s, ETA; at most one every few seconds."""

    def __init__(self, sink: ProgressSink | None, label: str, total: int, done: int, every_s: float = 5.0) -> None:
        self.sink, self.label, self.total, self.done, self.every_s = sink, label, total, done, every_s
        self.started = self.last = time.perf_counter()
        self.rows = 0
        self.computed = 0
        if sink and done:
            sink(f"{label}: {done}/{total} shards already done, resuming")

    def tick(self, rows: int) -> None:
        self.done += 1
        self.computed += 1
        self.rows += rows
        now = time.perf_counter()
        if not self.sink or (now - self.last < self.every_s and self.done < self.total):
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        eta = (self.total - self.done) * elapsed / self.computed
        self.sink(f"{self.label}: {self.done}/{self.total} shards, {self.rows / elapsed:.0f} docs/s, ETA {eta:.0f}s")
