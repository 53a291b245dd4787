"""A production-like instance, end to end: PostgreSQL storage, the daemon, queued runs, and a new
snapshot that flows through without a click.

What runs (all on 127.0.0.1, all started here and stopped at the end, also on failure):

- PostgreSQL from Debian's packages (``scripts/install_postgres.sh``): a throwaway cluster
  (``initdb``/``pg_ctl``, as the ``postgres`` account when the tests run as root) on a free port,
  password login; Dagster gets the password only through ``DAGSTER_PG_PASSWORD``.
- ``dagster-daemon run`` and ``dagster-webserver -h 127.0.0.1`` on ``deploy/single-host/dagster.yaml``,
  which is ``deploy/dagster.yaml`` transformed by ``production_like_instance_config`` below (checked
  by a test): the same PostgreSQL storage (``env:`` references), ``QueuedRunCoordinator`` and
  ``concurrency`` section (one run per ``dagster/partition`` value, one ``dataplatform/corpus``
  run, pools limited to 1 step), run monitoring and retries; only the run launcher (Dagster's
  default: a local process per run instead of a Kubernetes Job), the step-log store (local disk
  instead of S3) and ``sslmode`` (the loopback cluster has no TLS) differ.
- Crawl root and dataset root in temporary folders; the snapshot sensor lists the crawl every
  2 s (``DATAPLATFORM_SENSOR_INTERVAL_S``; the daemon's sensor loop runs every 5 s).

Before the daemon sees anything new, one bundled sample snapshot is registered and its
``raw_pages``/``documents``/``filtered`` plus the cross-snapshot inputs of the pipeline
(``quality_classifier``, ``eval_benchmarks``, ``instruction_templates``) are materialized
in-process against the same PostgreSQL instance: that is the state of a deployment that has
processed one snapshot. Then a copy of the other sample snapshot is moved into the crawl root
under a new name and the test waits, touching nothing: the sensor adds the partition and
requests a run, the queue launches it, and the whole ``snapshot_pipeline`` job runs (including
the GPU-pool synthesis assets on the tiny CPU test model; ``rewritten`` and ``color_scores``, which
need models trained across snapshots, are skipped with a warning on this first snapshot).

The weekly schedule is ticked by the real daemon at its cron time (Monday 04:00 UTC) without
waiting for Monday: the daemon is restarted with its clock moved ahead to just before the next
Monday 04:00 (``tests/daemon_with_clock.py``, which shifts the two functions through which Dagster
reads "now"; code servers and run workers keep the real clock). What this does not cover: the
wall clock of the machine itself reaching Monday 04:00 (a CI job cannot wait for it), and a
process-wide fake clock (Debian's libfaketime 0.9.10 breaks Python's ``time.sleep`` in the
daemon with EINVAL).

Wall time (``pytest tests/test_production_instance.py``): 5 min on a 2-core machine shared with
other jobs (load average 7), 13 min at load average 12; most of it is the pipeline run, whose
steps each start a fresh process (Dagster's multiprocess executor) and whose two GPU-pool steps
run the CPU test model one after the other.
On an idle 2-core machine the file takes about 5 minutes.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import gzip
import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster import DagsterEventType, DagsterRunStatus, RunsFilter
from services import (
    REPO_ROOT,
    DagsterWebserverProcess,
    PostgresCluster,
    ServiceError,
    ServiceProcess,
    processes_in_group,
    venv_command,
)

from dataplatform.definitions import CORPUS_RUN_TAG, weekly_training_mix

DEPLOY_YAML = REPO_ROOT / "deploy" / "dagster.yaml"
SINGLE_HOST_YAML = REPO_ROOT / "deploy" / "single-host" / "dagster.yaml"
PREPARED_SNAPSHOT = "CC-SAMPLE-2026-05"  # processed before the daemon starts
ARRIVING_SAMPLE = "CC-SAMPLE-2026-10"  # copied into the crawl root under a new name
NEW_SNAPSHOT = "CC-E2E-2026-20"
PIPELINE_ASSETS = [
    "raw_pages",
    "documents",
    "filtered",
    "scored",
    "deduplicated",
    "dedup_signature_index",
    "toxicity",
    "decontaminated",
    "rewire_outputs",
    "instruction_pairs",
]
# Per-snapshot steps that need a cross-snapshot model this deployment has not trained yet
# (rewrite_classifier, color_conditional_model: corpus_refresh trains them from processed snapshots):
# on the first snapshot they are skipped with a warning, and the run still succeeds.
AWAITING_CORPUS_MODELS = {"rewritten": "rewrite_classifier", "color_scores": "color_conditional_model"}
CHECKED_ASSETS = ["documents", "filtered", "scored", "decontaminated"]  # great_expectations_suite
GPU_STEPS = ("rewire_outputs", "instruction_pairs", "color_scores")
SENSOR_INTERVAL_S = 2
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

# Generous: on an idle 2-core machine the pipeline run takes about 2 minutes, on one shared by other
# jobs (load average 10) over 6. Each wait fails naming the service it waited on.
SERVICE_START_TIMEOUT_S = 120
PIPELINE_TIMEOUT_S = 600


def production_like_instance_config(deploy_config: dict) -> dict:
    """deploy/dagster.yaml with what needs Kubernetes or S3 replaced by its local equivalent."""
    config = copy.deepcopy(deploy_config)
    config["storage"]["postgres"]["postgres_db"]["params"] = {"sslmode": "disable"}  # production: require
    del config["run_launcher"]  # DefaultRunLauncher: a local process per run instead of a Kubernetes Job
    del config["compute_logs"]  # step logs under DAGSTER_HOME instead of S3
    return config


def test_single_host_config_is_production_minus_kubernetes_and_s3():
    """deploy/single-host/dagster.yaml (what this test runs) differs from production only as documented."""
    deploy = yaml.safe_load(DEPLOY_YAML.read_text())
    single_host = yaml.safe_load(SINGLE_HOST_YAML.read_text())
    assert single_host == production_like_instance_config(deploy)
    for section in ("run_coordinator", "concurrency", "run_monitoring", "run_retries"):
        assert single_host[section] == deploy[section], section
    assert single_host["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}


def test_a_service_that_does_not_come_up_is_named_and_its_process_group_stopped(tmp_path):
    """The failure names the service and quotes its log; stop() leaves no process of its group behind."""
    hanging = ServiceProcess(
        "fake-daemon",
        [
            sys.executable,
            "-c",
            (
                "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
                "print('loading code location', flush=True); time.sleep(600)"
            ),
        ],
        dict(os.environ),
        tmp_path / "fake.log",
    ).start()
    try:
        with pytest.raises(ServiceError, match=r"(?s)fake-daemon did not start within 3 s; its log .*loading code location"):
            hanging.wait_until(lambda: False, 3, "start")
        assert len(processes_in_group(hanging.proc.pid)) == 2  # the service and the child it started
    finally:
        assert hanging.stop(timeout=5) == []
    assert processes_in_group(hanging.proc.pid) == []

    broken = ServiceProcess(
        "fake-webserver",
        [sys.executable, "-c", "print('bad config: port'); raise SystemExit(3)"],
        dict(os.environ),
        tmp_path / "broken.log",
    ).start()
    with pytest.raises(ServiceError, match=r"(?s)fake-webserver exited with code 3 before it answered.*bad config: port"):
        broken.wait_until(lambda: False, 60, "answered")
    assert broken.stop() == []


# ------------------------------------------------------------------------------ the schedule
NEXT_MONDAY_0400 = dt.datetime(2026, 12, 7, 4, 0, tzinfo=dt.UTC)


def test_weekly_schedule_evaluation_requests_the_training_mix_run():
    """Evaluated at Monday 04:00 UTC, the schedule asks for one training_mix_job run, corpus-tagged."""
    assert NEXT_MONDAY_0400.weekday() == 0
    assert weekly_training_mix.cron_schedule == "0 4 * * 1"
    assert weekly_training_mix.execution_timezone in (None, "UTC")  # the daemon reads None as UTC
    context = dg.build_schedule_context(scheduled_execution_time=NEXT_MONDAY_0400)
    result = weekly_training_mix.evaluate_tick(context)
    assert result.skip_message is None
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.partition_key is None  # cross-snapshot assets are unpartitioned
    assert weekly_training_mix.job_name == "training_mix_job"
    assert weekly_training_mix.job.tags[CORPUS_RUN_TAG] == "true"  # runs of the job carry it


def next_monday_0400_after(moment: dt.datetime) -> dt.datetime:
    day = moment.replace(hour=4, minute=0, second=0, microsecond=0)
    while day.weekday() != 0 or day <= moment:
        day += dt.timedelta(days=1)
    return day


def test_next_monday_0400_after():
    assert next_monday_0400_after(dt.datetime(2026, 12, 1, 11, tzinfo=dt.UTC)) == NEXT_MONDAY_0400
    assert next_monday_0400_after(NEXT_MONDAY_0400) == NEXT_MONDAY_0400 + dt.timedelta(days=7)


# --------------------------------------------------------------------------- the platform
@dataclass
class Platform:
    pg: PostgresCluster
    home: Path
    crawl_root: Path
    data_root: Path
    logs: Path
    env: dict[str, str]
    instance: dg.DagsterInstance
    webserver: DagsterWebserverProcess
    daemon: ServiceProcess | None = None
    stopped_daemons: list[ServiceProcess] = field(default_factory=list)
    timeline: dict[str, float] = field(default_factory=dict)

    # -- daemon ------------------------------------------------------------------------------
    def start_daemon(self, clock_offset_s: float = 0.0) -> ServiceProcess:
        assert self.daemon is None, "a daemon is already running"
        n = len(self.stopped_daemons)
        if clock_offset_s:
            argv = [
                sys.executable,
                str(REPO_ROOT / "tests" / "daemon_with_clock.py"),
                str(clock_offset_s),
                "run",
                "-w",
                "workspace.yaml",
            ]
        else:
            argv = [venv_command("dagster-daemon"), "run", "-w", "workspace.yaml"]
        self.daemon = ServiceProcess("dagster-daemon", argv, self.env, self.logs / f"daemon-{n}.log")
        self.daemon.clock_offset_s = clock_offset_s
        return self.daemon.start()

    def wait_for_daemon(self, timeout: float = SERVICE_START_TIMEOUT_S) -> None:
        """Every daemon this instance needs has sent a heartbeat since this daemon process started."""
        daemon = self.daemon
        since = daemon.started_at + daemon.clock_offset_s - 1
        needed = {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR"}

        def beating():
            heartbeats = self.instance.get_daemon_heartbeats()
            return all(kind in heartbeats and heartbeats[kind].timestamp >= since for kind in needed)

        daemon.wait_until(beating, timeout, f"start (heartbeats of {sorted(needed)})")

    def stop_daemon(self) -> None:
        if self.daemon is None:
            return
        leftover = self.daemon.stop()
        self.stopped_daemons.append(self.daemon)
        self.daemon = None
        if leftover:
            raise ServiceError(f"dagster-daemon left processes running after SIGKILL: {leftover}")

    # -- runs --------------------------------------------------------------------------------
    def wait(self, check, timeout: float, what: str):
        """Wait on the daemon (the service that must make it happen); fail quoting its log."""
        return self.daemon.wait_until(check, timeout, what, interval=1.0)

    def run_record(self, run_id: str):
        records = self.instance.get_run_records(RunsFilter(run_ids=[run_id]))
        return records[0] if records else None

    def wait_for_run_end(self, run_id: str, timeout: float):
        def ended():
            record = self.run_record(run_id)
            return record if record and record.dagster_run.status in FINISHED else None

        try:
            return self.wait(ended, timeout, f"finish run {run_id}")
        except ServiceError as exc:
            record = self.run_record(run_id)
            status = record.dagster_run.status.value if record else "not found"
            raise ServiceError(
                f"run {run_id} is {status} after {timeout:.0f} s; steps done (s): {step_durations(self, run_id)}\n{exc}"
            ) from exc

    def event_times(self, run_id: str, event_type: DagsterEventType) -> list[float]:
        return [e.timestamp for e in self.instance.all_logs(run_id, of_type=event_type)]

    def error_messages(self, run_id: str) -> str:
        lines = []
        for entry in self.instance.all_logs(run_id):
            event = entry.dagster_event
            if event is not None and event.event_type in (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE):
                lines.append(f"{event.step_key or 'run'}: {event.message}")
                error = getattr(event.event_specific_data, "error", None)
                while error is not None:
                    lines.append(f"  {error.cls_name}: {error.message.strip()}\n  {''.join(error.stack[-2:]).strip()}")
                    error = error.cause
        return "\n".join(lines) or "(no failure events)"


def write_instance_config(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(SINGLE_HOST_YAML, home / "dagster.yaml")
    # Without this file the webserver shows a "join the community" dialog on a fresh instance.
    (home / ".nux").mkdir(exist_ok=True)
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")


def copy_sample_snapshot(sample: str, crawl_root: Path, name: str) -> None:
    """The bundled sample snapshot as ``name``, with its ``warc.paths.gz`` listing the renamed files."""
    from dataplatform.sample_data import SAMPLE_CRAWL_ROOT

    target = crawl_root / "crawl-data" / name
    shutil.copytree(SAMPLE_CRAWL_ROOT / "crawl-data" / sample, target)
    paths = target / "warc.paths.gz"
    if paths.exists():
        listing = gzip.decompress(paths.read_bytes()).decode()
        paths.write_bytes(gzip.compress(listing.replace(f"crawl-data/{sample}/", f"crawl-data/{name}/").encode()))


def prepare_first_snapshot(instance: dg.DagsterInstance, env: dict[str, str]) -> None:
    """What a deployment has after processing one snapshot: its filtered docs and the corpus inputs."""
    from dataplatform.definitions import all_assets
    from dataplatform.resources.settings import resources_from_env

    resources = resources_from_env(env)
    dg.materialize(
        all_assets,
        selection=["raw_pages", "documents", "filtered"],
        partition_key=PREPARED_SNAPSHOT,
        instance=instance,
        resources=resources,
        run_config=QUIET,
    )
    dg.materialize(
        all_assets,
        selection=["quality_classifier", "eval_benchmarks", "instruction_templates"],
        instance=instance,
        resources=resources,
        run_config=QUIET,
    )


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """PostgreSQL + daemon + webserver on loopback, one snapshot processed; all stopped at the end."""
    root = tmp_path_factory.mktemp("production-instance")
    home, crawl_root, data_root, logs = root / "dagster_home", root / "crawl", root / "datasets", root / "logs"
    for path in (crawl_root / "crawl-data", data_root, logs):
        path.mkdir(parents=True)
    write_instance_config(home)
    copy_sample_snapshot(PREPARED_SNAPSHOT, crawl_root, PREPARED_SNAPSHOT)
    started = time.monotonic()

    with contextlib.ExitStack() as stack, pytest.MonkeyPatch.context() as mp:
        pg = PostgresCluster()
        stack.callback(lambda: _no_leftovers("PostgreSQL", pg.stop()))
        pg.start()
        env = {
            **pg.env(),
            "DAGSTER_HOME": str(home),
            "DATAPLATFORM_CRAWL_ROOT": str(crawl_root),
            "DATAPLATFORM_DATA_ROOT": str(data_root),
            "DATAPLATFORM_MAX_WORKERS": "1",
            "DATAPLATFORM_SENSOR_INTERVAL_S": str(SENSOR_INTERVAL_S),
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }
        for name, value in env.items():
            mp.setenv(name, value)
        service_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        instance = stack.enter_context(dg.DagsterInstance.get())  # reads $DAGSTER_HOME/dagster.yaml
        # The documented one-time step (README "Operating it"), on PostgreSQL.
        instance.event_log_storage.set_concurrency_slots("gpu", 1)
        instance.add_dynamic_partitions("crawl_snapshots", [PREPARED_SNAPSHOT])

        webserver = DagsterWebserverProcess(service_env, logs / "webserver.log")
        platform = Platform(
            pg=pg,
            home=home,
            crawl_root=crawl_root,
            data_root=data_root,
            logs=logs,
            env=service_env,
            instance=instance,
            webserver=webserver,
        )
        stack.callback(lambda: _no_leftovers("dagster-webserver", webserver.stop()))
        stack.callback(platform.stop_daemon)
        webserver.start()
        platform.start_daemon()
        prepare_first_snapshot(instance, env)  # while both services load their code location
        platform.timeline["prepared_s"] = time.monotonic() - started
        platform.wait_for_daemon()
        webserver.wait_until_ready(SERVICE_START_TIMEOUT_S)
        platform.timeline["services_ready_s"] = time.monotonic() - started
        yield platform
        print(f"\nproduction-instance timeline (s): {platform.timeline}")


def _no_leftovers(service: str, pids: list[int]) -> None:
    if pids:
        raise ServiceError(f"{service} left processes running after SIGKILL: {pids}")


@pytest.fixture(scope="module")
def arrival(platform):
    """Move a new snapshot folder into the crawl root; return the run the sensor requested for it."""
    staging = platform.crawl_root.parent / "staging"
    copy_sample_snapshot(ARRIVING_SAMPLE, staging, NEW_SNAPSHOT)
    dropped = time.monotonic()
    # A rename, so the sensor never lists a half-copied snapshot.
    (staging / "crawl-data" / NEW_SNAPSHOT).rename(platform.crawl_root / "crawl-data" / NEW_SNAPSHOT)

    def partition_added():
        return NEW_SNAPSHOT in platform.instance.get_dynamic_partitions("crawl_snapshots")

    platform.wait(partition_added, 60, f"add partition {NEW_SNAPSHOT} (crawl_snapshot_sensor) within its interval")
    platform.timeline["partition_added_s"] = time.monotonic() - dropped

    def requested_run():
        runs = platform.instance.get_runs(RunsFilter(tags={"dagster/partition": NEW_SNAPSHOT}))
        return runs[0] if runs else None

    run = platform.wait(requested_run, 30, f"create the sensor's run for {NEW_SNAPSHOT}")

    def launched():
        status = platform.instance.get_run_by_id(run.run_id).status
        return status not in (DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED)

    platform.wait(launched, 60, f"dequeue and launch run {run.run_id}")
    platform.timeline["run_launched_s"] = time.monotonic() - dropped
    return run.run_id, dropped


def finished_arrival(platform, arrival):
    run_id, dropped = arrival
    record = platform.wait_for_run_end(run_id, PIPELINE_TIMEOUT_S)
    platform.timeline.setdefault("pipeline_done_s", time.monotonic() - dropped)
    return record


@pytest.mark.slow
def test_two_runs_of_one_partition_queue_while_other_partitions_run(platform, arrival):
    """Two runs of one snapshot submitted at once: the second waits for the first; other snapshots don't."""
    arrival_run_id, _ = arrival
    launch = {
        "job_name": "snapshot_pipeline",
        "tags": {"dagster/partition": PREPARED_SNAPSHOT},
        "asset_selection": ["raw_pages"],
        "run_config": {"execution": {"config": {"in_process": {}}}, **QUIET},
    }
    first = platform.webserver.launch_run(**launch)  # what two clicks on "Materialize" send
    second = platform.webserver.launch_run(**launch)
    records = {run_id: platform.wait_for_run_end(run_id, 180) for run_id in (first, second)}
    for run_id, record in records.items():
        assert record.dagster_run.status == DagsterRunStatus.SUCCESS, platform.error_messages(run_id)
        assert platform.event_times(run_id, DagsterEventType.RUN_ENQUEUED), "run did not go through the queue"
    a, b = sorted(records.values(), key=lambda r: r.start_time)
    assert a.end_time <= b.start_time, (
        f"runs of {PREPARED_SNAPSHOT} overlapped: {a.start_time}-{a.end_time} and {b.start_time}-{b.end_time}"
    )
    # The queue held the later one: the daemon dequeued and launched it (RUN_STARTING) only after the
    # earlier one had ended, although both were queued at once.
    (launched,) = platform.event_times(b.dagster_run.run_id, DagsterEventType.RUN_STARTING)
    (queued,) = platform.event_times(b.dagster_run.run_id, DagsterEventType.RUN_ENQUEUED)
    assert queued < a.end_time <= launched
    # The limit is per partition: the pipeline run of the new snapshot was running meanwhile.
    pipeline = platform.run_record(arrival_run_id)
    assert (
        pipeline.start_time is not None
        and pipeline.start_time < a.end_time
        and (pipeline.end_time is None or a.start_time < pipeline.end_time)
    ), "the other partition's run did not run alongside (per-partition limit acting as a global one?)"
    platform.timeline["two_runs_s"] = b.end_time - a.start_time


