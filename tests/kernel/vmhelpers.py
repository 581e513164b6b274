"""Helpers for the kernel tests (run in the VM): bundles with resources, reading a
container's files through /proc/<pid>/root, polling without fixed sleeps."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from containerkit.busybox import make_bundle

_SCRIPT = Path(sys.executable).with_name("containerkit")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "containerkit"]
T = TypeVar("T")


def bundle(path: str, script: str, resources: dict[str, Any],
           edit: Callable[[dict[str, Any]], None] | None = None) -> str:
    """A busybox bundle running ``sh -c script`` with ``linux.resources`` updated."""
    b = make_bundle(path, args=["/bin/sh", "-c", script])
    with open(os.path.join(b, "config.json")) as f:
        cfg = json.load(f)
    cfg["linux"]["resources"].update(resources)
    if edit is not None:
        edit(cfg)
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(cfg, f)
    return b


def add_caps(cfg: dict[str, Any], *caps: str) -> None:
    for k in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][k].extend(caps)


def poll(get: Callable[[], T], ok: Callable[[T], bool], what: str, timeout: float = 60) -> T:
    """``get()`` until ``ok`` holds (a deadline, not a timed assertion: generous under TCG)."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"{what}: last value {value!r}"
        time.sleep(0.05)


def inside(pid: int, name: str) -> str:
    """/dev/shm/<name> of the container (empty while it does not exist)."""
    try:
        return Path(f"/proc/{pid}/root/dev/shm/{name}").read_text()
    except FileNotFoundError:
        return ""


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def kv(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line)}


def states(cgroup: str) -> dict[int, str]:
    """pid -> /proc state letter of every process in the cgroup."""
    out = {}
    for pid in read(f"{cgroup}/cgroup.procs").split():
        try:
            stat = read(f"/proc/{pid}/stat")
        except (FileNotFoundError, ProcessLookupError):   # exited since cgroup.procs was read
            continue
        out[int(pid)] = stat[stat.rindex(")") + 2]
    return out
