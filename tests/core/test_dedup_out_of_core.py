"""The out-of-core dedup stage (dataplatform.stages.dedup) against the in-memory reference
(dataplatform.core.dedup.deduplicate): same kept set, same duplicate_of, same reasons, same index;
and a new snapshot reads only the parts of the earlier snapshots' index that it touches."""

from __future__ import annotations

import contextlib
import pickle

import numpy as np
import polars as pl
import pytest

from dataplatform.core.dedup import DedupConfig, content_hash, deduplicate, lsh, minhash_signatures, normalize_text
from dataplatform.core.dedup.buckets import band_buckets, doc_buckets, partition_of
from dataplatform.core.schemas import SCORED, conform
from dataplatform.execution.shard_executor import InlineExecutor, ProcessPoolShardExecutor, ShardExecutor
from dataplatform.io.datasets import DatasetStore
from dataplatform.io.object_store import LocalObjectStore
from dataplatform.stages.dedup import (
    DEDUPLICATED_ASSET,
    SIGNATURE_INDEX_ASSET,
    DedupRunOptions,
    IncompatibleSignatureIndex,
    materialize_deduplicated,
    read_signature_index,
)
from dataplatform.stages.runner import ShardTask, TaskResult

SNAPSHOTS = ["CC-MAIN-2024-10", "CC-MAIN-2024-18", "CC-MAIN-2024-22"]
_RNG = np.random.default_rng(2024)
_VOCAB = ["".join(chr(97 + c) for c in _RNG.integers(0, 26, _RNG.integers(3, 9))) for _ in range(5000)]


def words(seed: int, n: int) -> str:
    return " ".join(_VOCAB[i] for i in np.random.default_rng(seed).integers(0, len(_VOCAB), n))


def edit(text: str, changes: int, seed: int) -> str:
    w = text.split()
    rng = np.random.default_rng(seed)
    for pos in rng.choice(len(w), min(changes, len(w)), replace=False):
        w[pos] = "zzq" + _VOCAB[rng.integers(len(_VOCAB))]
    return " ".join(w)


def generated_snapshot(snapshot: str, n: int, seed: int, earlier: list[str] = ()) -> pl.DataFrame:
    """``n`` scored rows: fresh documents, exact copies (case/punctuation changed), near-duplicates
    (a few words edited, some chains of them) of this snapshot's and of earlier snapshots'
    documents, a few empty texts and rows an earlier stage already dropped."""
    rng = np.random.default_rng(seed)
    texts: list[str | None] = []
    for i in range(n):
        kind = rng.random()
        if i < 10 or kind < 0.55:
            texts.append(words(seed * 1_000_003 + i, int(rng.integers(30, 400))))
        elif kind < 0.65:
            texts.append(str(texts[rng.integers(i)] or "").upper().replace(" ", " , "))
        elif kind < 0.8:
            texts.append(edit(texts[rng.integers(i)] or "x", int(rng.integers(1, 6)), i))
        elif kind < 0.95 and earlier:
            texts.append(edit(earlier[rng.integers(len(earlier))], int(rng.integers(0, 5)), i))
        else:
            texts.append(rng.choice(["", "123 !!!", None]))
    ids = [f"{rng.integers(1 << 40):010x}" for _ in range(n)]
    dropped = rng.random(n) < 0.03
    return pl.DataFrame(
        {
            "doc_id": ids,
            "url": [f"https://example.org/{i}" for i in ids],
            "snapshot": [snapshot] * n,
            "warc_record_id": ids,
            "warc_file": ["crawl.warc.gz"] * n,
            "text": texts,
            "n_chars": [len(t or "") for t in texts],
            "drop_reason": pl.Series(np.where(dropped, "quality:below_threshold", None).tolist(), dtype=pl.Utf8),
            "quality_label": rng.choice(["high_quality", "rewrite_candidate"], n).tolist(),
            "quality_score": rng.random(n).astype(np.float32),
        }
    )


def write_scored(store: DatasetStore, snapshot: str, frame: pl.DataFrame, shards: int) -> pl.DataFrame:
    """Commit ``frame`` as ``scored/<snapshot>`` in ``shards`` shards per table; returns the rows in
    the order the stage reads them (``data`` shards, then ``rewrite_candidates`` shards)."""
    parts = []
    with store.write_partition("scored", snapshot) as writer:
        for table, label in (("data", "high_quality"), ("rewrite_candidates", "rewrite_candidate")):
            rows = frame.filter(pl.col("quality_label") == label)
            writer.declare_table(table, SCORED)
            for i, chunk in enumerate(np.array_split(np.arange(rows.height), shards)):
                writer.write_table(table, conform(rows[chunk].to_arrow(), SCORED), index=i)
                parts.append(rows[chunk])
        writer.commit({})
    return pl.concat(parts)


