"""Task functions for tests/test_pool_workers.py (importable by spawned pool workers)."""

import os
import time


def record_pid_and_sleep(args):
    folder, index = args
    with open(os.path.join(folder, f"{index}-{os.getpid()}.pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)


def pid_of_worker(_task):
    return os.getpid()


def mark_started(args):
    folder, index = args
    with open(os.path.join(folder, f"{index}.started"), "w"):
        pass
    return index
