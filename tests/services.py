"""Real services on loopback for tests: a throwaway PostgreSQL cluster and long-running processes
(``dagster-daemon``, ``dagster-webserver``) that are always stopped, process group and all.

Every service listens on 127.0.0.1 only, lives in its own temporary folder and is stopped by the
fixture that started it, also when the test fails. A service that does not come up raises
``ServiceError`` naming the service and quoting the end of its log.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# OS account for PostgreSQL when the tests run as root (initdb and postgres refuse to run as root).
POSTGRES_OS_USER = "postgres"
FALLBACK_OS_USER = "dataplatform-pg"


class ServiceError(RuntimeError):
    """A service did not start, or died, or did not stop."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def venv_command(name: str) -> str:
    """A console script of the running interpreter's environment (``.venv/bin/<name>``)."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def processes_in_group(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


# ------------------------------------------------------------------------------- PostgreSQL
def pg_binary(name: str) -> str:
    """``initdb``/``pg_ctl``/``psql`` from PATH or Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which(name)
    if on_path:
        return on_path
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: [int(x) if x.isdigit() else x for x in p.parts[-3].split(".")],
    )
    if candidates:
        return str(candidates[-1])
    raise ServiceError(f"PostgreSQL's {name} not found (PATH, /usr/lib/postgresql/*/bin): run scripts/install_postgres.sh")


def _postgres_os_user() -> str | None:
    """None when not root (PostgreSQL runs as the current user), else a non-root account to run it."""
    if os.geteuid() != 0:
        return None
    for name in (POSTGRES_OS_USER, FALLBACK_OS_USER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_OS_USER],
        check=True,
        capture_output=True,
    )
    return FALLBACK_OS_USER


