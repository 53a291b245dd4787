"""Resumable shard-by-shard work for long GPU stages (pure planning helpers, no I/O).

A REWIRE or FineInstructions run over one snapshot takes hours of GPU time; a crash (preempted
node, OOM, a killed pod) must not throw away the finished part nor duplicate it. The contract
for a Dagster asset that uses these helpers:

1. **One output shard per input shard.** Input shards are identified by a stable id
   (:func:`shard_id`: the file stem of the upstream shard, e.g. ``part-00042``). The output of
   input shard ``s`` is written under a *work prefix* as ``<table>/<s>.parquet`` for each output
   table (``data``, ``failures``), and nothing else is ever written for ``s``.
2. **The work prefix is keyed by what determines the output**: ``_work/<run_key>/`` inside the
   partition, with ``run_key = work_fingerprint(...)`` over the stage name, the upstream
   partition version (from its manifest), the prompt version, the model id and the sampling/
   parsing config. Changing any of them starts a fresh prefix instead of mixing outputs.
3. **Each file is written atomically** (local: temp file + ``os.replace``; S3: one PUT), and after
   all tables of shard ``s`` are written a marker ``_done/<s>`` is written last. A shard counts as
   done only when its marker exists (:func:`done_shard_ids`), so a crash between two tables of a
   shard redoes that shard and overwrites the same file names: never a duplicate row.
4. **On (re)start** the asset lists the work prefix, calls :func:`plan_resume` and processes only
   ``plan.todo``, in order. With deterministic decoding (greedy, or seeded sampling) a redone
   shard has the same content as the lost one.
5. **Commit** once ``plan.todo`` is empty: read the done shards in ``plan.done`` order (the input
   order), write them into a normal manifest-committed partition version, then delete the work
   prefix. A crash before the commit keeps the previous version readable; a crash after the
   commit but before the cleanup only leaves a work prefix that the next run with the same
   ``run_key`` finds complete.

Markers whose shard is not in the current input (``plan.stale``) come from an older upstream
version; they are ignored and removed at cleanup.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

__all__ = [
    "DONE_DIR",
    "ResumePlan",
    "done_marker_name",
    "done_shard_ids",
    "output_shard_name",
    "plan_resume",
    "remaining_shards",
    "shard_id",
    "work_fingerprint",
]

DONE_DIR = "_done"


def shard_id(key: str) -> str:
    """Stable id of an input shard from its key or path: the file name without ``.parquet``."""
    name = PurePosixPath(str(key).replace("\\", "/")).name
    return name[: -len(".parquet")] if name.endswith(".parquet") else name


def output_shard_name(input_shard_id: str, table: str = "data") -> str:
    """Relative name of the output of ``input_shard_id`` for ``table`` under the work prefix."""
    return f"{table}/{input_shard_id}.parquet"


def done_marker_name(input_shard_id: str) -> str:
    return f"{DONE_DIR}/{input_shard_id}"


def work_fingerprint(**parts: Any) -> str:
    """Key of a work prefix: sha256 (first 16 hex) of the canonical JSON of ``parts``.

    Pass everything that determines the output (stage, upstream version, prompt version, model
    id, sampling and parsing config as dicts); values must be JSON-serialisable (dataclasses are
    converted with ``dataclasses.asdict``).
    """

    def default(o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        if isinstance(o, (set, frozenset)):
            return sorted(o)
        raise TypeError(f"work_fingerprint: {type(o).__name__} is not JSON-serialisable")

    body = json.dumps(parts, sort_keys=True, default=default, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def done_shard_ids(existing: Iterable[str]) -> set[str]:
    """Ids of shards whose done marker is among ``existing`` (names relative to the work prefix,
    e.g. from listing it); data files without a marker do not count."""
    out = set()
    for name in existing:
        p = PurePosixPath(str(name).replace("\\", "/"))
        if len(p.parts) >= 2 and p.parts[-2] == DONE_DIR:
            out.add(p.name)
    return out


def remaining_shards(shard_ids: Sequence[str], done: Iterable[str]) -> list[str]:
    """``shard_ids`` not in ``done``, in their original order, each once."""
    done_set = set(done)
    seen: set[str] = set()
    out = []
    for s in shard_ids:
        if s in done_set or s in seen:
            continue
        seen.add(s)
        out.append(s)
    return out


@dataclasses.dataclass(frozen=True)
class ResumePlan:
    todo: list[str]  # shards to process, input order
    done: list[str]  # finished shards of the current input, input order (commit in this order)
    stale: list[str]  # markers for shards that are not in the current input

    @property
    def complete(self) -> bool:
        return not self.todo

    def metadata(self) -> Mapping[str, int]:
        return {"shards_todo": len(self.todo), "shards_done": len(self.done), "shards_stale": len(self.stale)}


def plan_resume(input_shard_ids: Sequence[str], existing: Iterable[str]) -> ResumePlan:
    """Split the input shards into finished and remaining ones from a listing of the work prefix."""
    if len(set(input_shard_ids)) != len(input_shard_ids):
        dupes = sorted({s for s in input_shard_ids if list(input_shard_ids).count(s) > 1})
        raise ValueError(f"plan_resume: input shard ids must be unique, duplicated: {dupes[:5]}")
    done = done_shard_ids(existing)
    current = set(input_shard_ids)
    return ResumePlan(
        todo=remaining_shards(input_shard_ids, done),
        done=[s for s in input_shard_ids if s in done],
        stale=sorted(done - current),
    )
