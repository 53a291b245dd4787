"""Eval splits and the training mix (unpartitioned: they span every snapshot).

``eval_splits``: each decontaminated document gets train/validation/test from a salted hash of
its doc_id (stable when snapshots arrive), or, in temporal mode, the newest snapshot(s) become
the test split (Longpre et al., "A Pretrainer's Guide": temporal shift between training and
evaluation data matters and fine-tuning does not undo it).

``training_mix``: curated raw text (train split only), rewritten text and instruction pairs,
chosen by token proportions with a configurable tokenizer; written as shards plus a canonical
manifest (sources, counts, config, tokenizer and shard hashes) that makes the mix reproducible.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

from dataplatform.core.decontamination import count_overlaps
from dataplatform.core.eval_splits import hash_split, temporal_split
from dataplatform.core.schemas import MIX, conform
from dataplatform.core.tokenizer_utils import count_tokens, load_tokenizer, tokenizer_sha256
from dataplatform.core.training_mix import build_manifest, plan_mix
from dataplatform.io.datasets import DatasetStore
from dataplatform.stages.decontamination import DECONTAMINATED_ASSET, load_benchmark_index
from dataplatform.stages.scoring import UNPARTITIONED

EVAL_SPLITS_ASSET = "eval_splits"
TRAINING_MIX_ASSET = "training_mix"
REWRITTEN_ASSET = "rewritten"
INSTRUCTION_PAIRS_ASSET = "instruction_pairs"
SPLITS = ("train", "validation", "test")
MIX_MANIFEST = "mix_manifest.json"


def default_tokenizer_path() -> str:
    from dataplatform.sample_data import SAMPLE_DATA_DIR

    return str(SAMPLE_DATA_DIR / "tokenizer" / "sample-bpe-4k.json")


@dataclasses.dataclass(frozen=True)
class SplitOptions:
    mode: str = "hash"  # "hash" | "temporal"
    fractions: tuple[tuple[str, float], ...] = (("train", 0.98), ("validation", 0.01), ("test", 0.01))
    salt: str = "dataplatform-v1"
    holdout_snapshots: int = 1


def curated_frame(store: DatasetStore) -> pl.DataFrame:
    snapshots = store.partitions(DECONTAMINATED_ASSET)
    frames = [store.scan(DECONTAMINATED_ASSET, s).select("doc_id", "snapshot", "url", "text").collect() for s in snapshots]
    frames = [f for f in frames if f.height]
    return pl.concat(frames) if frames else pl.DataFrame(schema={"doc_id": pl.String, "snapshot": pl.String, "url": pl.String, "text": pl.String})


def materialize_eval_splits(store: DatasetStore, options: SplitOptions = SplitOptions()) -> dict[str, Any]:
    curated = curated_frame(store)
    if options.mode == "hash":
        split = curated.with_columns(hash_split(curated["doc_id"], dict(options.fractions), salt=options.salt).alias("split"))
    elif options.mode == "temporal":
        split = temporal_split(curated, options.holdout_snapshots)
    else:
        raise ValueError(f"eval_splits mode must be 'hash' or 'temporal', got {options.mode!r}")
    counts = {name: int((split["split"] == name).sum()) for name in SPLITS}
    with store.write_partition(EVAL_SPLITS_ASSET, UNPARTITIONED) as writer:
        for name in SPLITS:
            writer.write_table(name, split.filter(pl.col("split") == name).sort("doc_id").to_arrow())
        metadata = {"mode": options.mode, "counts": counts, "snapshots": sorted(set(curated["snapshot"])),
                    "salt": options.salt, "fractions": dict(options.fractions)}
        writer.commit(metadata)
    return metadata


@dataclasses.dataclass(frozen=True)
class MixOptions:
    proportions: tuple[tuple[str, float], ...] = (("curated_raw", 0.45), ("rewritten", 0.45), ("instructions", 0.1))
    total_tokens: int | None = None
    seed: int = 0
    tokenizer_path: str | None = None  # None: the bundled sample tokenizer
    on_missing: str = "redistribute"  # sources not materialized yet (no GPU stages) give their share to the rest


def _all_partitions(store: DatasetStore, asset: str, columns: list[str]) -> pl.DataFrame | None:
    frames = [store.read_frame(asset, s, columns=columns) for s in store.partitions(asset)]
    frames = [f for f in frames if f.height]
    return pl.concat(frames) if frames else None


def mix_sources(store: DatasetStore) -> dict[str, pl.DataFrame]:
    train_ids = store.read_frame(EVAL_SPLITS_ASSET, UNPARTITIONED, "train", columns=["doc_id"])["doc_id"]
    curated = curated_frame(store).filter(pl.col("doc_id").is_in(train_ids.implode()))
    sources = {"curated_raw": curated.select("doc_id", pl.col("doc_id").alias("source_doc_id"), "snapshot", "text")}
    rewritten = _all_partitions(store, REWRITTEN_ASSET, ["doc_id", "source_doc_id", "snapshot", "text"])
    if rewritten is not None:
        sources["rewritten"] = rewritten
    pairs = _all_partitions(store, INSTRUCTION_PAIRS_ASSET, ["pair_id", "source_doc_id", "snapshot", "instruction", "answer"])
    if pairs is not None:
        sources["instructions"] = pairs.select(
            pl.col("pair_id").alias("doc_id"), "source_doc_id", "snapshot",
            (pl.col("instruction") + "\n\n" + pl.col("answer")).alias("text"))
    return sources


def materialize_training_mix(store: DatasetStore, options: MixOptions = MixOptions()) -> dict[str, Any]:
    started = time.perf_counter()
    tokenizer_path = options.tokenizer_path or default_tokenizer_path()
    tokenizer = load_tokenizer(tokenizer_path)
    sources = {name: frame.with_columns(pl.Series("n_tokens", count_tokens(frame["text"], tokenizer), dtype=pl.Int64))
               for name, frame in mix_sources(store).items()}
    proportions = dict(options.proportions)
    plan = plan_mix(sources, {k: v for k, v in proportions.items() if k in sources or options.on_missing == "redistribute"},
                    total_tokens=options.total_tokens, seed=options.seed, on_missing=options.on_missing)
    mix = plan.to_frame()  # sources that were missing contribute no rows
    overlaps = count_overlaps(mix, load_benchmark_index(store))
    config = {"proportions": proportions, "total_tokens": options.total_tokens, "seed": options.seed,
              "on_missing": options.on_missing, "tokenizer": Path(tokenizer_path).name}
    with store.write_partition(TRAINING_MIX_ASSET, UNPARTITIONED) as writer:
        info = writer.write_table("data", conform(mix.to_arrow(), MIX))
        manifest = build_manifest(plan, config=config, shard_hashes=[info.sha256], tokenizer_hash=tokenizer_sha256(tokenizer_path))
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / MIX_MANIFEST
            file.write_bytes(manifest)
            writer.add_file(file)
        metadata = {
            "rows": mix.height,
            "tokens": int(mix["n_tokens"].sum() or 0),
            "tokens_per_source": {k: v.tokens for k, v in plan.sources.items()},
            "docs_per_source": {k: v.docs for k, v in plan.sources.items()},
            "achieved_proportions": {k: round(v, 4) for k, v in plan.achieved_proportions.items()},
            "redistributed": list(plan.redistributed),
            "benchmark_overlaps": overlaps,
            "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
            "wall_seconds": round(time.perf_counter() - started, 3),
        }
        writer.commit(metadata)
    return metadata
