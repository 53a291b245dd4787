import hashlib
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dataplatform.core.training_mix import (
    build_manifest,
    count_tokens,
    load_tokenizer,
    plan_mix,
    tokenizer_sha256,
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Gardeners plant tomatoes in spring and harvest them in late summer.",
    "A barometer measures atmospheric pressure; falling values signal storms.",
    "Yeast makes bread dough rise when it rests in a warm kitchen.",
    "Neptune takes about one hundred and sixty five years to orbit the Sun.",
] * 20


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=120, special_tokens=["[UNK]", "[BOS]"]))
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


def test_token_counts_match_the_tokenizer(tokenizer_file):
    tok = load_tokenizer(tokenizer_file)
    texts = pl.Series(CORPUS[:5] + ["", None, "unseen wordsxyz ü"])
    counts = count_tokens(texts, tok, batch_size=3)
    assert counts.dtype == np.int64
    expected = [len(tok.encode(t or "", add_special_tokens=False).ids) for t in texts.to_list()]
    assert counts.tolist() == expected
    assert counts[5] == 0 and counts[6] == 0
    # Batches cut by characters (one text longer than the cap is a batch alone) count the same.
    long = " ".join(CORPUS) * 3
    mixed = pl.Series([long, *texts.to_list(), long])
    whole = count_tokens(mixed, tok, batch_size=4096, max_batch_chars=10**9)
    assert count_tokens(mixed, tok, max_batch_chars=len(long) // 2).tolist() == whole.tolist()
    assert count_tokens(mixed, tok, max_batch_chars=40).tolist() == whole.tolist()
    assert whole[0] == len(tok.encode(long, add_special_tokens=False).ids) > 0


def test_truncation_in_the_json_does_not_cap_counts(tokenizer_file, tmp_path):
    tok = load_tokenizer(tokenizer_file)
    tok.enable_truncation(max_length=4)
    long = pl.Series([" ".join(CORPUS[:3])])
    assert count_tokens(long, tok)[0] > 4
    assert tok.truncation is not None  # caller's tokenizer untouched


def test_load_tokenizer_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_tokenizer(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="bad.json"):
        load_tokenizer(bad)


def _source(prefix: str, n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "doc_id": [hashlib.blake2b(f"{prefix}{i}".encode(), digest_size=16).hexdigest() for i in range(n)],
            "text": [f"{prefix} document {i}" for i in range(n)],
            "n_tokens": rng.integers(50, 500, n),
        }
    )


@pytest.fixture
def sources():
    return {"web": _source("web", 4000, 1), "rewritten": _source("rw", 1500, 2), "instruct": _source("ins", 800, 3)}


PROPS = {"web": 0.6, "rewritten": 0.25, "instruct": 0.15}


def test_proportions_honoured_scarcest_bounds_total(sources):
    plan = plan_mix(sources, PROPS)
    ach = plan.achieved_proportions
    for name, p in PROPS.items():
        assert ach[name] == pytest.approx(p, abs=0.005)
    # one source is used whole and bounds the total; no document is repeated
    assert any(s.docs == s.available_docs for s in plan.sources.values())
    for name, frame in plan.frames.items():
        assert frame["doc_id"].n_unique() == frame.height
        assert plan.sources[name].tokens == frame["n_tokens"].sum()
    mix = plan.to_frame(["doc_id", "n_tokens"])
    assert mix.height == plan.total_docs and set(mix["source"]) == set(PROPS)


def test_explicit_total_and_no_upsampling(sources):
    plan = plan_mix(sources, PROPS, total_tokens=200_000)
    assert plan.total_tokens == pytest.approx(200_000, rel=0.01)
    with pytest.raises(ValueError, match=r"upsampling.*'instruct'"):
        plan_mix(sources, PROPS, total_tokens=10_000_000)


def test_deterministic_and_seeded(sources):
    a = plan_mix(sources, PROPS, seed=7)
    b = plan_mix({k: v.sample(fraction=1.0, shuffle=True, seed=3) for k, v in sources.items()}, PROPS, seed=7)
    for name in PROPS:
        assert a.frames[name].equals(b.frames[name])  # input order does not matter
    c = plan_mix(sources, PROPS, seed=8)
    assert not a.frames["web"]["doc_id"].equals(c.frames["web"]["doc_id"])
    # a larger total extends a source's selection, it never reshuffles it
    small = plan_mix(sources, PROPS, total_tokens=50_000, seed=7)
    big = plan_mix(sources, PROPS, total_tokens=150_000, seed=7)
    s, bg = small.frames["web"]["doc_id"], big.frames["web"]["doc_id"]
    assert bg.head(s.len()).equals(s)


def test_dropped_rows_are_not_candidates(sources):
    web = sources["web"].with_columns(
        pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit("contamination:x")).otherwise(None).alias("drop_reason")
    )
    plan = plan_mix({**sources, "web": web}, PROPS)
    assert plan.frames["web"]["drop_reason"].null_count() == plan.frames["web"].height
    assert plan.sources["web"].available_docs == 2000