def stage_result(store: DatasetStore, snapshot: str) -> dict[str, tuple]:
    """doc row -> (table, drop_reason, duplicate_of) as the stage wrote it."""
    out = {}
    for table in ("data", "rewrite_pool", "dropped"):
        frame = store.read_frame(DEDUPLICATED_ASSET, snapshot, table)
        for row in frame.select("warc_record_id", "url", "text", "drop_reason", "duplicate_of").iter_rows():
            out[row[:3]] = (table, row[3], row[4])
    return out


def reference_result(frame: pl.DataFrame) -> dict[str, tuple]:
    out = {}
    for row in frame.select("warc_record_id", "url", "text", "drop_reason", "duplicate_of", "quality_label").iter_rows():
        kept = row[3] is None
        table = ("rewrite_pool" if row[5] == "rewrite_candidate" else "data") if kept else "dropped"
        out[row[:3]] = (table, row[3], row[4])
    return out


def sorted_index(table) -> pl.DataFrame:
    return pl.from_arrow(table).sort("band", "band_hash", "snapshot", "doc_id")


def run_both(tmp_path, config: DedupConfig, sizes: list[int], options: DedupRunOptions, executor=None):
    """Dedup ``len(sizes)`` generated snapshots in order with the stage and with the reference
    (chained through its in-memory index); assert they agree on everything."""
    store = DatasetStore.local(tmp_path / "store")
    index, earlier_texts, reports = None, [], []
    for snapshot, n in zip(SNAPSHOTS, sizes):
        frame = write_scored(store, snapshot, generated_snapshot(snapshot, n, n, earlier_texts), shards=3)
        earlier_texts += [t for t in frame["text"].to_list() if t]
        ref = deduplicate(frame, index=index, config=config)
        index = ref.index_rows if index is None else pl.concat([pl.from_arrow(index), pl.from_arrow(ref.index_rows)]).to_arrow()
        report, info = materialize_deduplicated(store, snapshot, executor or InlineExecutor(), config, options)
        assert stage_result(store, snapshot) == reference_result(ref.frame)
        assert sorted_index(read_signature_index(store, snapshot)).equals(sorted_index(ref.index_rows))
        for key in ("duplicate:exact", "duplicate:minhash"):
            assert report.drop_counts.get(key, 0) == ref.stats[key]
        assert report.extra["cross_snapshot_duplicates"] == ref.stats["cross_snapshot"]
        assert report.extra["candidate_pairs"] == ref.stats["candidate_pairs"]
        assert report.extra["verified_pairs"] == ref.stats["verified_pairs"]
        assert info["documents"] == ref.stats["kept"] and info["rows"] == ref.stats["index_rows"]
        reports.append(report)
    return store, reports


def test_out_of_core_equals_in_memory_on_generated_snapshots(tmp_path):
    # ~2 buckets partitions for the first snapshot, ~5 for the third: pairs and payloads cross them
    store, reports = run_both(tmp_path, DedupConfig(), [900, 1500, 2000], DedupRunOptions(partition_rows=8000, batch_rows=400))
    first, _, last = reports
    assert first.extra["bucket_partitions"] > 1 and last.extra["bucket_partitions"] > first.extra["bucket_partitions"]
    assert last.extra["cross_snapshot_duplicates"] > 100 and last.drop_counts["duplicate:minhash"] > 100
    assert last.extra["compared_with_snapshots"] == SNAPSHOTS[:2]
    # intermediate files are gone and were never part of the manifest
    assert not [k for k in store.object_store.list_keys(DEDUPLICATED_ASSET) if "_work" in k]


@pytest.mark.parametrize(
    "config",
    [
        DedupConfig(verify="signature"),
        DedupConfig(verify="none"),
        DedupConfig(exact=False),
        DedupConfig(minhash=False),
        DedupConfig(snapshot_order=list(reversed(SNAPSHOTS))),
        DedupConfig(bands=14, rows=8, threshold=0.8),
    ],
    ids=["signature", "none", "no-exact", "no-minhash", "snapshot-order", "14x8"],
)
def test_out_of_core_equals_in_memory_for_every_setting(tmp_path, config):
    run_both(tmp_path, config, [300, 500], DedupRunOptions(partition_rows=3000, batch_rows=200))


