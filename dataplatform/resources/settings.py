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
| DATAPLATFORM_MAX_WORKERS | 0 | shard worker processes (0 = cores) |

AWS credentials come from the standard AWS environment and never appear here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

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
    # Fail at load time, naming the variable's field, rather than at the first run.
    storage.location()
    crawl.location()
    return {
        "dataset_storage": storage,
        "crawl_source": crawl,
        "shard_execution": ShardExecutionResource(max_workers=_int(env, "DATAPLATFORM_MAX_WORKERS", 0)),
    }