def test_missing_source_errors_by_default_or_redistributes(sources):
    partial = {k: v for k, v in sources.items() if k != "instruct"}
    with pytest.raises(ValueError, match=r"\['instruct'\].*on_missing"):
        plan_mix(partial, PROPS)
    empty = {**partial, "instruct": sources["instruct"].head(0)}
    with pytest.raises(ValueError, match="instruct"):
        plan_mix(empty, PROPS)
    for given in (partial, empty):
        plan = plan_mix(given, PROPS, on_missing="redistribute")
        assert plan.redistributed == ("instruct",)
        assert plan.sources["instruct"].docs == 0
        assert plan.sources["web"].target_proportion == pytest.approx(0.6 / 0.85)
        assert plan.achieved_proportions["web"] == pytest.approx(0.6 / 0.85, abs=0.005)
    with pytest.raises(ValueError, match="no entry in proportions"):
        plan_mix({**sources, "extra": sources["web"]}, PROPS)
    with pytest.raises(ValueError, match="proportions must sum to 1"):
        plan_mix(sources, {"web": 0.5, "rewritten": 0.25, "instruct": 0.15})


def test_manifest_is_byte_identical_and_canonical(sources, tokenizer_file):
    shard_hashes = [hashlib.sha256(f"shard{i}".encode()).hexdigest() for i in range(3)]
    config = {"proportions": PROPS, "seed": 7, "tokenizer": "tokenizers/tiny.json", "n": 13}
    th = tokenizer_sha256(tokenizer_file)

    def run() -> bytes:
        plan = plan_mix({k: v.clone() for k, v in sources.items()}, PROPS, seed=7)
        return build_manifest(plan, config=dict(reversed(list(config.items()))), shard_hashes=shard_hashes, tokenizer_hash=th)

    first, second = run(), run()
    assert first == second
    doc = json.loads(first)
    assert list(doc) == sorted(doc)
    assert doc["tokenizer_sha256"] == th and doc["shards"] == shard_hashes
    assert doc["totals"]["tokens"] == sum(s["tokens"] for s in doc["sources"].values())
    assert doc["sources"]["web"]["achieved_proportion"] == pytest.approx(0.6, abs=0.005)
    assert json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n" == first
    plan = plan_mix(sources, PROPS, seed=7)
    with pytest.raises(ValueError, match=r"config\['output'\].*absolute"):
        build_manifest(plan, config={"output": "/data/mix"}, shard_hashes=[], tokenizer_hash=th)
    import datetime

    with pytest.raises(ValueError, match=r"config\['when'\].*timestamp"):
        build_manifest(plan, config={"when": datetime.datetime(2026, 1, 1)}, shard_hashes=[], tokenizer_hash=th)
    with pytest.raises(ValueError, match=r"shard_hashes\[0\]"):
        build_manifest(plan, config={}, shard_hashes=["abc"], tokenizer_hash=th)


def test_end_to_end_counts_then_plan(tokenizer_file):
    tok = load_tokenizer(tokenizer_file)
    frames = {}
    for name, texts in {"a": CORPUS[:50], "b": CORPUS[50:]}.items():
        s = pl.Series(texts)
        frames[name] = pl.DataFrame(
            {"doc_id": [f"{name}{i}" for i in range(len(texts))], "text": s, "n_tokens": count_tokens(s, tok)}
        )
    plan = plan_mix(frames, {"a": 0.5, "b": 0.5})
    assert plan.achieved_proportions["a"] == pytest.approx(0.5, abs=0.02)


def test_rewrites_and_pairs_of_held_out_documents_never_reach_the_mix(tmp_path):
    """A rewrite or an instruction pair made from a validation/test document is the held-out text in
    another form: the mix's candidates leave it out and keep those from train documents and from
    documents outside the splits (REWIRE also rewrites below-cut documents, which no split holds)."""
    from dataplatform import names
    from dataplatform.io.datasets import DatasetStore
    from dataplatform.stages.mix import mix_sources

    store = DatasetStore.local(tmp_path / "store")
    split_of = {"train": ["t1", "t2"], "validation": ["v1"], "test": ["x1"]}
    with store.write_partition(names.EVAL_SPLITS, names.UNPARTITIONED) as writer:
        for split, ids in split_of.items():
            writer.write_table(
                split, pl.DataFrame({"doc_id": ids, "snapshot": "S1", "url": "u", "text": "raw text", "split": split}).to_arrow()
            )
        writer.commit({})
    sources = {"rw-t1": "t1", "rw-v1": "v1", "rw-x1": "x1", "rw-low": "below-cut-doc"}
    with store.write_partition(names.REWRITTEN, "S1") as writer:
        writer.write_table(
            "data",
            pl.DataFrame(
                {"doc_id": list(sources), "source_doc_id": list(sources.values()), "snapshot": "S1", "text": "a rewrite"}
            ).to_arrow(),
        )
        writer.commit({})
    with store.write_partition(names.INSTRUCTION_PAIRS, "S1") as writer:
        writer.write_table(
            "data",
            pl.DataFrame(
                {
                    "pair_id": ["p-t2", "p-x1", "p-v1"],
                    "source_doc_id": ["t2", "x1", "v1"],
                    "snapshot": "S1",
                    "instruction": "What?",
                    "answer": "This.",
                }
            ).to_arrow(),
        )
        writer.commit({})

    candidates = mix_sources(store)
    assert sorted(candidates["curated_raw"]["doc_id"]) == ["t1", "t2"]
    assert sorted(candidates["rewritten"]["doc_id"]) == ["rw-low", "rw-t1"]
    assert candidates["instructions"]["doc_id"].to_list() == ["p-t2"]
    assert candidates["instructions"]["text"].to_list() == ["What?\n\nThis."]