class CheckingExecutor(ShardExecutor):
    """Runs tasks in this process, but only after a pickle round trip of the task (as the runner
    hands it over: the task function with its task), and checks that every result is a small
    :class:`TaskResult` that survives its JSON completion record: what a process pool or Ray
    needs, and what the stage runner records."""

    def __init__(self):
        self.maps: list[str] = []

    def map(self, fn, tasks):
        tasks = list(tasks)
        self.maps.append(tasks[0].fn.__name__)
        for call in tasks:
            assert isinstance(call.task, ShardTask)
            result = fn(pickle.loads(pickle.dumps(call)))
            assert isinstance(result, TaskResult) and len(result.to_json()) < 10_000
            assert TaskResult.from_json(result.to_json()) == result
            yield result


def test_every_phase_is_a_picklable_task_with_a_small_json_result(tmp_path):
    executor = CheckingExecutor()
    run_both(tmp_path, DedupConfig(), [200, 300], DedupRunOptions(partition_rows=2000), executor)
    phases = [
        "run_signature_task",
        "run_exact_task",
        "run_bucket_task",
        "run_attach_task",
        "run_verify_task",
        "run_follow_task",
        "run_gather_task",
        "run_apply_task",
        "run_index_task",
    ]
    assert executor.maps == phases * 2


def test_out_of_core_through_a_process_pool(tmp_path):
    # two input shards, one bucket partition: the per-shard phases go through the pool
    run_both(tmp_path, DedupConfig(), [200], DedupRunOptions(), ProcessPoolShardExecutor(2))


def test_out_of_core_equals_in_memory_on_the_bundled_sample(sample):
    """The sample's `deduplicated` (written by the stage while the asset graph ran) equals the
    reference run on the same `scored` inputs, snapshot after snapshot."""
    from dataplatform.sample_data import SAMPLE_SNAPSHOTS

    store, _, _ = sample
    index = None
    for snapshot in SAMPLE_SNAPSHOTS:
        frame = pl.concat(
            [store.read_frame("scored", snapshot, t) for t in ("data", "rewrite_candidates")], how="diagonal_relaxed"
        )
        ref = deduplicate(frame, index=index)
        index = ref.index_rows if index is None else pl.concat([pl.from_arrow(index), pl.from_arrow(ref.index_rows)]).to_arrow()
        assert stage_result(store, snapshot) == reference_result(ref.frame)
        assert ref.stats["duplicate:exact"] + ref.stats["duplicate:minhash"] > 0


@contextlib.contextmanager
def opened_keys(prefix: str):
    """Keys under ``prefix`` that local stores open for reading in this process."""
    seen: list[str] = []
    original = LocalObjectStore.readable_path

    @contextlib.contextmanager
    def recording(self, key):
        if key.startswith(prefix):
            seen.append(key)
        with original(self, key) as path:
            yield path

    LocalObjectStore.readable_path = recording
    try:
        yield seen
    finally:
        LocalObjectStore.readable_path = original


