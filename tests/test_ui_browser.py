"""The Dagster UI in a real headless browser: our asset graph, our checks, and a run launched by clicking.

Starts ``dagster-webserver`` for ``workspace.yaml`` on a free loopback port (fresh DAGSTER_HOME and
dataset root under tmp, ``DATAPLATFORM_MAX_WORKERS=1``), drives Debian's Chromium through
Debian's chromedriver with Selenium, and asserts on what the pages show. Screenshots go to
``tests/artifacts/``.

Needs ``/usr/bin/chromium``, ``/usr/bin/chromedriver`` and the ``selenium`` package
(``bash scripts/install_browser.sh``). Without them the test is skipped, unless ``CI`` is set,
where it fails instead.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest
from ui_support import CHROMEDRIVER, CHROMIUM, DagsterWebserver, Page, make_chrome

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SNAPSHOT = "CC-SAMPLE-2026-05"
GROUPS = ("ingest", "filter", "dedup")
ASSETS = (
    "crawl_warc_files",
    "raw_pages",
    "documents",
    "filtered",
    "quality_classifier",
    "scored",
    "deduplicated",
    "dedup_signature_index",
)
RUN_TIMEOUT_S = 300
CHECK_COUNTS = {
    "documents": 2,
    "raw_pages": 2,
    "filtered": 2,
    "scored": 2,
    "quality_classifier": 1,
    "deduplicated": 3,
    "crawl_warc_files": 1,
}
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium Python package")
    if missing:
        reason = f"headless-browser UI test needs {', '.join(missing)}; run `bash scripts/install_browser.sh`"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require_browser()
    web = DagsterWebserver(tmp_path_factory.mktemp("dagster_ui"))
    try:
        web.start(timeout=180)
        # The sensor would add it too, but only once the daemon ticks it (>= 60 s) and it would
        # launch whole-pipeline runs of every sample snapshot; add the partition as the UI's
        # "Add a partition" does.
        web.add_dynamic_partition("crawl_snapshots", SNAPSHOT)
        yield web
    finally:
        web.stop()


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    driver = make_chrome(tmp_path_factory.mktemp("chromium_profile"))
    try:
        yield Page(driver, server.url, ARTIFACTS)
    finally:
        driver.quit()


@contextlib.contextmanager
def screenshot_on_failure(page: Page, name: str, server: DagsterWebserver | None = None):
    try:
        yield
    except BaseException as exc:
        shot = page.screenshot(f"FAILED-{name}")
        note = f"\n(screenshot: {shot})"
        if server is not None:
            note += f"\n--- webserver log tail ---\n{server.log_tail(40)}"
        if isinstance(exc, AssertionError):
            raise AssertionError(f"{exc}{note}") from exc
        raise


def test_asset_graph_shows_our_groups(page, server):
    with screenshot_on_failure(page, "asset_graph", server):
        page.open("/asset-groups")
        page.wait_text("Global asset lineage", timeout=60)
        for group in GROUPS:
            page.wait_text(group)
        page.wait_xpath("//button[starts-with(normalize-space(), 'Materialize all')]", what="Materialize all button")
        page.screenshot("asset_graph")

        page.open("/locations/dataplatform/asset-groups/ingest")
        for asset in ("crawl_warc_files", "raw_pages", "documents"):
            page.wait_text(asset)
        page.wait_text("Asset checks")
        page.screenshot("asset_group_ingest")


def test_asset_catalog_lists_assets_and_their_groups(page, server):
    with screenshot_on_failure(page, "asset_catalog", server):
        page.open("/assets")
        for asset in ASSETS:
            page.wait_text(asset, timeout=60)
        text = page.body_text()
        for group in GROUPS:
            assert group in text.split("\n"), f"group {group!r} not shown in the catalog:\n{text[:3000]}"
        page.screenshot("asset_catalog")


def check_description(asset: str, check: str) -> str:
    from dataplatform.definitions import all_asset_checks

    return next(
        s.description for c in all_asset_checks for s in c.check_specs if (s.asset_key.to_user_string(), s.name) == (asset, check)
    )


def select_check(page: Page, asset: str, check: str) -> None:
    """The asset's Checks tab with ``check`` selected: clicked in the list, its description shown."""
    page.open(f"/assets/{asset}?view=checks")
    page.wait_text(f"Checks ({CHECK_COUNTS[asset]})", timeout=60)
    page.wait_text(check).click()
    page.wait_text(check_description(asset, check))


@pytest.mark.parametrize(
    "asset, check, blocking",
    [
        ("documents", "great_expectations_suite", True),
        ("documents", "every_page_accounted_for", True),
        ("raw_pages", "quarantine_share_in_band", False),
        ("filtered", "great_expectations_suite", True),
        ("scored", "ranked_by_score", True),
        ("quality_classifier", "min_heldout_auc", True),
        ("deduplicated", "duplicate_of_resolves", True),
        ("crawl_warc_files", "warc_files_readable", False),
    ],
)
def test_asset_checks_are_shown(page, server, asset, check, blocking):
    with screenshot_on_failure(page, f"checks_{asset}_{check}", server):
        select_check(page, asset, check)
        if blocking:
            page.wait_text("This is a blocking asset check.")
        else:
            assert "This is a blocking asset check." not in page.body_text()
        if asset == "documents":
            page.screenshot(f"asset_checks_documents_{check}")