@pytest.mark.slow
def test_new_snapshot_is_curated_without_a_click(platform, arrival):
    run_id, _ = arrival
    record = finished_arrival(platform, arrival)
    run = record.dagster_run
    assert run.status == DagsterRunStatus.SUCCESS, (
        f"snapshot_pipeline for {NEW_SNAPSHOT} ended {run.status}:\n{platform.error_messages(run_id)}\n"
        f"--- daemon log ---\n{platform.daemon.log_tail()}"
    )
    assert run.job_name == "snapshot_pipeline"
    assert run.tags["dagster/partition"] == NEW_SNAPSHOT
    assert run.tags["dagster/sensor_name"] == "crawl_snapshot_sensor"
    assert run.tags["dagster/run_key"] == f"snapshot:{NEW_SNAPSHOT}"
    assert platform.event_times(run_id, DagsterEventType.RUN_ENQUEUED) and platform.event_times(
        run_id, DagsterEventType.RUN_STARTING
    ), "the sensor's run did not go through the run queue"

    # Materializations of every pipeline asset for the new partition, recorded by this run.
    row_counts = {}
    for asset in PIPELINE_ASSETS:
        result = platform.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[NEW_SNAPSHOT]), limit=1
        )
        assert result.records, f"no materialization of {asset}/{NEW_SNAPSHOT} in the instance"
        assert result.records[0].run_id == run_id
        metadata = result.records[0].asset_materialization.metadata
        if "dagster/row_count" in metadata:
            row_counts[asset] = metadata["dagster/row_count"].value

    # Steps waiting for a corpus model were skipped, not failed, and said what to run.
    warnings = " ".join(entry.user_message for entry in platform.instance.all_logs(run_id))
    for asset, model in AWAITING_CORPUS_MODELS.items():
        result = platform.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[NEW_SNAPSHOT]), limit=1
        )
        assert not result.records, f"{asset} materialized without {model}"
        assert f"{asset} skipped for {NEW_SNAPSHOT}: {model} is not materialized yet" in warnings

    # The checks of the pipeline's assets ran in the run, and every blocking one passed.
    from dataplatform.definitions import all_asset_checks

    blocking = {
        (spec.asset_key.to_user_string(), spec.name)
        for checks in all_asset_checks
        for spec in checks.check_specs
        if spec.blocking
    }
    evaluations = {}
    for entry in platform.instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        evaluations[(evaluation.asset_key.to_user_string(), evaluation.check_name)] = evaluation.passed
    assert {(asset, "great_expectations_suite") for asset in CHECKED_ASSETS} <= evaluations.keys()
    assert all(passed for key, passed in evaluations.items() if key in blocking), evaluations

    # The same facts straight from PostgreSQL's tables.
    assert platform.pg.psql(f"SELECT status FROM runs WHERE run_id = '{run_id}'") == "SUCCESS"
    stored = platform.pg.psql(
        f"SELECT count(*) FROM event_logs WHERE run_id = '{run_id}' AND dagster_event_type = 'ASSET_MATERIALIZATION'"
    )
    assert int(stored) == len(PIPELINE_ASSETS)
    assert platform.pg.psql(f"SELECT partition FROM dynamic_partitions WHERE partition = '{NEW_SNAPSHOT}'") == NEW_SNAPSHOT

    # The datasets: committed manifests under the dataset root, row counts as reported to Dagster.
    from dataplatform.io.datasets import DatasetStore

    store = DatasetStore.local(platform.data_root)
    for asset in PIPELINE_ASSETS:
        manifest = store.manifest(asset, NEW_SNAPSHOT)
        assert manifest is not None, f"{asset}/{NEW_SNAPSHOT}/_manifest.json missing under {platform.data_root}"
        assert manifest["partition"] == NEW_SNAPSHOT
    for asset in ("raw_pages", "documents", "filtered", "scored", "decontaminated"):
        committed = store.manifest(asset, NEW_SNAPSHOT)["metadata"]["rows_out"]
        assert committed > 0 and committed == row_counts.get(asset), (asset, committed, row_counts.get(asset))
    platform.timeline["steps_s"] = step_durations(platform, run_id)

    # What the UI shows: the run, its partition and status, from the webserver on the same instance.
    data = platform.webserver.graphql(
        """query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) { ... on Runs { results { runId status } } } }""",
        {"tags": [{"key": "dagster/partition", "value": NEW_SNAPSHOT}]},
    )
    assert {"runId": run_id, "status": "SUCCESS"} in data["runsOrError"]["results"]


