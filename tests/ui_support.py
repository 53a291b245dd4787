"""Helpers for the headless-browser UI test: a throwaway Dagster webserver and a Chromium driver.

The webserver runs on a free loopback port with its own ``DAGSTER_HOME`` and dataset root, and
uses the default run coordinator, so runs launched from the UI start at once as subprocesses
without the daemon (the daemon would also tick the snapshot sensor, which launches whole-pipeline
runs of every sample snapshot and makes the test slow and nondeterministic).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,2600",  # tall: the asset catalog renders only the rows in view (24 assets)
]

DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _venv_bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


class DagsterWebserver:
    """``dagster-webserver -w workspace.yaml`` on 127.0.0.1:<free port>, in the repo root."""

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.home = self.workdir / "dagster_home"
        self.data_root = self.workdir / "datasets"
        self.log_path = self.workdir / "webserver.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "DATAPLATFORM_DATA_ROOT": str(self.data_root),
            "DATAPLATFORM_MAX_WORKERS": "1",
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text(DAGSTER_YAML)
        # The "Join the Dagster community" dialog shows on localhost until this file exists in
        # DAGSTER_HOME (dagster._core.nux); it would cover the page on a fresh instance.
        (self.home / ".nux").mkdir(exist_ok=True)
        (self.home / ".nux" / "nux.yaml").write_text("seen: 1\n")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> DagsterWebserver:
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [_venv_bin("dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_until_loaded(timeout)
        return self

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no webserver log)"
        return "\n".join(lines[-n:])

    def wait_until_loaded(self, timeout: float) -> None:
        """Wait until the server answers and the ``dataplatform`` code location has loaded."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        query = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
                     name loadStatus locationOrLoadError { __typename
                       ... on PythonError { message } } } } } }"""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"dagster-webserver exited with code {self.proc.returncode} before answering.\n"
                    f"--- log tail ({self.log_path}) ---\n{self.log_tail()}"
                )
            try:
                data = self.graphql(query, timeout=5)
                entries = data["workspaceOrError"].get("locationEntries", [])
                loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
                errors = [e for e in loaded if e["locationOrLoadError"]["__typename"] == "PythonError"]
                if errors:
                    raise RuntimeError(
                        f"code location failed to load: {errors[0]['locationOrLoadError']['message']}\n"
                        f"--- log tail ---\n{self.log_tail()}"
                    )
                if entries and len(loaded) == len(entries):
                    return
                last = f"locations: {[(e['name'], e['loadStatus']) for e in entries]}"
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, KeyError, ValueError) as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise TimeoutError(
            f"dagster-webserver on {self.url} not ready after {timeout:.0f}s ({last}).\n"
            f"--- log tail ({self.log_path}) ---\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # The server and the run subprocesses it launched share its session.
            try:
                os.killpg(self.proc.pid, 15)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- GraphQL on the same server ----------------------------------------------------------
    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.loads(resp.read())
        if payload.get("errors"):
            raise ValueError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def add_dynamic_partition(self, partitions_def_name: str, key: str, location: str = "dataplatform") -> None:
        """What the UI's "Add a partition" does, on the same server (idempotent)."""
        data = self.graphql(
            """mutation($sel: RepositorySelector!, $name: String!, $key: String!) {
                 addDynamicPartition(repositorySelector: $sel, partitionsDefName: $name, partitionKey: $key) {
                   __typename ... on PythonError { message } ... on UnauthorizedError { message } } }""",
            {
                "sel": {"repositoryName": "__repository__", "repositoryLocationName": location},
                "name": partitions_def_name,
                "key": key,
            },
        )
        kind = data["addDynamicPartition"]["__typename"]
        if kind not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise RuntimeError(f"addDynamicPartition({partitions_def_name}, {key}): {data['addDynamicPartition']}")

    def run(self, run_id: str) -> dict:
        data = self.graphql(
            """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run {
                   runId status jobName tags { key value } assetSelection { path } } } }""",
            {"id": run_id},
        )
        return data["runOrError"]

    def run_failure_messages(self, run_id: str) -> list[str]:
        """Messages of error-level events of a run, for a failure report."""
        data = self.graphql(
            """query($id: ID!) { logsForRun(runId: $id) { __typename ... on EventConnection {
                   events { __typename ... on MessageEvent { message level } } } } }""",
            {"id": run_id},
        )
        events = data["logsForRun"].get("events", [])
        return [e["message"] for e in events if e.get("level") in ("ERROR", "CRITICAL")]

    def check_executions(self, asset: str, check: str, limit: int = 10) -> list[dict]:
        """Executions of one asset check, newest first, with the run that evaluated it and the result."""
        data = self.graphql(
            """query($key: AssetKeyInput!, $name: String!, $limit: Int!) {
                 assetCheckExecutions(assetKey: $key, checkName: $name, limit: $limit) {
                   runId status evaluation { success severity description } } }""",
            {"key": {"path": [asset]}, "name": check, "limit": limit},
        )
        return data["assetCheckExecutions"]

    def run_check_selection(self, run_id: str) -> list[tuple[str, str]]:
        """(asset, check) pairs a run was launched to execute."""
        data = self.graphql(
            """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run {
                   assetCheckSelection { assetKey { path } name } } } }""",
            {"id": run_id},
        )
        return [(c["assetKey"]["path"][-1], c["name"]) for c in data["runOrError"]["assetCheckSelection"] or []]

    def runs(self) -> list[dict]:
        data = self.graphql(
            """{ runsOrError { __typename ... on Runs { results {
                   runId status jobName tags { key value } assetSelection { path } } } } }"""
        )
        return data["runsOrError"]["results"]


def make_chrome(user_data_dir: Path):
    """Selenium driving Debian's chromium through Debian's chromedriver (same version, no downloads)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    return driver


# -- browser helpers ---------------------------------------------------------------------------
def xpath_literal(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    parts = text.split("'")
    return "concat(" + ', "\'", '.join(f"'{p}'" for p in parts) + ")"


class Page:
    """Thin waits over a Selenium driver, by what the UI shows (text), not by internals."""

    def __init__(self, driver, base_url: str, artifacts: Path):
        self.driver = driver
        self.base_url = base_url
        self.artifacts = artifacts

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)
        self.dismiss_dialogs()

    def dismiss_dialogs(self) -> None:
        from selenium.webdriver.common.by import By

        for button in self.driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            if button.is_displayed():
                button.click()

    def visible(self, xpath: str) -> list:
        from selenium.webdriver.common.by import By

        return [e for e in self.driver.find_elements(By.XPATH, xpath) if e.is_displayed()]

    def wait_xpath(self, xpath: str, timeout: float = 30, what: str | None = None):
        from selenium.common.exceptions import StaleElementReferenceException

        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self.visible(xpath)
            except StaleElementReferenceException:
                found = []
            if found:
                return found[0]
            if time.monotonic() > deadline:
                body = self.body_text()
                raise AssertionError(
                    f"{what or xpath} not shown after {timeout:.0f}s on {self.driver.current_url}\n"
                    f"--- page text ---\n{body[:3000]}"
                )
            time.sleep(0.25)

    def wait_text(self, text: str, timeout: float = 30, within: str = "//"):
        """An element whose text (descendants included, whitespace-normalized) is exactly ``text`` is displayed."""
        return self.wait_xpath(f"{within}*[normalize-space(.)={xpath_literal(text)}]", timeout, repr(text))

    def body_text(self) -> str:
        from selenium.webdriver.common.by import By

        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return f"(no page text: {exc!r})"

    def screenshot(self, name: str) -> Path:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path
