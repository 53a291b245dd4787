"""The quality classifier's training step: which documents are its negatives, where it trains, and
what a re-run after a crash redoes.

The driver picks the sample from the documents' seeded keys only; a worker task reads the texts
and trains. These tests pin the user-visible contract: the negatives are exactly the
``max_negatives`` documents with the smallest keys (so the model is the one training on them
directly gives), the published files are the trained model, and a run that trained but died
before committing does not train again.
"""

from __future__ import annotations

import io

import polars as pl
import pyarrow as pa
import pytest

from dataplatform import names
from dataplatform.core.quality_classifier import default_positives, train_quality_classifier
from dataplatform.core.schemas import FILTERED, conform
from dataplatform.execution.shard_executor import InlineExecutor
from dataplatform.io.datasets import DatasetStore, PartitionWriter
from dataplatform.stages import scoring
from dataplatform.stages.scoring import (
    ClassifierTrainingOptions,
    cached_classifier,
    committed_classifier,
    materialize_quality_classifier,
    sample_cut,
    sample_key,
)

SNAPSHOTS = ("CC-QC-2026-01", "CC-QC-2026-05")
MAX_NEGATIVES = 60


def _page(i: int, snapshot: str) -> str:
    topics = ("rivers", "compilers", "bread", "orbits", "violins", "glaciers", "tax law", "beetles")
    return (
        f"Page {i} of {snapshot} is about {topics[i % len(topics)]}. "
        f"It says {i * 7919 % 1000} things in {i % 13 + 2} short sentences, and then it stops."
    )


@pytest.fixture(scope="module")
def filtered_root(tmp_path_factory):
    """Two snapshots' committed ``filtered`` partitions, 4 shards of 60 kept documents each."""
    root = tmp_path_factory.mktemp("classifier") / "data"
    store = DatasetStore.local(root)
    for snapshot in SNAPSHOTS:
        with store.write_partition(names.FILTERED, snapshot) as writer:
            for shard in range(4):
                ids = range(shard * 60, (shard + 1) * 60)
                texts = [_page(i, snapshot) for i in ids]
                frame = pa.table(
                    {
                        "doc_id": [f"{snapshot}-{i:05d}" for i in ids],
                        "url": [f"https://example.org/{snapshot}/{i}" for i in ids],
                        "snapshot": [snapshot] * 60,
                        "warc_record_id": [f"<urn:uuid:{snapshot}-{i}>" for i in ids],
                        "warc_file": [f"{snapshot}-{shard}.warc.gz"] * 60,
                        "text": texts,
                        "n_chars": [len(t) for t in texts],
                    }
                )
                writer.write_table(names.DATA, conform(frame, FILTERED), shard)
            writer.commit({})
    return root


def _copy(root, tmp_path) -> DatasetStore:
    import shutil

    shutil.copytree(root, tmp_path / "data")
    return DatasetStore.local(tmp_path / "data")


def _kept_documents(store: DatasetStore) -> pl.DataFrame:
    return pl.concat(
        pl.read_parquet(io.BytesIO(store.object_store.get_bytes(k))).select("doc_id", "text")
        for s in SNAPSHOTS
        for k in store.shard_keys(names.FILTERED, s)
    )


def test_sample_cut_takes_the_smallest_keys_and_every_tie_at_the_cut():
    assert sample_cut([], 5) is None
    assert sample_cut([9, 3, 7], 5) == 9  # fewer than asked: all of them
    assert sample_cut([9, 3, 7, 1, 5], 3) == 5
    assert sample_cut([4, 2, 4, 8], 2) == 4  # the same doc_id in two snapshots: both copies are taken


def test_negatives_are_the_smallest_keys_and_the_model_is_the_one_they_train(filtered_root, tmp_path):
    store = _copy(filtered_root, tmp_path)
    options = ClassifierTrainingOptions(max_negatives=MAX_NEGATIVES, seed=7, epoch=2)
    report = materialize_quality_classifier(store, InlineExecutor(), options)

    kept = _kept_documents(store)
    assert kept.height > 2 * MAX_NEGATIVES  # the sample is a real subset
    keyed = kept.with_columns(pl.Series("key", [sample_key(7, d) for d in kept["doc_id"]], dtype=pl.UInt64))
    expected = keyed.sort("key").head(MAX_NEGATIVES).sort("doc_id")["text"]
    direct = train_quality_classifier(default_positives(), expected, seed=7, epoch=2)

    metadata = store.require_manifest(names.QUALITY_CLASSIFIER, names.UNPARTITIONED)["metadata"]
    assert metadata["negatives"] == MAX_NEGATIVES
    assert metadata["snapshots"] == list(SNAPSHOTS)
    assert metadata["training_hash"] == direct.training_hash
    assert report.rows_in == metadata["positives"] + MAX_NEGATIVES
    model = cached_classifier(*committed_classifier(store))  # the published files load as the trained model
    assert model.training_hash == direct.training_hash
    texts = pl.Series(["a plain test sentence about databases", "click here buy now cheap"])
    assert model.score(texts).tolist() == pytest.approx(direct.score(texts).tolist())


def test_a_run_that_trained_but_died_before_committing_does_not_train_again(filtered_root, tmp_path, monkeypatch):
    store = _copy(filtered_root, tmp_path)
    options = ClassifierTrainingOptions(max_negatives=MAX_NEGATIVES, epoch=2)
    trainings = []
    train = scoring.run_train_classifier_task
    monkeypatch.setattr(scoring, "run_train_classifier_task", lambda task: trainings.append(task) or train(task))

    commit = PartitionWriter.commit

    def dies(self, *args, **kwargs):
        raise RuntimeError("killed before the commit")

    monkeypatch.setattr(PartitionWriter, "commit", dies)
    with pytest.raises(RuntimeError, match="killed before"):
        materialize_quality_classifier(store, InlineExecutor(), options)
    assert store.manifest(names.QUALITY_CLASSIFIER, names.UNPARTITIONED) is None
    assert len(trainings) == 1

    monkeypatch.setattr(PartitionWriter, "commit", commit)
    materialize_quality_classifier(store, InlineExecutor(), options)
    assert len(trainings) == 1  # the recorded training and its files were reused
    manifest = store.require_manifest(names.QUALITY_CLASSIFIER, names.UNPARTITIONED)
    assert manifest["metadata"]["negatives"] == MAX_NEGATIVES
    assert {name.rsplit(".", 1)[1] for name in manifest["files"]} == {"bin", "json"}
    cached_classifier(*committed_classifier(store))  # the files the first run wrote are whole


def test_too_few_documents_publish_the_bundled_classifier_or_fail_naming_the_step(tmp_path):
    with pytest.raises(ValueError, match="quality_classifier: only 0 filtered"):
        materialize_quality_classifier(
            DatasetStore.local(tmp_path / "empty"), InlineExecutor(), ClassifierTrainingOptions(when_too_few="error")
        )
    materialize_quality_classifier(DatasetStore.local(tmp_path / "empty"), InlineExecutor())
    metadata = DatasetStore.local(tmp_path / "empty").require_manifest(names.QUALITY_CLASSIFIER, names.UNPARTITIONED)
    assert metadata["metadata"]["source"] == "default"
