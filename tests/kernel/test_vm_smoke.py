"""The VM is what the kernel tests expect: pure cgroup v2 with the controllers, and a
real container runs there through the library. Proves the environment, not the cgroup
manager; each check here costs ~50x its host time under emulation, so keep them few."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest

CGROUP = "/sys/fs/cgroup"


def _fstype(mountpoint: str) -> str | None:
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[4] == mountpoint:
                found = right.split()[0]          # the last mount there wins
    return found


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def test_sys_fs_cgroup_is_cgroup2_with_controllers() -> None:
    assert _fstype(CGROUP) == "cgroup2"
    controllers = set(_read(f"{CGROUP}/cgroup.controllers").split())
    assert {"memory", "pids", "cpu", "io"} <= controllers, controllers


def test_child_cgroup_takes_memory_and_pids() -> None:
    _write(f"{CGROUP}/cgroup.subtree_control", "+memory +pids")
    child = f"{CGROUP}/ck-smoke-{uuid.uuid4().hex[:8]}"
    os.mkdir(child)
    try:
        _write(f"{child}/cgroup.subtree_control", "+memory +pids")
        assert {"memory", "pids"} <= set(_read(f"{child}/cgroup.subtree_control").split())
        leaf = f"{child}/leaf"
        os.mkdir(leaf)
        try:
            _write(f"{leaf}/memory.max", str(64 << 20))
            _write(f"{leaf}/pids.max", "16")
            assert _read(f"{leaf}/memory.max").strip() == str(64 << 20)
            assert _read(f"{leaf}/pids.max").strip() == "16"
        finally:
            os.rmdir(leaf)
    finally:
        os.rmdir(child)


@pytest.mark.parametrize("cgroupns, expected", [(False, "0::/containerkit/vm1\n"),
                                                (True, "0::/\n")],
                         ids=["host-cgroupns", "own-cgroupns"])
def test_container_runs_in_its_cgroup(tmp_path: Any, cgroupns: bool, expected: str) -> None:
    from containerkit import BindGraphDriver, Bundle, NativeDriver, new_container
    from containerkit.busybox import make_bundle

    bundle = make_bundle(str(tmp_path / "bundle"), args=["/bin/sh", "-c", "cat /proc/self/cgroup"])
    # default_spec() adds a cgroup namespace on a pure v2 host (as runc does): in it the
    # container sees its own cgroup as "/"; without it, the path under the v2 root
    with open(f"{bundle}/config.json") as f:
        config = json.load(f)
    namespaces = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "cgroup"]
    if cgroupns:
        namespaces.append({"type": "cgroup"})
    config["linux"]["namespaces"] = namespaces
    with open(f"{bundle}/config.json", "w") as f:
        json.dump(config, f)

    state = str(tmp_path / "state")
    os.mkdir(state)
    out = tmp_path / "out"
    with open(out, "w+b") as stdout:
        c = new_container(Bundle(bundle, id="vm1", root=state),
                          BindGraphDriver(bundle + "/rootfs"), NativeDriver())
        try:
            c.stdout = stdout
            c.stderr = stdout
            c.create()
            assert c.cgroup_path == f"{CGROUP}/containerkit/vm1"
            c.start()
            status = c.wait(timeout=120)
        finally:
            c.delete(force=True)
    assert (status, out.read_text()) == (0, expected)
    assert not os.path.exists(f"{CGROUP}/containerkit/vm1")
    assert os.listdir(state) == []
