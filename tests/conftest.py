import os
import sys
from pathlib import Path

# Tests import helpers such as warc_factory from this folder.
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

import pytest


@pytest.fixture(scope="session")
def s3_server():
    from s3_server import MotoServer

    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Credentials and endpoint for the loopback server, as a deployment would set them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3_server.reset()
    yield s3_server


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """The whole asset graph materialized once on the bundled sample crawl (CPU, tiny test LLM).

    Returns ``(store, summary rows, ground truth)``. Tests that change data work on a copy.
    """
    import polars as pl

    from dataplatform.cli import materialize_sample
    from dataplatform.io.datasets import DatasetStore
    from dataplatform.sample_data import load_ground_truth

    root = tmp_path_factory.mktemp("sample-graph")
    rows = materialize_sample(root, workers=1)
    truth = pl.DataFrame(load_ground_truth(), infer_schema_length=None)
    return DatasetStore.local(root), rows, truth
