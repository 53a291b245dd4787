import hashlib

import polars as pl
import pytest
import xxhash

from dataplatform.core.eval_splits import hash_split, stable_id_hash, temporal_split, validate_fractions


def _ids(start: int, stop: int) -> pl.Series:
    return pl.Series("doc_id", [hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest() for i in range(start, stop)])


def test_same_ids_same_splits_and_order_of_fractions_irrelevant():
    ids = _ids(0, 5000)
    a = hash_split(ids)
    b = hash_split(ids)
    c = hash_split(ids, fractions={"test": 0.01, "validation": 0.01, "train": 0.98})
    assert a.name == "split" and a.dtype == pl.String
    assert a.to_list() == b.to_list() == c.to_list()
    # order of the input does not matter: a split is a function of the id alone
    rev = hash_split(ids.reverse())
    assert rev.reverse().to_list() == a.to_list()


def test_new_ids_never_move_existing_ones():
    old = _ids(0, 20_000)
    before = hash_split(old)
    after = hash_split(pl.concat([_ids(50_000, 80_000), old, _ids(20_000, 30_000)]))
    assert after.slice(30_000, 20_000).to_list() == before.to_list()


def test_fractions_respected_on_100k():
    ids = _ids(0, 100_000)
    counts = hash_split(ids).value_counts().to_dicts()
    share = {r["split"]: r["count"] / 100_000 for r in counts}
    assert share["train"] == pytest.approx(0.98, abs=0.003)
    assert share["validation"] == pytest.approx(0.01, abs=0.002)
    assert share["test"] == pytest.approx(0.01, abs=0.002)
    halves = hash_split(ids, fractions={"a": 0.5, "b": 0.5, "never": 0.0})
    assert set(halves.unique()) == {"a", "b"}
    assert halves.value_counts().filter(pl.col("split") == "a")["count"][0] / 100_000 == pytest.approx(0.5, abs=0.01)


def test_salt_changes_assignment_and_hash_is_plain_xxh3():
    ids = _ids(0, 2000)
    assert hash_split(ids, salt="x").to_list() != hash_split(ids, salt="y").to_list()
    assert int(stable_id_hash(pl.Series(["doc"]), "s")[0]) == xxhash.xxh3_64_intdigest(b"s\x00doc")


def test_bad_fractions_raise_naming_the_parameter():
    ids = _ids(0, 10)
    with pytest.raises(ValueError, match="fractions must sum to 1"):
        hash_split(ids, fractions={"train": 0.9, "test": 0.2})
    with pytest.raises(ValueError, match=r"fractions\['test'\]"):
        hash_split(ids, fractions={"train": 1.1, "test": -0.1})
    with pytest.raises(ValueError, match="fractions"):
        hash_split(ids, fractions={})
    with pytest.raises(ValueError, match="split names"):
        validate_fractions({"": 1.0})
    with pytest.raises(ValueError, match=r"fractions\['train'\]"):
        validate_fractions({"train": float("nan")})
    with pytest.raises(ValueError, match="null"):
        hash_split(pl.Series(["a", None]))


def test_empty_ids():
    out = hash_split(pl.Series("doc_id", [], dtype=pl.String))
    assert out.len() == 0 and out.dtype == pl.String


def _docs() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(9)],
            "snapshot": ["CC-MAIN-2024-10", "CC-MAIN-2023-50", "CC-MAIN-2024-18"] * 3,
        }
    )


def test_temporal_split_holds_out_newest_snapshot():
    out = temporal_split(_docs())
    assert out.filter(pl.col("split") == "test")["snapshot"].unique().to_list() == ["CC-MAIN-2024-18"]
    assert set(out.filter(pl.col("split") == "train")["snapshot"]) == {"CC-MAIN-2023-50", "CC-MAIN-2024-10"}
    two = temporal_split(_docs(), holdout_snapshots=2, holdout_split="eval")
    assert set(two.filter(pl.col("split") == "eval")["snapshot"]) == {"CC-MAIN-2024-10", "CC-MAIN-2024-18"}
    assert out["doc_id"].to_list() == _docs()["doc_id"].to_list()


def test_temporal_split_one_partition_with_known_snapshots():
    part = _docs().filter(pl.col("snapshot") == "CC-MAIN-2023-50")
    known = ["CC-MAIN-2023-50", "CC-MAIN-2024-10", "CC-MAIN-2024-18"]
    assert set(temporal_split(part, snapshots=known)["split"]) == {"train"}
    newest = _docs().filter(pl.col("snapshot") == "CC-MAIN-2024-18")
    assert set(temporal_split(newest, snapshots=known)["split"]) == {"test"}
    with pytest.raises(ValueError, match="not in snapshots"):
        temporal_split(_docs(), snapshots=known[:2])


def test_temporal_split_bad_config():
    with pytest.raises(ValueError, match="holdout_snapshots"):
        temporal_split(_docs(), holdout_snapshots=3)
    with pytest.raises(ValueError, match="holdout_snapshots"):
        temporal_split(_docs(), holdout_snapshots=0)
    with pytest.raises(ValueError, match="snapshot_column"):
        temporal_split(_docs(), snapshot_column="crawl")
    with pytest.raises(ValueError, match="must differ"):
        temporal_split(_docs(), holdout_split="train")