def test_new_snapshot_reads_only_the_index_parts_it_touches(tmp_path):
    store = DatasetStore.local(tmp_path / "store")
    options = DedupRunOptions(partition_rows=50)  # ~40 index parts per earlier snapshot and table
    priors = [f"CC-MAIN-2023-{w:02d}" for w in (6, 14, 23)]
    for k, snapshot in enumerate(priors):
        write_scored(store, snapshot, generated_snapshot(snapshot, 150, 10 + k), shards=1)
        materialize_deduplicated(store, snapshot, InlineExecutor(), DedupConfig(), options)
    # the new snapshot: one near-duplicate of a document the third snapshot kept
    kept = store.read_frame(DEDUPLICATED_ASSET, priors[2])
    original = kept.sort(pl.col("text").str.len_bytes(), descending=True, nulls_last=True).row(0, named=True)
    new = generated_snapshot("CC-MAIN-2024-10", 1, 99).with_columns(
        pl.lit(edit(original["text"], 1, 7)).alias("text"), pl.lit(None, pl.Utf8).alias("drop_reason")
    )
    write_scored(store, "CC-MAIN-2024-10", new, shards=1)
    with opened_keys(SIGNATURE_INDEX_ASSET) as seen:
        report, _ = materialize_deduplicated(store, "CC-MAIN-2024-10", InlineExecutor(), DedupConfig(), options)
    dropped = store.read_frame(DEDUPLICATED_ASSET, "CC-MAIN-2024-10", "dropped")
    assert dropped.select("drop_reason", "duplicate_of").rows() == [("duplicate:minhash", original["doc_id"])]

    # the buckets the new document touches: its exact row, its 14 bands, and the payload bucket
    # of the candidate it meets (for its signature)
    config = DedupConfig()
    norm = normalize_text(new["text"])
    sig = minhash_signatures(norm, num_perm=config.num_perm, ngram=config.ngram, seed=config.seed)
    touched = {
        "exact": band_buckets(-1, content_hash(norm)),
        "bands": band_buckets(np.arange(config.bands), lsh.band_hashes(sig, config.bands, config.rows)[0]),
        "signatures": doc_buckets([priors[2]], [original["doc_id"]]),
    }
    expected = set()
    all_parts = 0
    for snapshot in priors:
        parts = store.require_manifest(SIGNATURE_INDEX_ASSET, snapshot)["metadata"]["partitions"]
        assert parts >= 30
        for table, buckets in touched.items():
            keys = store.shard_keys(SIGNATURE_INDEX_ASSET, snapshot, table)
            all_parts += len(keys)
            wanted = {f"part-{p:05d}.parquet" for p in partition_of(buckets, parts).tolist()}
            if table == "signatures" and snapshot != priors[2]:
                wanted = set()  # no candidate from that snapshot: its signatures are not needed
            expected |= {k for k in keys if k.rsplit("/", 1)[1] in wanted}
    opened = set(seen)
    assert opened and opened <= expected, sorted(opened - expected)
    assert len(opened) <= len(priors) * (config.bands + 1) + 1 < all_parts / 4
    assert report.extra["prior_index_files_read"] == len(seen)


def test_index_of_another_format_is_refused(tmp_path):
    store = DatasetStore.local(tmp_path / "store")
    write_scored(store, SNAPSHOTS[0], generated_snapshot(SNAPSHOTS[0], 50, 1), shards=1)
    materialize_deduplicated(store, SNAPSHOTS[0])
    manifest = store.require_manifest(SIGNATURE_INDEX_ASSET, SNAPSHOTS[0])
    with store.write_partition(SIGNATURE_INDEX_ASSET, SNAPSHOTS[0]) as writer:  # as the v2 code wrote it
        writer.commit(
            {**manifest["metadata"], "signature": {**manifest["metadata"]["signature"], "format": "minhash-word-oph/v2"}}
        )
    write_scored(store, SNAPSHOTS[1], generated_snapshot(SNAPSHOTS[1], 50, 2), shards=1)
    with pytest.raises(IncompatibleSignatureIndex, match="format"):
        materialize_deduplicated(store, SNAPSHOTS[1])


def test_out_of_core_on_s3_equals_in_memory(s3_env):
    """The same two-snapshot run against a real S3 API (moto on loopback): work files, bitmaps and
    the bucketed index go through the object store; the work area is gone afterwards."""
    import boto3

    boto3.client("s3", endpoint_url=s3_env.endpoint, region_name="us-east-1").create_bucket(Bucket="dedup")
    store = DatasetStore.s3("dedup", "prod", endpoint_url=s3_env.endpoint)
    index, earlier = None, []
    for snapshot, n in zip(SNAPSHOTS, (150, 250)):
        frame = write_scored(store, snapshot, generated_snapshot(snapshot, n, n + 1, earlier), shards=2)
        earlier += [t for t in frame["text"].to_list() if t]
        ref = deduplicate(frame, index=index)
        index = ref.index_rows if index is None else pl.concat([pl.from_arrow(index), pl.from_arrow(ref.index_rows)]).to_arrow()
        materialize_deduplicated(store, snapshot, InlineExecutor(), DedupConfig(), DedupRunOptions(partition_rows=1500))
        assert stage_result(store, snapshot) == reference_result(ref.frame)
    assert ref.stats["cross_snapshot"] > 0
    assert not [k for k in store.object_store.list_keys(DEDUPLICATED_ASSET) if "_work" in k]
