"""Resources from the environment: endpoints and buckets stay environment variables (dg.EnvVar),
retention is configurable, and a bad value fails at load naming the variable."""

import dagster as dg
import pytest

from dataplatform.resources.settings import resources_from_env


def test_s3_locations_are_env_vars_resolved_at_run_time(monkeypatch):
    monkeypatch.setenv("DATAPLATFORM_DATA_BACKEND", "s3")
    monkeypatch.setenv("DATAPLATFORM_DATA_BUCKET", "curated-bucket")
    monkeypatch.setenv("DATAPLATFORM_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    storage = resources_from_env()["dataset_storage"]
    assert isinstance(storage.s3_bucket, dg.EnvVar) and storage.s3_bucket.env_var_name == "DATAPLATFORM_DATA_BUCKET"
    assert isinstance(storage.s3_endpoint_url, dg.EnvVar)
    resolved = storage.process_config_and_initialize()
    assert (resolved.s3_bucket, resolved.s3_endpoint_url) == ("curated-bucket", "http://127.0.0.1:9")


def test_retention_comes_from_the_environment():
    storage = resources_from_env({"DATAPLATFORM_RETENTION_GRACE_HOURS": "0.5", "DATAPLATFORM_RETENTION_KEEP_VERSIONS": "0"})
    policy = storage["dataset_storage"].retention()
    assert (policy.grace_seconds, policy.keep_superseded) == (1800.0, 0)


@pytest.mark.parametrize(
    "name, value",
    [
        ("DATAPLATFORM_RETENTION_GRACE_HOURS", "soon"),
        ("DATAPLATFORM_RETENTION_KEEP_VERSIONS", "-1"),
        ("DATAPLATFORM_DATA_BACKEND", "ftp"),
    ],
)
def test_bad_values_fail_at_load_naming_the_variable(name, value):
    with pytest.raises(dg.DagsterInvalidConfigError, match=name):
        resources_from_env({name: value})
