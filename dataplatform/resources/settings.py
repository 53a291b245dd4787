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


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise dg.DagsterInvalidConfigError(f"{name}={raw!r} is not an integer", [], None) from None


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
            [], None,
        )
    return value


def resources_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if env is None else env
    endpoint = env.get("DATAPLATFORM_S3_ENDPOINT_URL") or None
    region = env.get("AWS_REGION") or None
    storage = DatasetStorageResource(
        backend=_backend(env, "DATAPLATFORM_DATA_BACKEND"),
        local_root=env.get("DATAPLATFORM_DATA_ROOT") or DEFAULT_DATA_ROOT,
        s3_bucket=env.get("DATAPLATFORM_DATA_BUCKET", ""),
        s3_prefix=env.get("DATAPLATFORM_DATA_PREFIX", ""),
        s3_endpoint_url=endpoint,
        s3_region_name=region,
    )
    crawl = CrawlSourceResource(
        backend=_backend(env, "DATAPLATFORM_CRAWL_BACKEND"),
        local_root=env.get("DATAPLATFORM_CRAWL_ROOT", ""),
        s3_bucket=env.get("DATAPLATFORM_CRAWL_BUCKET", ""),
        s3_prefix=env.get("DATAPLATFORM_CRAWL_PREFIX", ""),
        s3_endpoint_url=endpoint,
        s3_region_name=region,
    )
    engine = _engine(env)
    max_workers = _int(env, "DATAPLATFORM_MAX_WORKERS", 0)
    if max_workers < 0:
        raise dg.DagsterInvalidConfigError(f"DATAPLATFORM_MAX_WORKERS={max_workers}: must be >= 0", [], None)
    execution = ShardExecutionResource(engine=engine, max_workers=max_workers, ray_address=_ray_address(env, engine))
    # Fail at load time, naming the variable's field, rather than at the first run.
    storage.location()
    crawl.location()
    llm_backend = env.get("DATAPLATFORM_LLM_BACKEND") or "transformers"
    if llm_backend not in ("transformers", "vllm"):
        raise dg.DagsterInvalidConfigError(f"DATAPLATFORM_LLM_BACKEND={llm_backend!r}: must be 'transformers' or 'vllm'", [], None)
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
