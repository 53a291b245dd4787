"""Rules for ``training_mix`` (no Dagster here)."""

from __future__ import annotations

import polars as pl

from dataplatform import names
from dataplatform.checks.frames import read_columns
from dataplatform.checks.outcome import CheckOutcome, outcome, sample_values
from dataplatform.io.datasets import DatasetStore

HELD_OUT = tuple(s for s in names.SPLITS if s != "train")


def no_heldout_documents(store: DatasetStore) -> CheckOutcome:
    """No row of the mix comes from a held-out document: neither a mix ``doc_id`` nor its
    ``source_doc_id`` (the crawl document a rewrite or an instruction pair was made from) is in the
    validation or test split, so evaluation text never reaches training in any form."""
    mix = read_columns(store, names.TRAINING_MIX, names.UNPARTITIONED, names.DATA, ["doc_id", "source_doc_id", "source"])
    held_out = pl.concat([read_columns(store, names.EVAL_SPLITS, names.UNPARTITIONED, s, ["doc_id"]) for s in HELD_OUT])["doc_id"]
    leaked = mix.filter(pl.col("doc_id").is_in(held_out.implode()) | pl.col("source_doc_id").is_in(held_out.implode()))
    by_source = dict(leaked.group_by("source").len().iter_rows())
    problems = (
        [
            f"{leaked.height} mix row(s) come from held-out documents ({by_source}): "
            f"{sample_values(leaked['source_doc_id'].to_list())}"
        ]
        if leaked.height
        else []
    )
    return outcome(
        f"{mix.height} mix rows, none from the {held_out.len()} held-out documents",
        problems,
        {"rows": mix.height, "held_out": held_out.len(), "leaked_by_source": by_source},
    )
