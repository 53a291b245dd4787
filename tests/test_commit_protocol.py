"""The commit protocol under races and failures: two writers of one partition, readers during
re-materialization, a failure after the manifest is written, retention and garbage collection.

Writers run as real processes (local disk, and the loopback S3 server) released at the same
instant, so the compare-and-swap on the manifest is what decides, not the test's ordering.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from dataplatform.io.datasets import CommitConflict, DatasetStore, RetentionPolicy
from dataplatform.io.object_store import S3Location

ASSET, PARTITION = "documents", "CC-RACE-2026-01"

WRITER = r"""
import json, os, sys, time
import pyarrow as pa
from dataplatform.io.datasets import CommitConflict, DatasetStore
from dataplatform.io.object_store import LocalLocation, S3Location
spec = json.loads(sys.argv[1])
loc = LocalLocation(spec["root"]) if "root" in spec else S3Location(spec["bucket"], "", spec["endpoint"], "us-east-1")
store = DatasetStore(loc)
name, go = spec["name"], spec["go"]
with store.write_partition("documents", "CC-RACE-2026-01", run_id=name) as writer:
    writer.write_table("data", pa.table({"writer": [name] * 100, "i": list(range(100))}))
    open(spec["ready"], "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
    try:
        writer.commit({"writer": name})
        print("won", flush=True)
    except CommitConflict as exc:
        print("lost", exc, flush=True)
"""


def _s3_store(s3_env, bucket="race-bucket") -> DatasetStore:
    import boto3

    boto3.client("s3", endpoint_url=s3_env.endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return DatasetStore(S3Location(bucket, "", s3_env.endpoint, "us-east-1"))


def _race(tmp_path: Path, spec: dict, round_: int) -> list[str]:
    go = tmp_path / f"go-{round_}"
    procs = []
    for name in ("A", "B"):
        ready = tmp_path / f"ready-{round_}-{name}"
        procs.append(
            (
                ready,
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        WRITER,
                        json.dumps({**spec, "name": f"{name}{round_}", "go": str(go), "ready": str(ready)}),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    deadline = time.time() + 60
    while not all(r.exists() for r, _ in procs):
        assert time.time() < deadline, "writers did not get ready"
        time.sleep(0.01)
    go.touch()
    outputs = []
    for _, proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        outputs.append(out.strip())
    return outputs


def _assert_committed_partition_is_whole(store: DatasetStore) -> str:
    manifest = store.require_manifest(ASSET, PARTITION)
    table = store.read_table(ASSET, PARTITION)  # every shard the manifest names is there
    writers = set(table.column("writer").to_pylist())
    assert writers == {manifest["metadata"]["writer"]} and table.num_rows == 100
    return manifest["metadata"]["writer"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_two_writers_of_one_partition_one_wins_the_other_fails_clearly(backend, tmp_path, request):
    if backend == "local":
        store, spec = DatasetStore.local(tmp_path / "data"), {"root": str(tmp_path / "data")}
    else:
        s3_env = request.getfixturevalue("s3_env")
        store = _s3_store(s3_env)
        spec = {"bucket": "race-bucket", "endpoint": s3_env.endpoint}
    for round_ in range(4 if backend == "local" else 2):
        outputs = _race(tmp_path, spec, round_)
        won = [o for o in outputs if o == "won"]
        lost = [o for o in outputs if o.startswith("lost")]
        assert len(won) == 1 and len(lost) == 1, outputs
        winner = _assert_committed_partition_is_whole(store)
        assert f"run {winner} committed version" in lost[0] and "was committed concurrently" in lost[0]
        assert "not published" in lost[0]


def test_commit_based_on_a_stale_manifest_is_refused_and_publishes_nothing(tmp_path):
    store = DatasetStore.local(tmp_path)
    with store.write_partition(ASSET, PARTITION, run_id="first") as first:
        first.write_table("data", pa.table({"writer": ["first"] * 100, "i": list(range(100))}))
        with store.write_partition(ASSET, PARTITION, run_id="second") as second:
            second.write_table("data", pa.table({"writer": ["second"] * 100, "i": list(range(100))}))
            second.commit({"writer": "second"})
        with pytest.raises(CommitConflict, match="run second committed version"):
            first.commit({"writer": "first"})
    assert _assert_committed_partition_is_whole(store) == "second"
    assert store.require_manifest(ASSET, PARTITION)["generation"] == 1


def _commit(store: DatasetStore, value: int) -> dict:
    with store.write_partition(ASSET, PARTITION) as writer:
        writer.write_table("data", pa.table({"writer": [str(value)] * 100, "i": list(range(100))}))
        return writer.commit({"writer": str(value)})


def test_failure_after_the_manifest_is_written_never_removes_the_committed_version(tmp_path, monkeypatch):
    store = DatasetStore.local(tmp_path)
    _commit(store, 1)

    def broken_gc(*args, **kwargs):
        raise OSError("503 Slow Down (simulated burst during cleanup)")

    monkeypatch.setattr(store, "collect_garbage", broken_gc)
    manifest = _commit(store, 2)  # the commit itself succeeds; cleanup failure is only logged
    assert store.require_manifest(ASSET, PARTITION)["version"] == manifest["version"]
    assert _assert_committed_partition_is_whole(store) == "2"
    monkeypatch.undo()

    # An exception raised inside the block after commit (SIGINT, Terminate) must not undo it either.
    with pytest.raises(KeyboardInterrupt):
        with store.write_partition(ASSET, PARTITION) as writer:
            writer.write_table("data", pa.table({"writer": ["3"] * 100, "i": list(range(100))}))
            writer.commit({"writer": "3"})
            raise KeyboardInterrupt
    assert _assert_committed_partition_is_whole(store) == "3"


def test_readers_never_fail_while_writers_re_materialize(tmp_path):
    store = DatasetStore.local(tmp_path)
    _commit(store, 0)
    errors, reads, stop = [], [0], threading.Event()

    def reader():
        reading = DatasetStore.local(tmp_path)
        while not stop.is_set():
            try:
                table = reading.read_table(ASSET, PARTITION)
                assert table.num_rows == 100 and len(set(table.column("writer").to_pylist())) == 1
                reads[0] += 1
            except Exception as exc:  # noqa: BLE001 - every failure counts
                errors.append(repr(exc))

    def writer(offset):
        for value in range(offset, offset + 200, 2):
            try:
                _commit(DatasetStore.local(tmp_path), value)
            except CommitConflict:
                pass

    threads = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(o,)) for o in (1, 2)]
    for t in threads + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in threads:
        t.join()
    assert errors == [] and reads[0] > 20


def test_retention_keeps_superseded_versions_for_the_grace_period_then_collects_them(tmp_path):
    store = DatasetStore.local(tmp_path, RetentionPolicy(grace_seconds=3600, keep_superseded=1))
    versions = [_commit(store, v)["version"] for v in range(4)]
    folder = tmp_path / ASSET / PARTITION
    on_disk = lambda: sorted(p.name[1:] for p in folder.iterdir() if p.is_dir())  # noqa: E731
    assert on_disk() == sorted(versions)  # all superseded less than an hour ago
    manifest = store.require_manifest(ASSET, PARTITION)
    assert [h["version"] for h in manifest["history"]] == versions[-2::-1]

    later = time.time() + 2 * 3600
    result = store.collect_garbage(ASSET, PARTITION, now=later)
    assert on_disk() == sorted(versions[-2:])  # current + the newest superseded (keep_superseded=1)
    assert sorted(result["deleted"]) == sorted(f"v{v}" for v in versions[:2])
    assert _assert_committed_partition_is_whole(store) == "3"
    # The next commit drops the collected versions from its history.
    _commit(store, 4)
    assert [h["version"] for h in store.require_manifest(ASSET, PARTITION)["history"]] == [versions[3], versions[2]]


def test_abandoned_attempts_and_temp_files_are_collected_only_when_old(tmp_path):
    store = DatasetStore.local(tmp_path)
    _commit(store, 1)
    with pytest.raises(RuntimeError):
        with store.write_partition(ASSET, PARTITION, fingerprint="f" * 24) as writer:
            writer.write_table("data", pa.table({"writer": ["x"], "i": [0]}))
            raise RuntimeError("killed")
    attempt = writer.version
    folder = tmp_path / ASSET / PARTITION
    stray = folder / ".tmp-abc123"
    stray.write_bytes(b"half a manifest")
    assert store.collect_garbage(ASSET, PARTITION)["deleted"] == []  # young: a re-run may resume it
    assert (folder / f"v{attempt}").is_dir() and stray.exists()
    deleted = store.collect_garbage(ASSET, PARTITION, now=time.time() + 8 * 24 * 3600)["deleted"]
    assert f"v{attempt}" in deleted and stray.name in deleted
    assert _assert_committed_partition_is_whole(store) == "1"


def test_an_attempt_killed_before_it_recorded_itself_goes_with_the_temp_files(tmp_path):
    """A kill between creating a version folder and writing its _attempt.json leaves a folder no re-run
    can resume (no fingerprint): it is collected after temp_after_seconds (1 h), not kept 7 days;
    a recorded attempt of the same age stays for its resume."""
    store = DatasetStore.local(tmp_path)
    _commit(store, 1)
    folder = tmp_path / ASSET / PARTITION
    unrecorded = folder / f"v{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-0badc0de"
    unrecorded.mkdir()
    (unrecorded / ".tmp-attempt").write_bytes(b'{"finger')
    with pytest.raises(RuntimeError):
        with store.write_partition(ASSET, PARTITION, fingerprint="f" * 24) as writer:
            writer.write_table("data", pa.table({"writer": ["x"], "i": [0]}))
            raise RuntimeError("killed")
    assert store.collect_garbage(ASSET, PARTITION)["deleted"] == []
    deleted = store.collect_garbage(ASSET, PARTITION, now=time.time() + 2 * 3600)["deleted"]
    assert deleted == [unrecorded.name]
    assert (folder / f"v{writer.version}").is_dir()
    assert _assert_committed_partition_is_whole(store) == "1"


def test_an_unfingerprinted_failed_writer_removes_only_its_own_version(tmp_path):
    store = DatasetStore.local(tmp_path)
    committed = _commit(store, 1)["version"]
    with pytest.raises(ValueError):
        with store.write_partition(ASSET, PARTITION) as writer:
            writer.write_table("data", pa.table({"writer": ["x"], "i": [0]}))
            raise ValueError("bad input")
    assert not (tmp_path / ASSET / PARTITION / f"v{writer.version}").exists()
    assert store.require_manifest(ASSET, PARTITION)["version"] == committed


def test_manifest_is_as_readable_as_the_shards(tmp_path):
    store = DatasetStore.local(tmp_path)
    _commit(store, 1)
    folder = tmp_path / ASSET / PARTITION
    shard = next(folder.glob("v*/data/part-*.parquet"))
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(folder / "_manifest.json") == mode(shard)


def test_conditional_put_on_s3_refuses_stale_tokens(s3_env):
    store = _s3_store(s3_env, bucket="cas-bucket")
    objects = store.object_store
    assert objects.put_if("k/x.json", b"1", None)
    assert not objects.put_if("k/x.json", b"2", None)
    _, token = objects.get_with_token("k/x.json")
    assert objects.put_if("k/x.json", b"3", token)
    assert not objects.put_if("k/x.json", b"4", token)
    assert objects.get_bytes("k/x.json") == b"3"
