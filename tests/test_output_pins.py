"""Refactors must not change what the platform writes: content hashes of the sample's datasets.

The hashes are over rows (see ``content_hash.py``), so re-cutting shards does not change them, but
any changed value, row or column does. A change that is *meant* to alter outputs updates the pin
in the same commit and says why in its message.
"""

import pytest
from content_hash import partition_content_hashes

from dataplatform.sample_data import SAMPLE_SNAPSHOTS

PINNED = {
    "raw_pages/CC-SAMPLE-2026-05": {
        "data": "c636bdcef2691a98c828e0b13ba167c2f6fbf8851e17eee362bce1fd8c8465b3",
        "quarantine": "442584d4a9fd1e81c655b994b26b0085157a77ced3f40fd9fb6b43530d06abbe",
    },
    "raw_pages/CC-SAMPLE-2026-10": {
        "data": "41c0f17e091ec0d99357606b6960285b4b7f579ebf0f9bc7707a0778c7917680",
        "quarantine": "0c0cd9a5221eea401c88fd5fab27e424417eb86b871d9e5135638151aabfa003",
    },
    "documents/CC-SAMPLE-2026-05": {"data": "3923f5c41fa7ec191111b587f91c315fe0c1351870ea7975f8f6e5cc21386a1e"},
    "documents/CC-SAMPLE-2026-10": {"data": "a1cf9c409d38f95c3be0eac0ad27c6554f01453af8fb51571d5161ea8b276d96"},
    "filtered/CC-SAMPLE-2026-05": {
        "data": "2eccd6f95e04df94023b8d98a2bb0ec4ab8f0d6aba90f88f2fbfb88d3c86478e",
        "dropped": "7a81bfe41be613a9ae31afedb7cb6ea42245ac7264309cdd1fe13d0094f0376a",
    },
    "filtered/CC-SAMPLE-2026-10": {
        "data": "04e56ccbf4423feeac5f6c5ee15453ae49d94ce1c3472a3ea14edf86d9a2b8a1",
        "dropped": "5c11c2275f416e3ccae5a2610fb80623ab6762eb24b9181bec64ca32b4311ecd",
    },
    "scored/CC-SAMPLE-2026-05": {
        "data": "94ec50aac8423967dad9acb72880510f53a636130f44854ea44091a29b050b09",
        "dropped": "550eb87dc4fe0d06e9dcb59f2bcdfcaa3bc0862f36cb12695ef1f8e30c777502",
        "rewrite_candidates": "722b595255fcea30af0cece43a66fdb90abfcf84025db0c5fedee2576a45c58d",
    },
    "scored/CC-SAMPLE-2026-10": {
        "data": "2e524c19a1c9ef8134e710494ee44660f8b09ed81ef23f67c6a6ddd70a98ecc3",
        "dropped": "e225df551ae676ac4cbf67fbda407270f38271a1b63c4cc55cf0d1a755f7ada3",
        "rewrite_candidates": "ae9c4be3cd79ab7a9fce0c6359417e756a8e3253e36614b7c709844e530d4609",
    },
    "deduplicated/CC-SAMPLE-2026-05": {
        "data": "f3f4fb8649e4af3decaf462e8efe0a9cea0c70f4e48f5a90963069a0ded8ba2e",
        "dropped": "0a270676445a99b2ece2acdc30063be778a00e4f5b3e7d3f06e6f19e6a30c98d",
        "rewrite_pool": "26e78e426f52fef119333e90b3e57a78d54e40b8b5bdb2cbd2e2c2bac96488a1",
    },
    "deduplicated/CC-SAMPLE-2026-10": {
        "data": "48e2427774d552c63cd3bafb5c41ab9e7e479e51b5f1165a29d70d6d092a434d",
        "dropped": "26ba2e7e985cac80bdfe03333e5c6a087bdc74c7aa9fd3f5dcb7f6d0bbfc33a9",
        "rewrite_pool": "93edef261d1faec4f44e0cdfdeddb6768020a078569c99dc1d8ea05586056e38",
    },
    "decontaminated/CC-SAMPLE-2026-05": {
        "data": "bc69dc9263756a43282a5bc0ff451a99a519c3a0351109b48c8e82762573c27c",
        "dropped": "0a990d7bf749e35eedf61f213c1c5770264df58dca34cc7fe90b6d5e3e283b2f",
        "rewrite_pool": "d11072576034878d4052f049b8d8f702f2aa09d5a7fc3f5ac57a12d9d011c053",
    },
    "decontaminated/CC-SAMPLE-2026-10": {
        "data": "f58b5ad3221d714f9c09dc29d8816db05e68d3e74d04d2cae6cfee9d3215a455",
        "dropped": "875047e9f22e91697a4aa4e9dfc4a2c642c65ed6e7fbfa74f677c7d71ac1cd9a",
        "rewrite_pool": "e4ca12ac2ff0bc7859ceb56ef54935201807ebe0f28d2dd6441ae2e5f54e0c54",
    },
    "eval_benchmarks/unpartitioned": {
        "items": "8a0eb73a6859cd80d1366f7d6753c323fad7051c227a2f5403ee9f9096511b87",
        "ngram_index": "4ccc9ecce44a577c54c2bfeac962702a177419ce29c75be1c96839e00c42769b",
    },
    "eval_splits/unpartitioned": {
        "test": "d99ff715f016d7a8c8f3a18a81f6e8a144b7826bba742f5829f87e48a8f2dfc0",
        "train": "509b595d12f2487123281de7018e25143b099eb34cf6a379c20d65ff7850d922",
        "validation": "d64f3e7fc7c1987c365cc8f8b704c9eb9fe84af9ba773de95c61bf6155baa7fc",
    },
    "training_mix/unpartitioned": {"data": "8b18ba09ec13bb74668b9d36beb86febb6fa5fe59508ea946c2aa464b3ee8e35"},
    "training_mix/manifest_sha256": "61a2548a17affaf68976890d9bee54f1eef42a6b681f8bed51a282191f60195e",
}


def _pinned_partitions():
    return sorted(k for k in PINNED if not k.endswith("manifest_sha256"))


@pytest.mark.slow
@pytest.mark.parametrize("key", _pinned_partitions())
def test_sample_dataset_content_is_pinned(sample, key):
    store, _, _ = sample
    asset, partition = key.split("/")
    assert partition in (*SAMPLE_SNAPSHOTS, "unpartitioned")
    actual = partition_content_hashes(store, asset, partition)
    assert actual == PINNED[key], f"{key} content hashes are now {actual}"


@pytest.mark.slow
def test_training_mix_manifest_is_pinned(sample):
    store, _, _ = sample
    manifest = store.require_manifest("training_mix", "unpartitioned")
    actual = manifest["metadata"]["manifest_sha256"]
    assert actual == PINNED["training_mix/manifest_sha256"], f"training_mix manifest sha256 is now {actual}"
