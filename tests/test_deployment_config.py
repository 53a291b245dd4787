"""The production deployment config under deploy/ is valid, loads without a cluster, holds no secrets.

Nothing here connects to PostgreSQL, Kubernetes or Ray: the instance YAML is validated the way
``DagsterInstance`` validates it (the instance schema), and each configured class (PostgreSQL
storage, K8sRunLauncher, QueuedRunCoordinator, S3ComputeLogManager) against its own
``config_type()`` with its ``env:`` references resolved -- exactly what Dagster does before it
constructs the class, which is the first step that would open a connection.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
ENV_EXAMPLE = DEPLOY / "env.production.example"


def require(module: str):
    """dagster-postgres / dagster-k8s (the ``deploy`` extra): skip without them, fail in CI."""
    if os.environ.get("CI"):
        return __import__(module)
    return pytest.importorskip(module, reason=f"{module} not installed (pip install 'dataplatform[deploy]')")


SECRET_NAMES = ("DAGSTER_PG_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def read_env_example() -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"env.production.example: not NAME=value: {line!r}"
            env[name] = value
    return env


@pytest.fixture
def production_env(monkeypatch):
    """The example environment, plus stand-ins for what Kubernetes Secrets inject at run time."""
    env = read_env_example()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "placeholder-from-k8s-secret")
    return env


def _env_refs(node) -> set[str]:
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(_env_refs(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_env_refs(v) for v in node)) if node else set()
    return set()


# ------------------------------------------------------------------------------- dagster.yaml
@pytest.fixture
def instance_dir(tmp_path):
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    return tmp_path


def test_dagster_yaml_matches_the_instance_schema(instance_dir):
    config, custom_class = dagster_instance_config(str(instance_dir))
    assert custom_class is None
    assert set(config["storage"]) == {"postgres"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["concurrency"]["pools"]["default_limit"] == 1
    limits = {lim["key"]: lim for lim in config["concurrency"]["runs"]["tag_concurrency_limits"]}
    assert limits["dagster/partition"]["value"] == {"applyLimitPerUniqueValue": True}
    assert limits["dagster/partition"]["limit"] == 1


def test_configured_classes_accept_their_config(instance_dir, production_env):
    require("dagster_postgres")
    require("dagster_k8s")
    ref = InstanceRef.from_dir(str(instance_dir))
    checked = {}
    for data in (
        ref.storage_data,
        ref.run_storage_data,
        ref.event_storage_data,
        ref.schedule_storage_data,
        ref.run_coordinator_data,
        ref.run_launcher_data,
        ref.compute_logs_data,
    ):
        module = __import__(data.module_name, fromlist=[data.class_name])
        klass = getattr(module, data.class_name)
        result = process_config(resolve_to_config_type(klass.config_type()), data.config_dict)
        assert result.success, (data.class_name, [e.message for e in result.errors])
        checked[data.class_name] = result.value
    assert {"DagsterPostgresStorage", "K8sRunLauncher", "QueuedRunCoordinator", "S3ComputeLogManager"} <= set(checked)
    # env: references resolved from the (example) environment, not written in the file.
    pg = checked["DagsterPostgresStorage"]["postgres_db"]
    assert (pg["hostname"], pg["port"], pg["password"]) == (
        production_env["DAGSTER_PG_HOST"],
        5432,
        "placeholder-from-k8s-secret",
    )
    assert checked["K8sRunLauncher"]["job_namespace"] == production_env["DAGSTER_K8S_NAMESPACE"]
    # The coordinator builds without a database; the limits it will apply come from `concurrency`.
    coordinator = ref.run_coordinator_data.rehydrate()
    assert type(coordinator).__name__ == "QueuedRunCoordinator"


def test_gpu_pool_limit_applies_to_an_instance_with_this_concurrency_config(instance_dir):
    """The step the deploy notes prescribe (`dagster instance concurrency set gpu 1`), on SQLite."""
    config, _ = dagster_instance_config(str(instance_dir))
    with dg.instance_for_test(overrides={"concurrency": config["concurrency"]}) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        instance.event_log_storage.set_concurrency_slots("gpu", 1)
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1


def test_every_env_reference_is_documented_in_the_env_example():
    env = read_env_example()
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    refs = _env_refs(config)
    assert refs, "dagster.yaml should take deployment values from env: references"
    assert refs <= set(env), f"undocumented in env.production.example: {sorted(refs - set(env))}"


# ---------------------------------------------------------------------- Kubernetes (dagster-k8s)
def test_k8s_job_executor_config_matches_its_schema():
    require("dagster_k8s")
    from dagster_k8s import k8s_job_executor

    cfg = yaml.safe_load((DEPLOY / "k8s" / "job_executor.yaml").read_text())["execution"]["config"]
    result = process_config(resolve_to_config_type(k8s_job_executor.config_schema.config_type), cfg)
    assert result.success, [e.message for e in result.errors]
    # The executor applies it exactly as it is written (no kubernetes client needed to check).
    dg.Definitions(assets=[], executor=k8s_job_executor.configured(cfg))


def test_gpu_op_tags_request_one_gpu_and_build_a_valid_pod_spec():
    require("dagster_k8s")
    import kubernetes
    from dagster_k8s.job import get_user_defined_k8s_config
    from dagster_k8s.models import k8s_model_from_dict

    tags = yaml.safe_load((DEPLOY / "k8s" / "gpu_op_tags.yaml").read_text())
    assert set(tags) == {"dagster-k8s/config"}
    # Op tags are strings on the wire; parse them the way dagster-k8s does for a step's pod.
    user_config = get_user_defined_k8s_config({key: json.dumps(value) for key, value in tags.items()})
    limits = user_config.container_config["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    container = k8s_model_from_dict(kubernetes.client.V1Container, {"name": "step", **user_config.container_config})
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    pod_spec = k8s_model_from_dict(kubernetes.client.V1PodSpec, {"containers": [], **user_config.pod_spec_config})
    assert pod_spec.tolerations[0].key == "nvidia.com/gpu"
    # An asset declared with these tags and the gpu pool is accepted by Dagster.
    asset = dg.asset(name="gpu_probe", pool="gpu", op_tags=tags)(lambda: None)
    assert asset.op.pool == "gpu"


def _gpu_pool_assets_without_gpu_request(assets_defs) -> list[str]:
    missing = []
    for assets_def in assets_defs:
        if not assets_def.is_executable:  # external AssetSpecs (the crawl) run nothing
            continue
        node = assets_def.node_def
        if getattr(node, "pool", None) != "gpu":
            continue
        raw = (node.tags or {}).get("dagster-k8s/config")
        config = json.loads(raw) if isinstance(raw, str) else (raw or {})
        limits = config.get("container_config", {}).get("resources", {}).get("limits", {})
        if str(limits.get("nvidia.com/gpu", "0")) in ("", "0"):
            missing.append(node.name)
    return missing


def test_gpu_pool_assets_carry_the_k8s_gpu_request():
    """Any asset in the code location that joins the `gpu` pool also asks Kubernetes for a GPU."""
    from dataplatform.definitions import defs

    tags = yaml.safe_load((DEPLOY / "k8s" / "gpu_op_tags.yaml").read_text())
    good = dg.asset(name="gpu_good", pool="gpu", op_tags=tags)(lambda: None)
    bad = dg.asset(name="gpu_bad", pool="gpu")(lambda: None)
    assert _gpu_pool_assets_without_gpu_request([good, bad]) == ["gpu_bad"]  # the guard bites
    assert _gpu_pool_assets_without_gpu_request(defs.resolve_asset_graph().assets_defs) == []


# ----------------------------------------------------------------- code location, production env
LOAD_SCRIPT = """
import json, sys
import dagster as dg
from dataplatform.definitions import defs
from dataplatform.resources.settings import resources_from_env
dg.Definitions.validate_loadable(defs)
# Bucket/endpoint/address fields are dg.EnvVar: resolve them as a run would.
resources = {k: r.process_config_and_initialize() for k, r in resources_from_env().items()}
context = dg.build_init_resource_context()
for resource in resources.values():
    resource.setup_for_execution(context)  # validates locations, builds the executor
