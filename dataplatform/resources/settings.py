"""Resources for the code location, configured from environment variables.

| variable | default | meaning |
|---|---|---|
| DATAPLATFORM_DATA_BACKEND | local | ``local`` or ``s3`` |
| DATAPLATFORM_DATA_ROOT | .dataplatform/datasets | local dataset folder |
| DATAPLATFORM_DATA_BUCKET / _PREFIX | | S3 bucket / prefix for datasets |
| DATAPLATFORM_CRAWL_BACKEND | local | ``local`` or ``s3`` |
| DATAPLATFORM_CRAWL_ROOT | (bundled sample crawl) | local crawl folder |
| DATAPLATFORM_CRAWL_BUCKET / _PREFIX | | S3 bucket / prefix of the crawl |
| DATAPLATFORM_S3_ENDPOINT_URL | | S3-compatible endpoint |
| AWS_REGION | us-east-1 | region |
| DATAPLATFORM_ENGINE | process | shard engine: ``process``, ``inline`` or ``ray`` |
| DATAPLATFORM_MAX_WORKERS | 0 | shard worker processes (0 = cores); with ``ray``: CPUs per run |
| DATAPLATFORM_RAY_ADDRESS | | Ray cluster (``auto``, ``ray://head:10001``); unset = local Ray |
| DATAPLATFORM_RETENTION_GRACE_HOURS | 1 | superseded dataset versions stay readable this long |
| DATAPLATFORM_RETENTION_KEEP_VERSIONS | 2 | ... and the newest this many of them regardless of age |
| DATAPLATFORM_RETENTION_ABANDON_HOURS | 168 | unfinished attempts (killed runs) are kept this long for resume |

Buckets, prefixes, the endpoint, the region and the Ray address are passed as ``dg.EnvVar``: Dagster
resolves them when a run starts and the UI shows the variable names, not their values.

AWS credentials come from the standard AWS environment and never appear here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

from dataplatform.execution.engines import ENGINES
from dataplatform.resources.llm import LLMResource
from dataplatform.resources.storage import (
    DEFAULT_DATA_ROOT,
    CrawlSourceResource,
    DatasetStorageResource,
    ShardExecutionResource,
)


def _number(env: Mapping[str, str], name: str, default: int | float, kind: type = int):
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise dg.DagsterInvalidConfigError(f"{name}={raw!r} is not {what}", [], None) from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _number(env, name, default, int)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, float)


def _backend(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "local") or "local"
    if value not in ("local", "s3"):
        raise dg.DagsterInvalidConfigError(f"{name}={value!r}: must be 'local' or 's3'", [], None)
    return value


def _engine(env: Mapping[str, str]) -> str:
    value = env.get("DATAPLATFORM_ENGINE", "") or "process"
    if value not in ENGINES:
        raise dg.DagsterInvalidConfigError(
            f"DATAPLATFORM_ENGINE={value!r}: must be one of {', '.join(repr(e) for e in ENGINES)}", [], None
        )
    return value


def _ray_address(env: Mapping[str, str], engine: str) -> str | None:
    raw = env.get("DATAPLATFORM_RAY_ADDRESS", "")
    if not raw:
        return None
    value = raw.strip()
    if not value or any(c.isspace() for c in value):
        raise dg.DagsterInvalidConfigError(f"DATAPLATFORM_RAY_ADDRESS={raw!r} is not a Ray address", [], None)
    if engine != "ray":
        raise dg.DagsterInvalidConfigError(
            f"DATAPLATFORM_RAY_ADDRESS is set but DATAPLATFORM_ENGINE={engine!r}; set DATAPLATFORM_ENGINE=ray",
            [],
            None,
        )
    return value


def _env_var_or_value(env: Mapping[str, str], name: str, default: str | None, from_process_env: bool):
    """``dg.EnvVar(name)`` when the value comes from the process environment (Dagster then resolves it
    at run time and shows the variable, not its value, in the UI), else the plain value."""
    raw = env.get(name) or None
    if raw is not None and from_process_env:
        return dg.EnvVar(name)
    return raw if raw is not None else default


def _store_fields(env: Mapping[str, str], kind: str, from_process_env: bool) -> dict[str, Any]:
    """Bucket, prefix, endpoint and region of the crawl (``kind='CRAWL'``) or data store."""
    pick = lambda name, default: _env_var_or_value(env, name, default, from_process_env)  # noqa: E731
    return {
        "s3_bucket": pick(f"DATAPLATFORM_{kind}_BUCKET", ""),
        "s3_prefix": pick(f"DATAPLATFORM_{kind}_PREFIX", ""),
        "s3_endpoint_url": pick("DATAPLATFORM_S3_ENDPOINT_URL", None),
        "s3_region_name": pick("AWS_REGION", None),
    }


def _retention(env: Mapping[str, str]) -> dict[str, Any]:
    grace = _float(env, "DATAPLATFORM_RETENTION_GRACE_HOURS", 1.0)
    keep = _int(env, "DATAPLATFORM_RETENTION_KEEP_VERSIONS", 2)
    abandon = _float(env, "DATAPLATFORM_RETENTION_ABANDON_HOURS", 7 * 24.0)
    for name, value in (
        ("DATAPLATFORM_RETENTION_GRACE_HOURS", grace),
        ("DATAPLATFORM_RETENTION_KEEP_VERSIONS", keep),
        ("DATAPLATFORM_RETENTION_ABANDON_HOURS", abandon),
    ):
        if value < 0:
            raise dg.DagsterInvalidConfigError(f"{name}={value}: must be >= 0", [], None)
    return {"retention_grace_hours": grace, "retention_keep_versions": keep, "retention_abandon_hours": abandon}


def resources_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    from_process_env = env is None
    env = os.environ if env is None else env
    storage_args = {
        "backend": _backend(env, "DATAPLATFORM_DATA_BACKEND"),
        "local_root": env.get("DATAPLATFORM_DATA_ROOT") or DEFAULT_DATA_ROOT,
        **_retention(env),
    }
    crawl_args = {"backend": _backend(env, "DATAPLATFORM_CRAWL_BACKEND"), "local_root": env.get("DATAPLATFORM_CRAWL_ROOT", "")}
    # Fail at load time, naming the variable's field, rather than at the first run.
    DatasetStorageResource(**storage_args, **_store_fields(env, "DATA", False)).location()
    CrawlSourceResource(**crawl_args, **_store_fields(env, "CRAWL", False)).location()
    storage = DatasetStorageResource(**storage_args, **_store_fields(env, "DATA", from_process_env))
    crawl = CrawlSourceResource(**crawl_args, **_store_fields(env, "CRAWL", from_process_env))
    engine = _engine(env)
    max_workers = _int(env, "DATAPLATFORM_MAX_WORKERS", 0)
    if max_workers < 0:
        raise dg.DagsterInvalidConfigError(f"DATAPLATFORM_MAX_WORKERS={max_workers}: must be >= 0", [], None)
    ray_address = _ray_address(env, engine)
    if ray_address is not None and from_process_env:
        ray_address = dg.EnvVar("DATAPLATFORM_RAY_ADDRESS")
    execution = ShardExecutionResource(engine=engine, max_workers=max_workers, ray_address=ray_address)
    llm_backend = env.get("DATAPLATFORM_LLM_BACKEND") or "transformers"
    if llm_backend not in ("transformers", "vllm"):
        raise dg.DagsterInvalidConfigError(
            f"DATAPLATFORM_LLM_BACKEND={llm_backend!r}: must be 'transformers' or 'vllm'", [], None
        )
    llm = LLMResource(
        backend=llm_backend,
        model_path=env.get("DATAPLATFORM_LLM_MODEL", ""),
        tensor_parallel_size=_int(env, "DATAPLATFORM_LLM_TENSOR_PARALLEL", 1),
        max_model_len=_int(env, "DATAPLATFORM_LLM_MAX_MODEL_LEN", 0) or None,
    )
    return {
        "dataset_storage": storage,
        "crawl_source": crawl,
        "shard_execution": execution,
        "llm": llm,
    }