def step_durations(platform: Platform, run_id: str) -> dict[str, float]:
    starts, durations = {}, {}
    for entry in platform.instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type == DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event is not None and event.event_type == DagsterEventType.STEP_SUCCESS:
            durations[event.step_key] = round(entry.timestamp - starts[event.step_key], 1)
    return durations


@pytest.mark.slow
def test_gpu_pool_steps_never_overlap(platform, arrival):
    """rewire_outputs, instruction_pairs and color_scores (pool "gpu", limit 1) run one at a time."""
    run_id, _ = arrival
    finished_arrival(platform, arrival)
    spans = {}
    blocked = []
    for entry in platform.instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key not in GPU_STEPS:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            spans.setdefault(event.step_key, [None, None])[0] = entry.timestamp
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            spans.setdefault(event.step_key, [None, None])[1] = entry.timestamp
        elif event.event_type == DagsterEventType.ENGINE_EVENT and "blocked by limit for pool gpu" in (event.message or ""):
            blocked.append(event.step_key)
    assert set(spans) == set(GPU_STEPS) and all(None not in span for span in spans.values()), spans
    ordered = sorted(spans.values())
    for (_, end), (start, _) in zip(ordered, ordered[1:]):
        assert end <= start, f"GPU-pool steps overlapped: {spans}"
    # Both were ready at once (both only wait for decontaminated) and the multiprocess executor runs
    # up to cpu_count steps at once: the pool, not the executor, held one back.
    if multiprocessing.cpu_count() >= 2:
        assert blocked, "no step waited for the gpu pool; the multiprocess executor should have tried both at once"
    info = platform.instance.event_log_storage.get_concurrency_info("gpu")
    assert info.slot_count == 1 and info.active_slot_count == 0


