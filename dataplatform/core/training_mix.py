"""The training mix: documents chosen per source so that *token* shares match target proportions.

Planning (:func:`plan_mix`)
---------------------------
* Every source is a frame with ``doc_id`` and ``n_tokens`` (from :func:`count_tokens`) plus any
  other columns (``text`` ...), which are carried through. Rows with a non-null ``drop_reason``
  are not candidates.
* Each source is put in a **seeded deterministic order**: ascending XXH3-64 of
  ``"mix:<seed>" + "\\0" + doc_id`` (:func:`~dataplatform.core.eval_splits.stable_id_hash`), ties
  by ``doc_id`` then input row. A source contributes the **prefix** of that order whose token
  count is closest to its budget ``proportion x total``. The same seed picks the same documents;
  a larger total extends, never reshuffles, a source's selection. A source with a positive share
  and documents contributes at least one document, even when its budget is closer to zero than
  to its first document's length (small mixes, e.g. a CPU demo with a handful of rewrites).
* ``total_tokens=None``: the **scarcest source bounds the total** - ``total = min(available_s /
  proportion_s)``, so that source is used whole and the others are subsampled. With an explicit
  ``total_tokens`` every source must have its budget available.
* **No upsampling** (repeating documents) is done: repeated web text costs quality (Muennighoff et
  al. 2023 find up to ~4 epochs tolerable, but that is a training decision, not a data one). A
  budget above what a source has is an error that names the source.
* **Missing or empty sources** (named in ``proportions`` with a share > 0 but absent, empty or with
  zero tokens): ``on_missing="error"`` (default; a mix silently different from the configured one
  is worse than a failed run) raises naming them; ``on_missing="redistribute"`` drops them and
  rescales the remaining proportions to sum to 1, recording the names in
  :attr:`MixPlan.redistributed` and the manifest. A source given in ``sources`` but not named in
  ``proportions`` is a configuration error.

Manifest (:func:`build_manifest`)
---------------------------------
Canonical JSON (sorted keys, compact separators, ASCII, trailing newline, no timestamps, no
absolute paths): same plan + config + shard hashes + tokenizer hash = byte-identical manifest.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any, Literal

import numpy as np
import polars as pl

from dataplatform.core.eval_splits import stable_id_hash
from dataplatform.core.tokenizer_utils import count_tokens, load_tokenizer, tokenizer_sha256

__all__ = [
    "MANIFEST_FORMAT",
    "MixPlan",
    "SourceSelection",
    "MixBudget",
    "build_manifest",
    "plan_budgets",
    "count_tokens",
    "load_tokenizer",
    "plan_mix",
    "tokenizer_sha256",
]

MANIFEST_FORMAT = "dataplatform.training_mix/v1"
_TOLERANCE = 1e-9
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ABS_PATH = re.compile(r"^(/|~|[A-Za-z]:[\\/]|\\\\|file:)")


@dataclasses.dataclass(frozen=True)
class SourceSelection:
    name: str
    target_proportion: float
    docs: int
    tokens: int
    available_docs: int
    available_tokens: int
    doc_ids_sha256: str  # sha256 of the selected doc_ids in mix order, "\n"-joined


@dataclasses.dataclass(frozen=True)
class MixPlan:
    """Result of :func:`plan_mix`. ``frames[name]`` holds the chosen rows of each source (all input
    columns) in the seeded mix order; ``sources`` the per-source counts, both sorted by name."""

    sources: dict[str, SourceSelection]
    frames: dict[str, pl.DataFrame]
    requested_proportions: dict[str, float]
    requested_total_tokens: int | None
    target_total_tokens: float
    seed: int
    redistributed: tuple[str, ...]

    @property
    def total_tokens(self) -> int:
        return sum(s.tokens for s in self.sources.values())

    @property
    def total_docs(self) -> int:
        return sum(s.docs for s in self.sources.values())

    @property
    def achieved_proportions(self) -> dict[str, float]:
        total = self.total_tokens
        return {k: (s.tokens / total if total else 0.0) for k, s in self.sources.items()}

    def to_frame(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """All chosen rows with a ``source`` column, sources in name order, each in mix order.
        ``columns`` restricts the carried columns (default: all; differing schemas are unified)."""
        parts = []
        for name, frame in self.frames.items():
            f = frame.select(columns) if columns is not None else frame
            parts.append(f.with_columns(pl.lit(name, dtype=pl.String).alias("source")))
        if not parts:
            return pl.DataFrame({"source": []}, schema={"source": pl.String})
        return pl.concat(parts, how="diagonal_relaxed")


def _validate_proportions(proportions: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(proportions, Mapping) or not proportions:
        raise ValueError(f"proportions must be a non-empty mapping of source -> share, got {proportions!r}")
    out = {}
    for key in sorted(proportions, key=str):
        v = proportions[key]
        if not isinstance(key, str) or not key:
            raise ValueError(f"proportions: source names must be non-empty strings, got {key!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"proportions[{key!r}] must be a finite number >= 0, got {v!r}")
        out[key] = float(v)
    total = math.fsum(out.values())
    if abs(total - 1.0) > _TOLERANCE:
        raise ValueError(f"proportions must sum to 1, got {total!r} from {dict(proportions)!r}")
    return out


def mix_order_hash(doc_ids: pl.Series, seed: int) -> np.ndarray:
    """The key of the seeded mix order (ascending; ties by doc_id, then input row)."""
    return stable_id_hash(doc_ids.cast(pl.String), f"mix:{seed}")


def _prepare(name: str, frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    for col in ("doc_id", "n_tokens"):
        if col not in frame.columns:
            raise ValueError(f"source {name!r} needs a {col!r} column (have {frame.columns})")
    if "drop_reason" in frame.columns:
        frame = frame.filter(pl.col("drop_reason").is_null())
    if frame["doc_id"].null_count():
        raise ValueError(f"source {name!r}: doc_id has nulls")
    if not frame["n_tokens"].dtype.is_integer():
        raise ValueError(f"source {name!r}: n_tokens must be an integer column, got {frame['n_tokens'].dtype}")
    if frame["n_tokens"].null_count() or (frame.height and frame["n_tokens"].min() < 0):
        raise ValueError(f"source {name!r}: n_tokens must be non-null and >= 0")
    key = mix_order_hash(frame["doc_id"], seed)
    return (
        frame.with_columns(pl.Series("__h", key, dtype=pl.UInt64), pl.int_range(pl.len(), dtype=pl.Int64).alias("__row"))
        .sort(["__h", "doc_id", "__row"])
        .drop("__h", "__row")
    )


def closest_prefix(tokens: np.ndarray, budget: float) -> int:
    """Length ``k`` of the prefix whose token sum is closest to ``budget`` (ties: the longer)."""
    cum = np.zeros(len(tokens) + 1, dtype=np.int64)
    np.cumsum(tokens, out=cum[1:])
    j = int(np.searchsorted(cum, budget, side="left"))
    if j > len(tokens):
        return len(tokens)
    if j == 0:
        return 0
    return j if (cum[j] - budget) <= (budget - cum[j - 1]) else j - 1


def ids_digest(ids: pl.Series) -> str:
    return hashlib.sha256("\n".join(ids.cast(pl.String).to_list()).encode("utf-8")).hexdigest()


def _check_total_and_missing(total_tokens: int | None, on_missing: str) -> None:
    if on_missing not in ("error", "redistribute"):
        raise ValueError(f"on_missing must be 'error' or 'redistribute', got {on_missing!r}")
    if total_tokens is not None and (isinstance(total_tokens, bool) or not isinstance(total_tokens, int) or total_tokens < 0):
        raise ValueError(f"total_tokens must be a non-negative integer or None, got {total_tokens!r}")


@dataclasses.dataclass(frozen=True)
class MixBudget:
    """What :func:`plan_budgets` decides: the validated proportions, the shares after missing
    sources were redistributed, the total token count aimed at, and the missing sources."""

    requested: dict[str, float]
    target: dict[str, float]
    total: float
    missing: tuple[str, ...]


def plan_budgets(
    available: Mapping[str, int],
    proportions: Mapping[str, float],
    *,
    total_tokens: int | None = None,
    on_missing: Literal["error", "redistribute"] = "error",
) -> MixBudget:
    """Each source's share of the total and the total, from the sources' available tokens
    (``available``: source -> tokens; absent = not materialized), by the rules of the module
    docstring. Counts only: a sharded mix decides its budgets without holding a row."""
    requested = _validate_proportions(proportions)
    _check_total_and_missing(total_tokens, on_missing)

    missing = sorted(n for n, p in requested.items() if p > 0 and available.get(n, 0) == 0)
    target = dict(requested)
    if missing:
        if on_missing == "error":
            raise ValueError(
                f"sources {missing} are missing or have no tokens but have proportions "
                f"{ {m: requested[m] for m in missing} }; provide them or use on_missing='redistribute'"
            )
        rest = math.fsum(p for n, p in requested.items() if n not in missing)
        if rest <= 0:
            raise ValueError(f"every source with a positive proportion is missing or empty: {missing}")
        target = {n: (0.0 if n in missing else p / rest) for n, p in requested.items()}

    active = {n: p for n, p in target.items() if p > 0}
    if total_tokens is None:
        total = min(available[n] / p for n, p in active.items())
    else:
        total = float(total_tokens)
        short = {n: (p * total, available.get(n, 0)) for n, p in active.items() if p * total > available.get(n, 0) * (1 + 1e-12)}
        if short:
            detail = ", ".join(f"{n!r} needs {need:.0f} tokens, has {have}" for n, (need, have) in sorted(short.items()))
            raise ValueError(
                f"total_tokens={total_tokens} cannot be met without upsampling, which is not done: {detail}; "
                "lower total_tokens or use total_tokens=None"
            )
    return MixBudget(requested, target, total, tuple(missing))


def plan_mix(
    sources: Mapping[str, pl.DataFrame],
    proportions: Mapping[str, float],
    *,
    total_tokens: int | None = None,
    seed: int = 0,
    on_missing: Literal["error", "redistribute"] = "error",
) -> MixPlan:
    """Choose documents per source so that token shares match ``proportions`` (see the module
    docstring for ordering, the total, upsampling and missing sources)."""
    _validate_proportions(proportions)
    _check_total_and_missing(total_tokens, on_missing)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    unknown = sorted(set(sources) - set(proportions))
    if unknown:
        raise ValueError(f"sources {unknown} have no entry in proportions (give them 0.0 to leave them out)")
    prepared = {name: _prepare(name, sources[name], seed) for name in sorted(proportions) if name in sources}
    available = {name: int(f["n_tokens"].sum()) if f.height else 0 for name, f in prepared.items()}
    budget = plan_budgets(available, proportions, total_tokens=total_tokens, on_missing=on_missing)
    target, total = budget.target, budget.total

    selections: dict[str, SourceSelection] = {}
    frames: dict[str, pl.DataFrame] = {}
    for name in sorted(target):
        frame = prepared.get(name)
        if frame is None:
            frame = pl.DataFrame({"doc_id": [], "n_tokens": []}, schema={"doc_id": pl.String, "n_tokens": pl.Int64})
        p = target[name]
        k = closest_prefix(frame["n_tokens"].to_numpy().astype(np.int64), p * total) if p > 0 else 0
        if p > 0 and k == 0 and frame.height:
            k = 1  # a source with a share is never rounded out of the mix (one long document vs a small budget)
        chosen = frame.head(k)
        frames[name] = chosen
        selections[name] = SourceSelection(
            name=name,
            target_proportion=p,
            docs=chosen.height,
            tokens=int(chosen["n_tokens"].sum()) if chosen.height else 0,
            available_docs=frame.height,
            available_tokens=available.get(name, 0),
            doc_ids_sha256=ids_digest(chosen["doc_id"]),
        )
    return MixPlan(
        sources=selections,
        frames=frames,
        requested_proportions=budget.requested,
        requested_total_tokens=total_tokens,
        target_total_tokens=total,
        seed=seed,
        redistributed=budget.missing,
    )


def _canonical(value: Any, where: str) -> Any:
    """JSON-ready copy of a config value; refuses timestamps, absolute paths and odd types."""
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str) and _ABS_PATH.match(value):
            raise ValueError(f"config{where} looks like an absolute path ({value!r}); manifests hold no absolute paths")
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise ValueError(f"config{where} is not a finite number: {value!r}")
        return float(value)
    if isinstance(value, PurePath):
        if value.is_absolute():
            raise ValueError(f"config{where} is an absolute path ({value}); manifests hold no absolute paths")
        return value.as_posix()
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        raise ValueError(f"config{where} is a timestamp ({value!r}); manifests hold no timestamps")
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"config{where}: keys must be strings, got {k!r}")
            out[k] = _canonical(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ValueError(f"config{where} has a value of type {type(value).__name__} that has no canonical JSON form")


def build_manifest(
    plan: MixPlan,
    *,
    config: Mapping[str, Any],
    shard_hashes: Sequence[str],
    tokenizer_hash: str,
) -> bytes:
    """Canonical JSON manifest of a mix (UTF-8 bytes).

    Holds the format version, the seed, requested/target totals, per-source counts (docs, tokens,
    available docs/tokens, target and achieved proportions, sha256 of the chosen doc_ids), the
    redistributed sources, ``config`` (canonicalised; absolute paths, timestamps and non-JSON values
    are refused with the offending key named), the tokenizer hash and the shard sha256s in the given
    (shard) order. Same inputs give byte-identical output."""
    if not isinstance(tokenizer_hash, str) or not tokenizer_hash:
        raise ValueError(f"tokenizer_hash must be a non-empty string, got {tokenizer_hash!r}")
    shards = []
    for i, h in enumerate(shard_hashes):
        if not isinstance(h, str) or not _SHA256.match(h.lower()):
            raise ValueError(f"shard_hashes[{i}] is not a sha256 hex digest: {h!r}")
        shards.append(h.lower())
    achieved = plan.achieved_proportions
    doc = {
        "format": MANIFEST_FORMAT,
        "seed": plan.seed,
        "requested_total_tokens": plan.requested_total_tokens,
        "target_total_tokens": plan.target_total_tokens,
        "requested_proportions": plan.requested_proportions,
        "redistributed_sources": list(plan.redistributed),
        "sources": {
            name: {
                "target_proportion": s.target_proportion,
                "achieved_proportion": achieved[name],
                "docs": s.docs,
                "tokens": s.tokens,
                "available_docs": s.available_docs,
                "available_tokens": s.available_tokens,
                "doc_ids_sha256": s.doc_ids_sha256,
            }
            for name, s in plan.sources.items()
        },
        "totals": {"docs": plan.total_docs, "tokens": plan.total_tokens},
        "config": _canonical(dict(config), ""),
        "tokenizer_sha256": tokenizer_hash,
        "shards": shards,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return (text + "\n").encode("utf-8")