def _wait_for_new_ui_run(server: DagsterWebserver, before: set[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [r for r in server.runs() if r["runId"] not in before]
        if new:
            assert len(new) == 1, f"expected one run from the dialog, got {new}"
            return new[0]["runId"]
        time.sleep(0.5)
    raise AssertionError(f"no run was created within {timeout:.0f}s of clicking 'Launch 1 run'")


def _wait_for_terminal(server: DagsterWebserver, run_id: str, page: Page, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    shown_at = 0.0
    while True:
        run = server.run(run_id)
        if run.get("status") in TERMINAL:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(
                f"run {run_id} still {run.get('status')} after {timeout:.0f}s\n--- webserver log tail ---\n{server.log_tail(40)}"
            )
        if time.monotonic() - shown_at > 20:  # keep the run page fresh for the failure screenshot
            page.open(f"/runs/{run_id}")
            shown_at = time.monotonic()
        time.sleep(2)


def test_materialize_sample_partition_from_ui(page, server):
    with screenshot_on_failure(page, "materialize", server):
        # The ingest group's lineage page: "Materialize all" there selects raw_pages + documents
        # (crawl_warc_files is an external AssetSpec, not materializable).
        page.open("/locations/dataplatform/asset-groups/ingest")
        page.wait_text("documents", timeout=60)
        button = page.wait_xpath("//button[starts-with(normalize-space(), 'Materialize all')]", what="Materialize all")
        assert "(2)" in button.text, f"expected raw_pages + documents, button says {button.text!r}"
        button.click()

        dialog = "//*[@role='dialog']"
        title = page.wait_text("Launch runs to materialize 2 assets", within=f"{dialog}//")
        page.wait_text("Select a partition or create one", within=f"{dialog}//").click()
        page.wait_xpath(f"//div[@title='{SNAPSHOT}']", what=f"partition {SNAPSHOT} in the partition picker").click()
        title.click()  # close the picker, keep the dialog
        page.wait_text("1 partition", within=f"{dialog}//")
        launch = page.wait_xpath(f"{dialog}//button[normalize-space()='Launch 1 run']", what="'Launch 1 run' button")
        assert launch.is_enabled(), "'Launch 1 run' is disabled"
        page.screenshot("launch_dialog")

        before = {r["runId"] for r in server.runs()}
        started = time.monotonic()
        launch.click()
        run_id = _wait_for_new_ui_run(server, before)

        page.open(f"/runs/{run_id}")
        page.wait_text(f"partition: {SNAPSHOT}", timeout=60)
        run = _wait_for_terminal(server, run_id, page, RUN_TIMEOUT_S)
        elapsed = time.monotonic() - started

        if run["status"] != "SUCCESS":
            page.open(f"/runs/{run_id}")
            time.sleep(3)
            errors = "\n".join(server.run_failure_messages(run_id)[-10:])
            raise AssertionError(f"run {run_id} ended {run['status']} after {elapsed:.0f}s:\n{errors}")

        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags.get("dagster/partition") == SNAPSHOT
        assert tags.get("dagster/from_ui") == "true"
        assert sorted(p["path"][-1] for p in run["assetSelection"]) == ["documents", "raw_pages"]

        # What the run page shows once the run is over.
        page.open(f"/runs/{run_id}")
        page.wait_text("Success", timeout=60)
        page.wait_text(f"partition: {SNAPSHOT}")
        page.wait_text("2 assets")
        page.wait_text("RUN_SUCCESS", timeout=60)
        page.screenshot("run_success")

        # The blocking check ran with the materialization and passed.
        page.open("/assets/documents?view=checks")
        page.wait_text("great_expectations_suite", timeout=60)
        page.wait_xpath(
            "//*[normalize-space(text())='Passed' or normalize-space(text())='Succeeded']",
            what="a passed great_expectations_suite result",
        )
        page.screenshot("documents_check_passed")

        page.open("/locations/dataplatform/asset-groups/ingest")
        page.wait_text("documents", timeout=60)
        page.wait_xpath("//*[contains(normalize-space(text()), '100% filled')]", what="'100% filled' partitions", timeout=60)
        page.screenshot("asset_group_ingest_after_run")


def test_execute_one_check_on_its_own_from_the_checks_tab(page, server):
    """After the run above committed documents, one check is executed alone from its Checks tab: a run
    of that check only (no materialization) reads the committed dataset, and the tab shows its result."""
    asset, check = "documents", "every_page_accounted_for"
    with screenshot_on_failure(page, "execute_check", server):
        select_check(page, asset, check)
        execute = page.wait_xpath("//button[normalize-space()='Execute']", what="the check's Execute button")
        assert execute.is_enabled(), "Execute is disabled"
        before = {r["runId"] for r in server.runs()}
        execute.click()
        run_id = _wait_for_new_ui_run(server, before)
        run = _wait_for_terminal(server, run_id, page, RUN_TIMEOUT_S)
        assert run["status"] == "SUCCESS", "\n".join(server.run_failure_messages(run_id)[-10:])
        assert not run["assetSelection"], f"a check-only run materialized {run['assetSelection']}"
        assert server.run_check_selection(run_id) == [(asset, check)]

        latest = server.check_executions(asset, check)[0]
        assert latest["runId"] == run_id and latest["status"] == "SUCCEEDED", latest
        assert latest["evaluation"]["success"] and "raw pages have a documents row" in latest["evaluation"]["description"]

        select_check(page, asset, check)
        page.wait_text(latest["evaluation"]["description"], timeout=60)
        page.wait_xpath(
            "//*[normalize-space(text())='Passed' or normalize-space(text())='Succeeded']",
            what="the passed result of the executed check",
        )
        page.screenshot("check_executed_on_its_own")
