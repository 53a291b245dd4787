"""A real Ray cluster (``ray start --head`` on 127.0.0.1, stopped at the end) runs every heavy stage
of a partition: ``dataplatform process --engine ray`` against the cluster's address writes the same
rows as the in-process engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from content_hash import partition_content_hashes
from s3_server import free_port
from warc_factory import build_snapshot_warcs

from dataplatform.io.datasets import DatasetStore

pytest.importorskip("ray")

SNAPSHOT = "CC-RAYC-2026-01"
STAGES = ("documents", "filtered", "scored", "deduplicated", "decontaminated", "processed")
ON_ENGINE = ("documents", "filtered", "scored", "deduplicated", "decontaminated", "processed")


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A head node with 2 CPUs on a free loopback port; torn down even when a test fails."""
    ray = Path(sys.executable).with_name("ray")
    port = free_port()
    temp = tmp_path_factory.mktemp("ray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # a leftover ~/.ray/auth_token must not matter
    started = subprocess.run(
        [
            str(ray),
            "start",
            "--head",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--num-cpus",
            "2",
            "--include-dashboard",
            "false",
            "--temp-dir",
            str(temp),
            "--disable-usage-stats",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if started.returncode != 0:
        pytest.fail(f"ray start --head did not come up: {started.stderr[-2000:]}")
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([str(ray), "stop", "--force"], env=env, capture_output=True, timeout=120)


def _process(files: list[Path], out: Path, engine: str, env: dict[str, str], benchmarks: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "dataplatform.cli",
        "process",
        *map(str, files),
        "--output",
        str(out),
        "--snapshot",
        SNAPSHOT,
        "--engine",
        engine,
        "--workers",
        "2",
        "--benchmarks",
        benchmarks,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_process_on_a_ray_cluster_equals_the_local_engine(ray_cluster, tmp_path):
    from dataplatform.sample_data import SAMPLE_BENCHMARKS_DIR

    address, env = ray_cluster
    build_snapshot_warcs(tmp_path / "crawl", SNAPSHOT, n_files=4, pages_per_file=15)
    files = sorted((tmp_path / "crawl").rglob("*.warc.gz"))
    _process(files, tmp_path / "local", "process", env, str(SAMPLE_BENCHMARKS_DIR))
    ray_env = {**env, "DATAPLATFORM_ENGINE": "ray", "DATAPLATFORM_RAY_ADDRESS": address}
    _process(files, tmp_path / "ray", "ray", ray_env, str(SAMPLE_BENCHMARKS_DIR))

    local, on_ray = DatasetStore.local(tmp_path / "local"), DatasetStore.local(tmp_path / "ray")
    for stage in STAGES:
        assert partition_content_hashes(on_ray, stage, SNAPSHOT) == partition_content_hashes(local, stage, SNAPSHOT), stage
    assert (tmp_path / "ray" / f"{SNAPSHOT}.parquet").read_bytes() == (tmp_path / "local" / f"{SNAPSHOT}.parquet").read_bytes()
    # Every stage's shards ran through the cluster at that address (recorded with each materialization).
    for stage in ON_ENGINE:
        assert on_ray.require_manifest(stage, SNAPSHOT)["metadata"]["engine"] == f"ray ({address}, 2 CPUs)", stage
        assert local.require_manifest(stage, SNAPSHOT)["metadata"]["engine"].startswith("process pool")
