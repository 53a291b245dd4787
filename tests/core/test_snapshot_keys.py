"""Snapshot keys become partition keys and path segments: a trailing newline must not slip through."""

import dagster as dg
import pytest
from warc_factory import build_snapshot_warcs

from dataplatform.cli import main
from dataplatform.core.snapshot_keys import InvalidSnapshotKey, validate_snapshot_key
from dataplatform.definitions import defs
from dataplatform.io.crawl_sources import CrawlSource
from dataplatform.io.object_store import LocalLocation
from dataplatform.resources.storage import CrawlSourceResource

NEWLINE_KEYS = [
    "CC-MAIN-2024-10\n",
    "CC-MAIN-2024-10\r\n",
    "CC-MAIN-2024-10\r",
    "\nCC-MAIN-2024-10",
    "CC-MAIN\n2024-10",
    "CC-MAIN-2024-10\n\n",
    "CC-MAIN-2024-10 ",
]


@pytest.mark.parametrize("key", NEWLINE_KEYS)
def test_keys_with_line_breaks_or_spaces_are_refused(key):
    with pytest.raises(InvalidSnapshotKey, match="invalid snapshot key"):
        validate_snapshot_key(key)


@pytest.mark.parametrize("key", ["CC-MAIN-2024-10", "CC-SAMPLE-2026-05", "local", "a", "x" * 128, "snap_1.v2"])
def test_common_crawl_style_keys_pass_unchanged(key):
    assert validate_snapshot_key(key) == key


def test_cli_refuses_a_snapshot_name_with_a_trailing_newline(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["process", str(tmp_path / "x.warc.gz"), "--output", str(out), "--snapshot", "CC-NL\n"])
    assert exc.value.code == 2  # argparse usage error, before anything runs
    assert "invalid snapshot key 'CC-NL\\n'" in capsys.readouterr().err
    assert not out.exists()


def test_crawl_folder_named_with_a_trailing_newline_is_rejected(tmp_path):
    root = tmp_path / "crawl"
    build_snapshot_warcs(root, "CC-GOOD-01", n_files=1, broken=False)
    build_snapshot_warcs(root, "CC-EVIL-01\n", n_files=1, broken=False)
    valid, rejected = CrawlSource(LocalLocation(str(root))).list_snapshots()
    assert valid == ["CC-GOOD-01"]
    assert rejected == ["CC-EVIL-01\n"]
    with pytest.raises(InvalidSnapshotKey):
        CrawlSource(LocalLocation(str(root))).list_warc_files("CC-EVIL-01\n")


def test_sensor_creates_no_partition_for_a_folder_with_a_trailing_newline(tmp_path):
    root = tmp_path / "crawl"
    build_snapshot_warcs(root, "CC-GOOD-01", n_files=1, broken=False)
    build_snapshot_warcs(root, "CC-EVIL-01\n", n_files=1, broken=False)
    sensor = defs.get_sensor_def("crawl_snapshot_sensor")
    with dg.instance_for_test() as instance:
        resources = {"crawl_source": CrawlSourceResource(local_root=str(root))}
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert [r.partition_key for r in result.run_requests] == ["CC-GOOD-01"]
    [request] = result.dynamic_partitions_requests
    assert list(request.partition_keys) == ["CC-GOOD-01"]
