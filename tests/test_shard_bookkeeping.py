"""What a step's driver keeps per shard: the writer's shard list (published as the shard index) and
the aligned shard keys that decontamination and assembly map over. Both are compact columns, so
the tests check that nothing a reader sees changes: the published index, its order, the totals
and which keys a shard number's task gets. And the Arrow allocator our processes use."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataplatform.io.datasets import DatasetStore, ShardInfo, ShardLedger, ShardsByIndex
from dataplatform.io.object_store import LocalLocation

PARTITION = "CC-LEDGER-2026-01"


def _write(store: DatasetStore, asset: str, tables: dict[str, list[int]]) -> None:
    """Commit ``asset`` with shard ``i`` of each table holding ``i`` rows, shards added out of order."""
    with store.write_partition(asset, PARTITION) as writer:
        for table, numbers in tables.items():
            for i in sorted(numbers, reverse=True):
                writer.write_table(table, pa.table({"i": list(range(i))}, schema=pa.schema([("i", pa.int64())])), index=i)
        writer.commit({})


def test_the_published_shard_index_lists_every_shard_sorted_with_its_totals(tmp_path):
    store = DatasetStore(LocalLocation(str(tmp_path)))
    _write(store, "documents", {"data": [0, 1, 2, 3, 11], "dropped": [0, 2]})
    manifest = store.require_manifest("documents", PARTITION)
    data = store.shards("documents", PARTITION, "data")
    assert [s.key.rsplit("/", 1)[1] for s in data] == [f"part-{i:05d}.parquet" for i in (0, 1, 2, 3, 11)]
    assert [s.rows for s in data] == [0, 1, 2, 3, 11]
    assert manifest["tables"]["data"]["rows"] == 17 and manifest["tables"]["data"]["shards"] == 5
    assert manifest["tables"]["dropped"]["shards"] == 2
    # The sha256 survives the ledger's packed form: it matches the bytes on disk.
    first = data[1]
    on_disk = (tmp_path / "documents" / PARTITION / first.key).read_bytes()
    assert first.sha256 == hashlib.sha256(on_disk).hexdigest() and first.bytes == len(on_disk)
    assert store.read_table("documents", PARTITION, "data").num_rows == 17


def test_the_ledger_round_trips_many_shards_in_chunks(monkeypatch):
    monkeypatch.setattr(ShardLedger, "CHUNK", 7)  # several chunks per table
    ledger = ShardLedger()
    infos = [ShardInfo(t, f"v1/{t}/part-{i:05d}.parquet", i, 10 * i, f"{i:064x}") for t in ("data", "a") for i in range(30)]
    for info in reversed(infos):
        ledger.add(info)
    raw = ledger.index_bytes()
    index = pq.read_table(io.BytesIO(raw))
    expected = sorted(infos, key=lambda s: (s.table, s.key))
    assert index.column("path").to_pylist() == [s.key for s in expected]
    assert index.column("sha256").to_pylist() == [s.sha256 for s in expected]
    assert list(ledger) == expected and len(ledger) == 60
    assert ledger.totals("data") == (30, sum(range(30)), 10 * sum(range(30)))
    assert pq.read_table(io.BytesIO(ShardLedger().index_bytes())).num_rows == 0
    # Deterministic: the same shards give the same file, whatever order they were added in.
    again = ShardLedger()
    for info in infos:
        again.add(info)
    assert again.index_bytes() == raw
    assert pq.ParquetFile(io.BytesIO(raw)).metadata.num_row_groups == 2 * 5  # a row group per table and chunk
    with pytest.raises(ValueError, match="64 hex digits"):
        ledger.add(ShardInfo("data", "v1/data/part-99999.parquet", 1, 1, "abc"))


def test_aligned_shards_give_each_number_the_keys_of_the_tables_that_have_it(tmp_path):
    store = DatasetStore(LocalLocation(str(tmp_path)))
    _write(store, "deduplicated", {"data": [0, 1, 2], "rewrite_pool": [1, 2, 5]})
    shards = ShardsByIndex(store, PARTITION, [("kept", "deduplicated", "data"), ("pool", "deduplicated", "rewrite_pool")])
    assert shards.indices.tolist() == [0, 1, 2, 5]
    version = store.require_manifest("deduplicated", PARTITION)["version"]
    prefix = f"deduplicated/{PARTITION}/v{version}"
    assert shards.group(1) == [
        ("kept", f"{prefix}/data/part-00001.parquet"),
        ("pool", f"{prefix}/rewrite_pool/part-00001.parquet"),
    ]
    assert shards.group(5) == [("pool", f"{prefix}/rewrite_pool/part-00005.parquet")]
    assert shards.group(3) == []
    # Every key it hands out is one the store lists.
    listed = set(store.shard_keys("deduplicated", PARTITION, "data")) | set(
        store.shard_keys("deduplicated", PARTITION, "rewrite_pool")
    )
    assert {key for i in shards.indices.tolist() for _, key in shards.group(i)} == listed


def test_aligned_shards_keep_a_key_off_the_pattern_and_refuse_ambiguous_numbers(tmp_path):
    store = DatasetStore(LocalLocation(str(tmp_path)))
    _write(store, "deduplicated", {"data": [0]})
    keys = ["d/x/v1/data/part-00000.parquet", "d/x/v1/moved/part-00002.parquet", "d/x/v1/data/part-00003.parquet"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store, "shard_keys", lambda *a: keys)
        shards = ShardsByIndex(store, PARTITION, [("kept", "deduplicated", "data")])
    assert [shards.group(i) for i in shards.indices.tolist()] == [[("kept", k)] for k in keys]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store, "shard_keys", lambda *a: [keys[0], "d/x/v1/data/part-0.parquet"])
        with pytest.raises(ValueError, match="two data shards are numbered 0"):
            ShardsByIndex(store, PARTITION, [("kept", "deduplicated", "data")])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store, "shard_keys", lambda *a: ["deduplicated/x/v1/data/whole.parquet"])
        with pytest.raises(ValueError, match="not named part-NNNNN"):
            ShardsByIndex(store, PARTITION, [("kept", "deduplicated", "data")])


def test_dataplatform_processes_use_arrows_system_allocator_unless_told_otherwise():
    probe = "import dataplatform.io.datasets, pyarrow; print(pyarrow.default_memory_pool().backend_name)"
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    assert (
        subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout.strip()
        == "system"
    )
    chosen = {**env, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}
    assert (
        subprocess.run([sys.executable, "-c", probe], env=chosen, capture_output=True, text=True, check=True).stdout.strip()
        == "mimalloc"
    )
