"""Validation of crawl-snapshot names, which become Dagster partition keys and storage path segments.

A snapshot name ends up inside object keys and file paths (``<root>/<asset>/<snapshot>/...``), so
anything that could escape the dataset root or split into two path segments is refused.
"""

from __future__ import annotations

import re

# Matched with ``fullmatch``: ``$`` in ``re.match`` also matches before a trailing newline, which let
# ``"CC-MAIN-2024-10\n"`` through.
_SNAPSHOT_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class InvalidSnapshotKey(ValueError):
    """A snapshot/partition key that is not safe to use as a path segment."""


def validate_snapshot_key(key: str) -> str:
    """Return ``key`` unchanged if it is a safe snapshot name, else raise :class:`InvalidSnapshotKey`.

    Allowed: 1-128 characters from ``[A-Za-z0-9._-]``, starting with a letter or digit, and no
    ``..`` anywhere (Common Crawl names such as ``CC-MAIN-2024-10`` pass).
    """
    if not isinstance(key, str):
        raise InvalidSnapshotKey(f"snapshot key must be a string, got {type(key).__name__}")
    if not _SNAPSHOT_KEY.fullmatch(key) or ".." in key:
        raise InvalidSnapshotKey(
            f"invalid snapshot key {key!r}: use 1-128 characters from [A-Za-z0-9._-], starting "
            "with a letter or digit, without '/' or '..'"
        )
    return key