executor = resources["shard_execution"].executor()
print(json.dumps({
    "executor": type(executor).__name__,
    "describe": executor.describe(),
    "data": str(resources["dataset_storage"].location()),
    "crawl": str(resources["crawl_source"].location()),
    "ray_imported": "ray" in sys.modules,
    "assets": sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()),
}))
"""


def test_definitions_load_with_production_env_without_a_cluster(production_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAPLATFORM_", "DAGSTER_PG_"))}
    env.update({k: v for k, v in production_env.items() if v})
    env["DAGSTER_HOME"] = ""  # no instance needed to load a code location
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT], check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["executor"] == "RayShardExecutor"
    assert production_env["DATAPLATFORM_RAY_ADDRESS"] in info["describe"]
    assert not info["ray_imported"], "loading the code location must not import (or connect to) Ray"
    assert production_env["DATAPLATFORM_DATA_BUCKET"] in info["data"]
    assert production_env["DATAPLATFORM_CRAWL_BUCKET"] in info["crawl"]
    assert {"raw_pages", "documents"} <= set(info["assets"])


def test_resources_from_production_env_mapping(production_env):
    from dataplatform.io.object_store import S3Location
    from dataplatform.resources.settings import resources_from_env

    resources = resources_from_env(production_env)
    assert isinstance(resources["dataset_storage"].location(), S3Location)
    assert isinstance(resources["crawl_source"].location(), S3Location)
    execution = resources["shard_execution"]
    assert (execution.engine, execution.ray_address, execution.max_workers) == (
        "ray",
        production_env["DATAPLATFORM_RAY_ADDRESS"],
        int(production_env["DATAPLATFORM_MAX_WORKERS"]),
    )


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"DATAPLATFORM_ENGINE": "dask"}, "DATAPLATFORM_ENGINE"),
        ({"DATAPLATFORM_ENGINE": "process"}, "DATAPLATFORM_RAY_ADDRESS"),  # address without the ray engine
        ({"DATAPLATFORM_RAY_ADDRESS": "ray://head 10001"}, "DATAPLATFORM_RAY_ADDRESS"),
        ({"DATAPLATFORM_MAX_WORKERS": "-2"}, "DATAPLATFORM_MAX_WORKERS"),
    ],
)
def test_bad_execution_env_fails_naming_the_variable(production_env, overrides, variable):
    from dataplatform.resources.settings import resources_from_env

    with pytest.raises(dg.DagsterInvalidConfigError, match=variable):
        resources_from_env({**production_env, **overrides})


# ------------------------------------------------------------------------------------ secrets
SECRET_KEY = re.compile(r"(password|secret_access_key|access_key_id|session_token|api_key|token)$", re.IGNORECASE)
NOT_A_SECRET = {"postgres_password_secret"}  # the *name* of a Kubernetes Secret


def _literal_secrets(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}"
            if (
                isinstance(key, str)
                and SECRET_KEY.search(key)
                and key not in NOT_A_SECRET
                and not (isinstance(value, dict) and set(value) == {"env"})
            ):
                yield where
            yield from _literal_secrets(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _literal_secrets(value, f"{path}[{i}]")


def test_deploy_files_reference_secrets_only_through_env():
    files = sorted(p for p in DEPLOY.rglob("*") if p.is_file())
    assert files
    for path in files:
        if path.suffix in (".yaml", ".yml"):
            for doc in yaml.safe_load_all(path.read_text()):
                assert not list(_literal_secrets(doc)), f"{path}: literal secret at {list(_literal_secrets(doc))}"
    env = read_env_example()
    for name in SECRET_NAMES:
        assert env.get(name, "") == "", f"env.production.example sets secret {name}"
    for name, value in env.items():
        if SECRET_KEY.search(name) or "PASSWORD" in name or "SECRET" in name:
            assert value == "", f"env.production.example sets secret-looking {name}"


HIGH_SIGNAL_SECRETS = [
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b(?:postgres(?:ql)?|mysql|redis|amqp)://[^:/\s@]+:(?!\$\{)[^@\s/]+@"),  # URL with a password
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),  # GitHub token
    re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),  # Hugging Face token
]


def test_no_secrets_in_committed_files():
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    paths = [REPO / p for p in listed.stdout.split("\0") if p]
    hits = []
    for path in paths:
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue  # binary (WARCs, parquet, models)
        for pattern in HIGH_SIGNAL_SECRETS:
            hits += [f"{path.relative_to(REPO)}: {m.group(0)[:12]}..." for m in pattern.finditer(text)]
    assert not hits, hits


# ------------------------------------------------------------ queueing rules and the tags they key on
LOCAL_YAML = DEPLOY / "local" / "dagster.yaml"
SINGLE_HOST_YAML = DEPLOY / "single-host" / "dagster.yaml"


def _tag_limits(path: Path) -> dict[str, dict]:
    return {lim["key"]: lim for lim in yaml.safe_load(path.read_text())["concurrency"]["runs"]["tag_concurrency_limits"]}


@pytest.mark.parametrize("path", [DEPLOY / "dagster.yaml", LOCAL_YAML, SINGLE_HOST_YAML], ids=lambda p: p.parent.name)
def test_every_instance_config_queues_one_run_per_snapshot_and_one_corpus_run(path, tmp_path):
    shutil.copy(path, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    limits = _tag_limits(path)
    assert limits["dagster/partition"] == {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert limits["dataplatform/corpus"] == {"key": "dataplatform/corpus", "limit": 1}
    assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}


def test_local_instance_config_is_what_dagster_dev_gets(tmp_path, monkeypatch):
    """scripts/dev.sh's DAGSTER_HOME holds deploy/local/dagster.yaml: SQLite, queued runs, the same limits."""
    shutil.copy(LOCAL_YAML, tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config
        assert {lim["key"] for lim in queue.tag_concurrency_limits} == {"dagster/partition", "dataplatform/corpus"}
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
    script = (REPO / "scripts" / "dev.sh").read_text()
    assert "deploy/local/dagster.yaml" in script and "DAGSTER_HOME" in script and "-h 127.0.0.1" in script


def test_jobs_carry_the_tags_the_run_limits_key_on():
    """Each non-system key limited in the instance configs is set by the jobs that must queue on it."""
    from dataplatform.definitions import CORPUS_RUN_TAG, defs

    user_keys = {
        key for path in (DEPLOY / "dagster.yaml", LOCAL_YAML) for key in _tag_limits(path) if not key.startswith("dagster/")
    }
    assert user_keys == {CORPUS_RUN_TAG}
    for job_name in ("corpus_refresh", "training_mix_job"):
        assert defs.resolve_job_def(job_name).tags.get(CORPUS_RUN_TAG) == "true", job_name
    assert defs.get_schedule_def("weekly_training_mix").job_name == "training_mix_job"
    # Per-snapshot jobs are partitioned: every run of them carries `dagster/partition`.
    for job_name in ("snapshot_pipeline", "ingest_job", "filter_job", "dedup_job", "synthesis_job"):
        job = defs.resolve_job_def(job_name)
        assert job.partitions_def is not None and CORPUS_RUN_TAG not in job.tags, job_name


def test_postgres_storage_driver_is_installed(instance_dir, production_env):
    """The SQLAlchemy URL Dagster builds from deploy/dagster.yaml names a driver that is importable.

    Plain `postgresql://` means psycopg 3 under SQLAlchemy >= 2.1, which dagster-postgres does not
    install; every connection then fails with "No module named 'psycopg'".
    """
    require("dagster_postgres")
    from dagster_postgres.utils import pg_url_from_config
    from sqlalchemy.engine import make_url

    ref = InstanceRef.from_dir(str(instance_dir))
    storage = ref.storage_data
    klass = getattr(__import__(storage.module_name, fromlist=[storage.class_name]), storage.class_name)
    config = process_config(resolve_to_config_type(klass.config_type()), storage.config_dict).value
    url = make_url(pg_url_from_config(config))
    assert url.drivername == "postgresql+psycopg2"
    url.get_dialect().import_dbapi()  # raises ModuleNotFoundError when the driver is missing


def test_sensor_interval_comes_from_the_environment(monkeypatch):
    from dataplatform.assets.sensors import (
        DEFAULT_SENSOR_INTERVAL_S,
        build_snapshot_sensor,
        sensor_interval_seconds,
    )
    from dataplatform.definitions import snapshot_pipeline_job

    assert sensor_interval_seconds({}) == DEFAULT_SENSOR_INTERVAL_S == 60
    assert sensor_interval_seconds({"DATAPLATFORM_SENSOR_INTERVAL_S": "5"}) == 5
    monkeypatch.setenv("DATAPLATFORM_SENSOR_INTERVAL_S", "7")
    assert build_snapshot_sensor(snapshot_pipeline_job).minimum_interval_seconds == 7
    for bad in ("0", "-3", "1.5", "soon"):
        with pytest.raises(dg.DagsterInvalidConfigError, match="DATAPLATFORM_SENSOR_INTERVAL_S"):
            sensor_interval_seconds({"DATAPLATFORM_SENSOR_INTERVAL_S": bad})
