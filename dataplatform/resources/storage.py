"""Dagster resources that say where data comes from and where it goes.

Credentials are never configuration: S3 access uses the standard AWS environment (variables,
profile, instance role) through dagster-aws' ``S3Resource``, and worker processes rebuild their
clients from the same environment. Only the endpoint, region, bucket and prefix are config.
"""

from typing import Literal

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from dataplatform.io.crawl_sources import CrawlSource
from dataplatform.io.datasets import DatasetStore, RetentionPolicy
from dataplatform.io.object_store import LocalLocation, S3Location, S3ObjectStore, StoreLocation

DEFAULT_DATA_ROOT = ".dataplatform/datasets"


class _StoreLocationResource(dg.ConfigurableResource):
    backend: Literal["local", "s3"] = Field(default="local", description="'local' directory or 's3' bucket")
    local_root: str = Field(default=DEFAULT_DATA_ROOT, description="folder used when backend='local'")
    s3_bucket: str = Field(default="", description="bucket used when backend='s3'")
    s3_prefix: str = Field(default="", description="key prefix inside the bucket")
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, moto); None = AWS")
    s3_region_name: str | None = Field(default=None, description="AWS region; None = AWS_REGION or us-east-1")

    def location(self) -> StoreLocation:
        """Validated location; raises ``dg.DagsterInvalidConfigError`` naming the bad field."""
        name = type(self).__name__
        if self.backend == "local":
            if not self.local_root.strip():
                raise dg.DagsterInvalidConfigError(f"{name}.local_root must not be empty", [], None)
            return LocalLocation(self.local_root)
        if not self.s3_bucket.strip():
            raise dg.DagsterInvalidConfigError(f"{name}.s3_bucket must be set when backend='s3'", [], None)
        if "/" in self.s3_bucket or self.s3_bucket != self.s3_bucket.strip():
            raise dg.DagsterInvalidConfigError(f"{name}.s3_bucket {self.s3_bucket!r} is not a bucket name", [], None)
        if ".." in self.s3_prefix.split("/"):
            raise dg.DagsterInvalidConfigError(f"{name}.s3_prefix must not contain '..'", [], None)
        return S3Location(self.s3_bucket, self.s3_prefix.strip("/"), self.s3_endpoint_url, self.s3_region_name)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.location()  # fail at run start, not in the middle of a stage

    def _s3_client(self):
        return S3Resource(endpoint_url=self.s3_endpoint_url, region_name=self.s3_region_name).get_client()

    def _attach_client(self, location: StoreLocation, store) -> None:
        if isinstance(location, S3Location) and isinstance(store, S3ObjectStore):
            store._client = self._s3_client()


class DatasetStorageResource(_StoreLocationResource):
    """Where datasets are written: ``<root>/<asset>/<snapshot>/`` with manifest-committed shards."""

    retention_grace_hours: float = Field(default=1.0, ge=0, description="superseded versions stay readable this long")
    retention_keep_versions: int = Field(default=2, ge=0, description="newest superseded versions kept regardless of age")
    retention_abandon_hours: float = Field(default=7 * 24.0, ge=0, description="unfinished attempts kept this long for resume")

    def retention(self) -> RetentionPolicy:
        return RetentionPolicy(
            grace_seconds=self.retention_grace_hours * 3600,
            keep_superseded=self.retention_keep_versions,
            abandon_after_seconds=self.retention_abandon_hours * 3600,
        )

    def dataset_store(self) -> DatasetStore:
        location = self.location()
        store = DatasetStore(location, self.retention())
        self._attach_client(location, store.object_store)
        return store


class CrawlSourceResource(_StoreLocationResource):
    """Where crawl snapshots are read from (Common Crawl layout, local folder or S3 prefix)."""

    local_root: str = Field(default="", description="crawl folder used when backend='local' ('' = bundled sample)")

    def location(self) -> StoreLocation:
        if self.backend == "local" and not self.local_root.strip():
            from dataplatform.sample_data import SAMPLE_CRAWL_ROOT

            return LocalLocation(str(SAMPLE_CRAWL_ROOT))
        return super().location()

    def crawl_source(self) -> CrawlSource:
        location = self.location()
        source = CrawlSource(location)
        self._attach_client(location, source.store)
        return source


class ShardExecutionResource(dg.ConfigurableResource):
    """How shards of one partition are processed: a local process pool, in the run's process, or
    as Ray tasks (a local Ray instance, or a cluster at ``ray_address``)."""

    engine: Literal["process", "inline", "ray"] = Field(default="process", description="'process' pool, 'inline', or 'ray' tasks")
    max_workers: int = Field(
        default=0,
        description="worker processes ('process'); CPUs of a local Ray instance or this run's share of a Ray "
        "cluster ('ray'); 0 = one per CPU core / the whole cluster",
    )
    ray_address: str | None = Field(
        default=None,
        description="engine='ray': 'auto', 'ray://head:10001' or host:port of a Ray cluster; None = local Ray (or RAY_ADDRESS)",
    )

    def executor(self):
        from dataplatform.execution.engines import make_executor

        if self.max_workers < 0:
            raise dg.DagsterInvalidConfigError("ShardExecutionResource.max_workers must be >= 0", [], None)
        if self.ray_address is not None and self.engine != "ray":
            raise dg.DagsterInvalidConfigError(
                f"ShardExecutionResource.ray_address is set but engine={self.engine!r}; use engine='ray'", [], None
            )
        if self.ray_address is not None and not self.ray_address.strip():
            raise dg.DagsterInvalidConfigError("ShardExecutionResource.ray_address must not be empty", [], None)
        return make_executor(self.engine, self.max_workers or None, ray_address=self.ray_address)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.executor()