@pytest.mark.slow
def test_daemon_ticks_the_weekly_schedule_at_monday_0400(platform, arrival):
    """The daemon, its clock 20 s before the next Monday 04:00 UTC, launches weekly_training_mix at 04:00."""
    finished_arrival(platform, arrival)  # the mix reads what the pipeline wrote; no run is cut short
    in_progress = platform.instance.get_runs(
        RunsFilter(statuses=[DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED])
    )
    for run in in_progress:
        platform.wait_for_run_end(run.run_id, 180)
    platform.stop_daemon()
    now = dt.datetime.now(dt.UTC)
    tick_time = next_monday_0400_after(now + dt.timedelta(minutes=2))
    started = time.monotonic()
    platform.start_daemon(clock_offset_s=(tick_time - now).total_seconds() - 20)
    platform.wait_for_daemon()

    def scheduled_run():
        runs = platform.instance.get_runs(RunsFilter(tags={"dagster/schedule_name": "weekly_training_mix"}))
        return runs[0] if runs else None

    run = platform.wait(scheduled_run, 90, f"launch weekly_training_mix for {tick_time:%Y-%m-%d %H:%M} UTC")
    assert run.job_name == "training_mix_job"
    assert run.tags[CORPUS_RUN_TAG] == "true"
    scheduled = dt.datetime.fromisoformat(run.tags[".dagster/scheduled_execution_time"])
    assert scheduled == tick_time
    record = platform.wait_for_run_end(run.run_id, 180)
    platform.timeline["schedule_phase_s"] = time.monotonic() - started
    assert platform.event_times(run.run_id, DagsterEventType.RUN_ENQUEUED), "the scheduled run skipped the queue"
    assert record.dagster_run.status == DagsterRunStatus.SUCCESS, platform.error_messages(run.run_id)
    from dataplatform.io.datasets import DatasetStore

    mix = DatasetStore.local(platform.data_root).manifest("training_mix", "unpartitioned")
    assert mix is not None and mix["metadata"], "training_mix was not committed by the scheduled run"
