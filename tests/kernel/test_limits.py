"""cpu, cpuset, io, unified, stats, freeze under load and ``kill --all`` on a pure cgroup v2
kernel (run in the VM). One container serves the whole module (container starts are slow
under emulation); the tests run in file order and the last one kills it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from vmhelpers import CLI, bundle, inside, kv, poll, read, states

from containerkit import Bundle, Container, NativeDriver, new_container
from containerkit import spec as oci

CID = "lim1"
LOOP_DEV = "7:0"      # /dev/loop0: run-vm-tests loads the loop module

# what the container sees, then two busy loops and a counter
SCRIPT = (
    "grep -E '^(Cpus|Mems)_allowed_list' /proc/self/status > /dev/shm/status; "
    "cat /proc/self/cgroup > /dev/shm/cgroup; "
    "for f in cpu.max cpuset.cpus io.weight io.max memory.high pids.max; do"
    " echo \"$f=$(cat /sys/fs/cgroup/$f)\"; done > /dev/shm/files; "
    "(while :; do :; done) & (while :; do :; done) & "
    "i=0; while :; do i=$((i+1)); echo $i > /dev/shm/n; sleep 0.02; done")

RESOURCES: dict[str, Any] = {
    "cpu": {"quota": 10000, "period": 100000, "cpus": "1", "mems": "0"},
    "blockIO": {"weight": 500,
                "throttleReadBpsDevice": [{"major": 7, "minor": 0, "rate": 1 << 20}],
                "throttleWriteIOPSDevice": [{"major": 7, "minor": 0, "rate": 100}]},
    "pids": {"limit": 64},
    "unified": {"memory.high": str(256 << 20)},
}


@pytest.fixture(scope="module")
def ctr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    assert os.path.exists("/sys/class/block/loop0"), "no /dev/loop0 (loop module not loaded?)"
    assert read("/sys/class/block/loop0/dev").strip() == LOOP_DEV
    tmp = tmp_path_factory.mktemp("limits")
    root = str(tmp / "state")
    config = Bundle(bundle(str(tmp / "b"), SCRIPT, RESOURCES), id=CID, root=root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        poll(lambda: inside(c.pid, "n"), bool, "the counter")
        yield c
    assert not os.path.exists(c.cgroup_path)


def test_limits_and_cgroupns_root_seen_inside(ctr: Container) -> None:
    status = inside(ctr.pid, "status")
    assert "Cpus_allowed_list:\t1\n" in status and "Mems_allowed_list:\t0\n" in status, status
    assert inside(ctr.pid, "cgroup") == "0::/\n"          # its own cgroup namespace root
    files = dict(line.split("=", 1) for line in inside(ctr.pid, "files").splitlines())
    assert files["cpu.max"] == "10000 100000"
    assert files["cpuset.cpus"] == "1"
    assert files["io.weight"] == "default 4950"            # runc's [10,1000] -> [1,10000]
    assert files["io.max"] == f"{LOOP_DEV} rbps=1048576 wbps=max riops=max wiops=100"
    assert files["memory.high"] == str(256 << 20)          # the unified key
    assert files["pids.max"] == "64"


def test_cpu_max_throttles(ctr: Container) -> None:
    cpu_stat = os.path.join(ctr.cgroup_path, "cpu.stat")
    poll(lambda: kv(read(cpu_stat)), lambda st: st["nr_throttled"] >= 3, "nr_throttled")
    thr = ctr.stats()["cpu"]["throttling"]
    assert thr["throttledPeriods"] >= 3 and thr["throttledTime"] > 0, thr


def test_stats_have_runcs_shape(ctr: Container, tmp_path: Any) -> None:
    stats = ctr.stats()
    assert set(stats) >= {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb"}
    assert stats["cpu"]["usage"]["total"] > 0 and stats["cpu"]["usage"]["user"] >= 0
    assert stats["cpuset"]["cpus"] == [1] and stats["cpuset"]["mems"] == [0]
    assert stats["memory"]["usage"]["usage"] > 0
    assert set(stats["memory"]["event_count"]) == {"low", "high", "max", "oom", "oom_kill"}
    assert stats["memory"]["raw"]["anon"] >= 0
    assert stats["pids"]["current"] >= 3 and stats["pids"]["limit"] == 64
    # the CLI's one-shot `events --stats`: runc's {"type": "stats", "id", "data"}
    res = subprocess.run([*CLI, "--root", str(ctr.statedir.root), "events", "--stats", CID],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res
    event = json.loads(res.stdout)
    assert event["type"] == "stats" and event["id"] == CID
    assert event["data"]["pids"]["limit"] == 64


def test_update_changes_cpu_max_live(ctr: Container) -> None:
    res = subprocess.run([*CLI, "--root", str(ctr.statedir.root), "update", "--cpu-quota",
                          "20000", CID], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res
    # the container's own view: its cgroup namespace root is its cgroup
    assert read(f"/proc/{ctr.pid}/root/sys/fs/cgroup/cpu.max") == "20000 100000\n"
    ctr.update(oci.Resources(cpu=oci.CPU(cpus="0-1")))
    assert read(f"/proc/{ctr.pid}/root/sys/fs/cgroup/cpuset.cpus.effective") == "0-1\n"
    assert read(os.path.join(ctr.cgroup_path, "cpu.max")) == "20000 100000\n"   # kept


def test_freeze_and_thaw_under_load(ctr: Container) -> None:
    cg = ctr.cgroup_path
    poll(lambda: states(cg), lambda s: "R" in s.values(), "a busy loop running")
    ctr.pause()
    assert ctr.status == "paused"
    assert "frozen 1" in read(f"{cg}/cgroup.events").splitlines()
    frozen = states(cg)
    assert len(frozen) >= 3 and set(frozen.values()) <= {"S", "D"}, frozen
    n = inside(ctr.pid, "n")
    ctr.resume()
    assert ctr.status == "running"
    assert "frozen 0" in read(f"{cg}/cgroup.events").splitlines()
    poll(lambda: inside(ctr.pid, "n"), lambda v: v not in ("", n), "the counter after thaw")
    poll(lambda: states(cg), lambda s: "R" in s.values(), "a busy loop running again")


def test_kill_all_empties_the_cgroup(ctr: Container) -> None:
    cg = ctr.cgroup_path
    res = subprocess.run([*CLI, "--root", str(ctr.statedir.root), "kill", "--all", CID,
                          "KILL"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res
    poll(lambda: read(f"{cg}/cgroup.events"), lambda t: "populated 0" in t.splitlines(),
         "cgroup.events")
    assert ctr.wait(timeout=60) == 137
    assert read(f"{cg}/cgroup.procs") == ""