class PostgresCluster:
    """``initdb`` + ``pg_ctl start`` on a free 127.0.0.1 port in a temporary folder; password login.

    The database user's password is random per cluster and reaches Dagster only through
    ``DAGSTER_PG_PASSWORD``, as in production. ``stop()`` stops the server and deletes the folder.
    """

    def __init__(self, db_name: str = "dagster", username: str = "dagster"):
        self.db_name = db_name
        self.username = username
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self.dir: Path | None = None
        self.os_user = _postgres_os_user()

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        return self.dir / "postgres.log"

    def _as_os_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self.os_user, "--", *argv] if self.os_user else argv

    def _run(self, argv: list[str], what: str, timeout: float = 90) -> None:
        proc = subprocess.run(self._as_os_user(argv), check=False, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ServiceError(
                f"PostgreSQL {what} (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}\n"
                f"--- server log ({self.log_path}) ---\n{log_tail(self.log_path)}"
            )

    def start(self, timeout: float = 60) -> PostgresCluster:
        # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700, and the server runs as another user.
        self.dir = Path(tempfile.mkdtemp(prefix="dataplatform-pg-"))
        (self.dir / "sockets").mkdir()
        password_file = self.dir / "pwfile"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        if self.os_user:
            shutil.chown(self.dir, self.os_user)
            for path in (self.dir / "sockets", password_file):
                shutil.chown(path, self.os_user)
        self._run(
            [
                pg_binary("initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                self.username,
                "--pwfile",
                str(password_file),
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
            "initdb failed",
        )
        password_file.unlink()
        self.port = free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir / 'sockets'} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            [
                pg_binary("pg_ctl"),
                "--pgdata",
                str(self.data_dir),
                "--log",
                str(self.log_path),
                "--options",
                options,
                "--wait",
                "--timeout",
                str(int(timeout)),
                "start",
            ],
            f"did not start on 127.0.0.1:{self.port} within {timeout:.0f} s",
            timeout=timeout + 30,
        )
        self.create_database()
        return self

    def connect(self, db_name: str | None = None):
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.username,
            password=self.password,
            dbname=db_name or self.db_name,
            connect_timeout=10,
        )

    def create_database(self) -> None:
        conn = self.connect("postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            conn.close()

    def env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads (``env:`` references)."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": self.db_name,
            "DAGSTER_PG_USERNAME": self.username,
            "DAGSTER_PG_PASSWORD": self.password,
        }

    def psql(self, sql: str) -> str:
        """Run ``sql`` with the psql client over TCP; rows as ``a|b`` lines."""
        proc = subprocess.run(
            [
                pg_binary("psql"),
                "--no-psqlrc",
                "--tuples-only",
                "--no-align",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--username",
                self.username,
                "--dbname",
                self.db_name,
                "--command",
                sql,
            ],
            env={**os.environ, "PGPASSWORD": self.password},
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise ServiceError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> list[int]:
        """Stop the server (immediate shutdown: the data is thrown away) and delete its folder.

        Returns the pids of server processes still alive afterwards (none when all went well).
        """
        if self.dir is None:
            return []
        pid = self.postmaster_pid()
        if pid is not None:
            subprocess.run(
                self._as_os_user(
                    [
                        pg_binary("pg_ctl"),
                        "--pgdata",
                        str(self.data_dir),
                        "--mode",
                        "immediate",
                        "--wait",
                        "--timeout",
                        "30",
                        "stop",
                    ]
                ),
                check=False,
                capture_output=True,
                timeout=60,
            )
        leftover = []
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
            leftover = [pid] if _alive(pid) else []
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
        return leftover


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -------------------------------------------------------------------- long-running processes
class ServiceProcess:
    """A command in its own session (process group), its output in a log file.

    ``stop()`` signals the whole group (the process and every child it started, such as Dagster's
    code servers and run workers), escalates to SIGKILL, and reports survivors.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path = REPO_ROOT):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.clock_offset_s = 0.0  # seconds the process's Dagster clock runs ahead (tests/daemon_with_clock.py)

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started_at = time.time()
        return self

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def failure(self, what: str) -> ServiceError:
        return ServiceError(f"{self.name} {what}; its log ({self.log_path}):\n{self.log_tail()}")

    def wait_until(self, check: Callable[[], object], timeout: float, what: str, interval: float = 0.5):
        """Poll ``check`` until it returns something truthy; fail naming this service and quoting its log.

        ``check`` may raise: the last exception is quoted when the time is up.
        """
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise self.failure(f"exited with code {self.proc.returncode} before it {what}")
            try:
                result = check()
                if result:
                    return result
            except Exception as exc:  # noqa: BLE001 - quoted in the failure below
                last_error = exc
            time.sleep(interval)
        detail = f" (last error: {last_error!r})" if last_error else ""
        raise self.failure(f"did not {what} within {timeout:.0f} s{detail}")

    def stop(self, timeout: float = 20) -> list[int]:
        """Stop the process group; returns the pids still alive after SIGKILL (normally none)."""
        if self.proc is None:
            return []
        pgid = self.proc.pid
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            if not processes_in_group(pgid) and self.proc.poll() is not None:
                break
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.proc.poll()
                if not processes_in_group(pgid):
                    break
                time.sleep(0.2)
        self.proc.poll()
        return processes_in_group(pgid)


class DagsterWebserverProcess(ServiceProcess):
    """``dagster-webserver -h 127.0.0.1 -p <free port> -w workspace.yaml`` and GraphQL calls to it."""

    def __init__(self, env: dict[str, str], log_path: Path, workspace: str = "workspace.yaml"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            "dagster-webserver",
            [venv_command("dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(self.port)],
            env,
            log_path,
        )

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise ServiceError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def code_location_loaded(self) -> bool:
        """True once every code location has loaded; a location that failed to load raises."""
        data = self.graphql(
            """{ workspaceOrError { __typename ... on Workspace { locationEntries {
                                 name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }""",
            timeout=10,
        )
        entries = data["workspaceOrError"].get("locationEntries") or []
        for entry in entries:
            error = entry["locationOrLoadError"] or {}
            if entry["loadStatus"] == "LOADED" and error.get("__typename") == "PythonError":
                raise self.failure(f"could not load code location {entry['name']}: {error['message']}")
        return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)

    def wait_until_ready(self, timeout: float) -> None:
        try:
            self.wait_until(self.code_location_loaded, timeout, "answer on " + self.url + " with its code location loaded")
        except urllib.error.URLError as exc:  # pragma: no cover - wait_until catches these
            raise self.failure(f"did not answer: {exc}") from exc

    def launch_run(
        self,
        job_name: str,
        tags: dict[str, str],
        asset_selection: list[str] | None = None,
        run_config: dict | None = None,
        location: str = "dataplatform",
    ) -> str:
        """What the UI's Launch button sends (``launchRun``); returns the run id."""
        selector = {"repositoryLocationName": location, "repositoryName": "__repository__", "jobName": job_name}
        if asset_selection:
            selector["assetSelection"] = [{"path": [key]} for key in asset_selection]
        data = self.graphql(
            """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
                 ... on LaunchRunSuccess { run { runId status } }
                 ... on PythonError { message } ... on RunConfigValidationInvalid { errors { message } }
                 ... on InvalidSubsetError { message } ... on UnauthorizedError { message } } }""",
            {
                "params": {
                    "selector": selector,
                    "runConfigData": run_config or {},
                    "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
                }
            },
        )
        result = data["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise ServiceError(f"launchRun({job_name}, {tags}) failed: {result}")
        return result["run"]["runId"]
