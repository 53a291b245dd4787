"""Helpers shared by the synthesis stages: versioned prompt files, stable ids, input frames."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources

import polars as pl
import pyarrow as pa

__all__ = ["derived_id", "load_prompt", "prompt_fingerprint", "render", "to_frame"]


@cache
def load_prompt(version: str) -> str:
    """Text of ``prompts/<version>.txt`` shipped with the package (e.g. ``rewire_v1``).

    A prompt file is never edited once released: a changed prompt is a new version, so the
    ``prompt_version`` column says exactly which words produced a row.
    """
    if not version or "/" in version or "\\" in version or version.startswith("."):
        raise ValueError(f"prompt_version must be a plain file stem such as 'rewire_v1', got {version!r}")
    path = resources.files("dataplatform.core.synthesis") / "prompts" / f"{version}.txt"
    if not path.is_file():
        raise ValueError(f"prompt_version {version!r}: no prompt file prompts/{version}.txt in dataplatform.core.synthesis")
    return path.read_text(encoding="utf-8")


def prompt_fingerprint(version: str) -> str:
    """sha256 (first 16 hex) of a prompt file's text, for run metadata."""
    return hashlib.sha256(load_prompt(version).encode("utf-8")).hexdigest()[:16]


def render(prompt: str, /, **fields: str) -> str:
    """Fill the ``{name}`` placeholders of ``prompt`` in one pass.

    Not ``str.format``: documents contain braces, and a value is never scanned for placeholders
    (a document containing ``{template}`` stays as it is). Unknown ``{...}`` are left alone.
    """
    if not fields:
        return prompt
    pattern = re.compile("|".join(re.escape("{" + name + "}") for name in fields))
    return pattern.sub(lambda m: fields[m.group(0)[1:-1]], prompt)


def derived_id(kind: str, *parts: str) -> str:
    """128-bit BLAKE2b hex id of a derived row from its kind and lineage (NUL-separated parts).

    Depends only on where the row came from and how it was made, so re-running a stage gives the
    same ids on every machine.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(kind.encode("utf-8"))
    for p in parts:
        h.update(b"\x00")
        h.update(str(p).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def to_frame(data: pl.DataFrame | pa.Table, required: tuple[str, ...], name: str) -> pl.DataFrame:
    """``data`` as a Polars frame, checking that ``required`` columns are present."""
    df = pl.from_arrow(data) if isinstance(data, pa.Table) else data
    if not isinstance(df, pl.DataFrame):
        raise TypeError(f"{name}: expected a polars DataFrame or pyarrow Table, got {type(data).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: input is missing column(s) {missing}; has {df.columns}")
    return df
