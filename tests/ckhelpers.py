"""Helpers shared by the integration tests (tests/ is on sys.path: conftest.py is here)."""

from __future__ import annotations

import time

# a container that counts, so freezing can be seen from outside
COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /dev/shm/n; sleep 0.02; done"


def counter(pid: int) -> str:
    """The container's counter, read from outside through /proc/<pid>/root."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with open(f"/proc/{pid}/root/dev/shm/n") as f:
                value = f.read().strip()
            if value:
                return value
        except FileNotFoundError:
            pass
        assert time.monotonic() < deadline, "the counter never appeared"
        time.sleep(0.02)


def advances(pid: int) -> bool:
    first = counter(pid)
    time.sleep(0.3)
    return counter(pid) != first
