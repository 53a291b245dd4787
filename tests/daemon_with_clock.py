"""``dagster-daemon`` whose clock runs a fixed number of seconds ahead of the real one.

Usage: ``python tests/daemon_with_clock.py OFFSET_SECONDS run -w workspace.yaml``

Used by tests/test_production_instance.py to let the real daemon tick the weekly schedule at its
cron time (Monday 04:00 UTC) without waiting for Monday. Dagster reads "now" through the two
mockable functions in ``dagster._time`` (the hook its own ``freeze_time`` test helper patches);
shifting both before the daemon starts moves the scheduler, the sensors and the run queue as one,
while code servers and run workers keep the real clock. A process-wide fake clock (libfaketime)
would be closer still, but Debian's libfaketime 0.9.10 makes Python's ``time.sleep`` fail with
EINVAL (absolute ``clock_nanosleep``), so the daemon could not run under it.
"""

import sys
from datetime import timedelta

import dagster._time as dagster_time


def main() -> None:
    offset = float(sys.argv[1])
    real_datetime = dagster_time._mockable_get_current_datetime
    real_timestamp = dagster_time._mockable_get_current_timestamp
    dagster_time._mockable_get_current_datetime = lambda: real_datetime() + timedelta(seconds=offset)
    dagster_time._mockable_get_current_timestamp = lambda: real_timestamp() + offset

    from dagster._daemon.cli import main as daemon_main

    sys.argv = ["dagster-daemon", *sys.argv[2:]]
    sys.exit(daemon_main())


if __name__ == "__main__":
    main()
