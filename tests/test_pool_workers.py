"""Shard pool workers end with their driver: a SIGKILLed run leaves no worker running on."""

import os
import signal
import subprocess
import sys
import time

import pytest

DRIVER = r"""
import os, sys, time
from dataplatform.execution.shard_executor import ProcessPoolShardExecutor
from pool_tasks import record_pid_and_sleep
folder = sys.argv[1]
list(ProcessPoolShardExecutor(2).map(record_pid_and_sleep, [(folder, i) for i in range(4)]))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its reaper is gone for our purpose
        return f.read().split()[2] != "Z"


def test_workers_exit_when_the_driver_is_killed(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), *sys.path])}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], env=env)
    deadline = time.time() + 60
    while len(list(tmp_path.glob("*.pid"))) < 2:
        assert time.time() < deadline and driver.poll() is None, "workers did not start"
        time.sleep(0.05)
    workers = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(10)
    deadline = time.time() + 5
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not [w for w in workers if _alive(w)], "pool workers outlived the killed driver"


def test_an_isolated_task_never_runs_in_the_driver_process():
    """One task runs inline (a pool's start-up is not worth it), unless it asks to be isolated: the
    quality classifier trains that way so its peak memory does not stay with the step's driver."""
    from pool_tasks import pid_of_worker

    from dataplatform.execution.shard_executor import ProcessPoolShardExecutor

    for workers in (1, 2):
        pool = ProcessPoolShardExecutor(workers)
        assert list(pool.map(pid_of_worker, [0])) == [os.getpid()]
        (pid,) = pool.map_isolated(pid_of_worker, [0])
        assert pid != os.getpid()


def test_the_pool_runs_a_window_of_tasks_ahead_of_the_consumer(tmp_path):
    """Tasks are handed to the pool a bounded window ahead of the result being read, so a map over
    a whole crawl's shards never holds every result (nor every pending task) in the driver; the
    results still come back complete and in task order."""
    from pool_tasks import mark_started

    from dataplatform.execution.shard_executor import IN_FLIGHT_PER_WORKER, ProcessPoolShardExecutor

    tasks = [(str(tmp_path), i) for i in range(10 * IN_FLIGHT_PER_WORKER * 2)]
    results = ProcessPoolShardExecutor(2).map(mark_started, tasks)
    assert next(results) == 0
    time.sleep(2)  # a pool given every task up front would run far past the window meanwhile
    started = len(list(tmp_path.glob("*.started")))
    assert started <= IN_FLIGHT_PER_WORKER * 2 + 1
    assert list(results) == list(range(1, len(tasks)))
    assert len(list(tmp_path.glob("*.started"))) == len(tasks)


def test_the_pool_takes_tasks_from_a_generator_as_it_submits_them(tmp_path):
    """A stage hands the engine a generator of tasks (built one at a time from shard keys): the
    pool draws from it only as far as its window, so the driver never holds a task object per
    shard of the snapshot; every result still comes back, in order."""
    from pool_tasks import mark_started

    from dataplatform.execution.shard_executor import IN_FLIGHT_PER_WORKER, ProcessPoolShardExecutor

    total = 10 * IN_FLIGHT_PER_WORKER * 2
    drawn = []

    def tasks():
        for i in range(total):
            drawn.append(i)
            yield (str(tmp_path), i)

    results = ProcessPoolShardExecutor(2).map(mark_started, tasks())
    assert next(results) == 0
    assert len(drawn) <= IN_FLIGHT_PER_WORKER * 2 + 1
    assert list(results) == list(range(1, total))
    assert len(drawn) == total


def test_a_task_list_builds_each_task_from_its_input_when_asked():
    from dataplatform.stages.runner import ShardTask, TaskList

    built = []

    def make(i, key):
        built.append(key)
        return ShardTask(i)

    tasks = TaskList(["a", "b", "c"], make)
    assert built == [] and len(tasks) == 3
    assert [t.task_id for t in tasks] == ["part-00000", "part-00001", "part-00002"]
    assert tasks[-1] == ShardTask(2) and built == ["a", "b", "c", "c"]
    with pytest.raises(IndexError):
        tasks[3]
