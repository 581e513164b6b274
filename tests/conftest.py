"""Shared fixtures: a busybox rootfs built once, bundles per test, a private state root,
and a check that every test leaves nothing behind (state, cgroups, mounts, children)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

CGROUP_PARENT = "/sys/fs/cgroup/unified/containerkit"
LEAK_GRACE = 5.0   # seconds for machine-wide leftovers of concurrent runs to go


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox root filesystem shared (read-only) by all tests."""
    needs_root()
    from containerkit.busybox import make_rootfs

    return make_rootfs(str(tmp_path_factory.mktemp("ck-test-rootfs")))


@pytest.fixture
def state_root(tmp_path: Any) -> Iterator[str]:
    root = str(tmp_path / "state")
    os.makedirs(root)
    yield root


@pytest.fixture
def make_bundle(tmp_path: Any, rootfs: str) -> Callable[..., str]:
    """make_bundle(args, edit=fn(config_dict)) -> bundle dir using the shared rootfs."""
    from containerkit import spec as oci

    counter = [0]

    def make(args: list[str], edit: Callable[[dict[str, Any]], None] | None = None) -> str:
        counter[0] += 1
        bundle = tmp_path / f"bundle{counter[0]}"
        bundle.mkdir()
        config = oci.default_spec(cgroupns=False).to_dict()
        config["root"]["path"] = rootfs
        config["process"]["args"] = args
        if edit is not None:
            edit(config)
        (bundle / "config.json").write_text(json.dumps(config))
        return str(bundle)

    return make


def _snapshot() -> dict[str, Any]:
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if "containerkit" in line or "ck-test" in line]
    cgroups = sorted(os.listdir(CGROUP_PARENT)) if os.path.isdir(CGROUP_PARENT) else []
    cgroups = [c for c in cgroups if os.path.isdir(os.path.join(CGROUP_PARENT, c))]
    return {"mounts": mounts, "cgroups": cgroups, "children": _children()}


def _new_since(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [x for x in after[k] if x not in before[k]] for k in after}


def _children() -> list[int]:
    me = str(os.getpid())
    kids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if data[data.rindex(b")") + 2:].split()[1].decode() == me:
                kids.append(int(pid))
    return kids


@pytest.fixture
def leak_check(state_root: str) -> Iterator[Callable[[], None]]:
    """Fails the test if it left state, a cgroup, a mount or a child process behind."""
    before = _snapshot()

    def check() -> None:
        # Only what is new counts, and it may take a moment to go: cgroups and mounts are
        # machine-wide, so another test run going on at the same time adds and removes
        # its own (its containers are short-lived; a leak of ours never goes away).
        deadline = time.monotonic() + LEAK_GRACE
        while True:
            new = _new_since(before, _snapshot())
            if not any(new.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not any(new.values()), f"left behind: {new}"
        assert os.listdir(state_root) == [], f"state left: {os.listdir(state_root)}"

    yield check
    check()


def copy_rootfs(src: str, dest: str) -> str:
    shutil.copytree(src, dest, symlinks=True)
    return dest


@pytest.fixture
def busy_threads(leak_check: Callable[[], None]) -> Iterator[None]:
    """One thread that holds the GIL most of the time, one that allocates (started after
    the leak check's snapshot, which is slow while they compete for the GIL)."""
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    def churn() -> None:
        while not stop.is_set():
            _ = [str(i) * 10 for i in range(1000)]

    threads = [threading.Thread(target=f, daemon=True) for f in (spin, churn)]
    for t in threads:
        t.start()
    yield
    stop.set()
    for t in threads:
        t.join()
