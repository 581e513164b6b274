"""Time namespaces: offsets seen from inside (monotonic and boottime clocks), joining one
by path, with a user namespace, and refusals."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pytest
from ckhelpers import run_container as run
from ckhelpers import sh

from containerkit import Bundle, NativeDriver, SpecError, UnsupportedError, new_container

pytestmark = pytest.mark.usefixtures("leak_check")

OFFSETS = {"monotonic": {"secs": 7881, "nanosecs": 2718281},
           "boottime": {"secs": 1337, "nanosecs": 3141519}}


def with_timens(offsets: dict[str, Any] | None = None) -> Callable[[dict[str, Any]], None]:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "time"})
        if offsets is not None:
            cfg["linux"]["timeOffsets"] = offsets
    return edit


def _uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def test_offsets_shift_the_clocks_inside(make_bundle: Callable[..., str],
                                         state_root: str) -> None:
    bundle = make_bundle(sh("""
        cat /proc/self/timens_offsets
        cat /proc/uptime
        readlink /proc/self/ns/time; readlink /proc/self/ns/time_for_children
        """), with_timens(OFFSETS))
    before = _uptime()
    status, out = run(bundle, state_root, "timens-offsets")
    after = _uptime()
    assert status == 0, out
    lines = out.splitlines()
    assert re.fullmatch(r"monotonic\s+7881\s+2718281", lines[0]), out
    assert re.fullmatch(r"boottime\s+1337\s+3141519", lines[1]), out
    # /proc/uptime is CLOCK_BOOTTIME: shifted by the boottime offset (1337.003 s), read
    # between the two host readings (0.01 s granularity, float sums)
    inside = float(lines[2].split()[0])
    assert before + 1337 - 0.02 <= inside <= after + 1337.02, (before, inside, after)
    assert lines[3] == lines[4] != os.readlink("/proc/self/ns/time")


def test_without_offsets_the_clocks_are_the_hosts(make_bundle: Callable[..., str],
                                                  state_root: str) -> None:
    bundle = make_bundle(sh("cat /proc/self/timens_offsets; readlink /proc/self/ns/time"),
                         with_timens())
    status, out = run(bundle, state_root, "timens-zero")
    assert status == 0, out
    lines = out.splitlines()
    assert [line.split() for line in lines[:2]] == [["monotonic", "0", "0"],
                                                    ["boottime", "0", "0"]]
    assert lines[2] != os.readlink("/proc/self/ns/time")


def test_time_and_user_namespaces_together(make_bundle: Callable[..., str],
                                           state_root: str) -> None:
    from containerkit.busybox import make_rootfs

    top = tempfile.mkdtemp(prefix="ck-timens-")   # traversable by the mapped root
    os.chmod(top, 0o755)
    rootfs = make_rootfs(os.path.join(top, "rootfs"))
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    def edit(cfg: dict[str, Any]) -> None:
        with_timens({"boottime": {"secs": 86400}})(cfg)
        cfg["root"]["path"] = rootfs
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = mapping
        cfg["linux"]["gidMappings"] = mapping

    try:
        before = _uptime()
        status, out = run(make_bundle(sh("id -u; cat /proc/uptime"), edit), state_root,
                          "timens-userns")
        after = _uptime()
    finally:
        shutil.rmtree(top)
    assert status == 0, out
    uid, uptime = out.splitlines()
    assert uid == "0"
    assert before + 86400 - 0.02 <= float(uptime.split()[0]) <= after + 86400.02


def test_join_a_time_namespace_by_path(make_bundle: Callable[..., str],
                                       state_root: str) -> None:
    holder_bundle = make_bundle(["sleep", "60"], with_timens({"monotonic": {"secs": 4242}}))
    config = Bundle(holder_bundle, id="timens-holder", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as holder:
        holder.create()
        holder.start()
        ns = f"/proc/{holder.pid}/ns/time"

        def join(cfg: dict[str, Any]) -> None:
            cfg["linux"]["namespaces"].append({"type": "time", "path": ns})

        bundle = make_bundle(sh("cat /proc/self/timens_offsets; readlink /proc/self/ns/time"),
                             join)
        status, out = run(bundle, state_root, "timens-joiner")
        mine = os.readlink(ns)
        holder.delete(force=True)
    assert status == 0, out
    assert re.match(r"monotonic\s+4242\s+0\n", out), out
    assert out.splitlines()[-1] == mine


@pytest.mark.parametrize("edit, match", [
    (lambda c: c["linux"].update(timeOffsets=OFFSETS),
     r"linux\.timeOffsets: set, but linux\.namespaces has no new time namespace"),
    (lambda c: (c["linux"]["namespaces"].append({"type": "time", "path": "/proc/1/ns/time"}),
                c["linux"].update(timeOffsets=OFFSETS)),
     r"linux\.timeOffsets: cannot be set when joining a time namespace by path"),
    (lambda c: with_timens({"monotonic": {"secs": 1, "nanosecs": 1_000_000_000}})(c),
     r"linux\.timeOffsets\.monotonic\.nanosecs: 1000000000 is not below"),
    (lambda c: with_timens({"realtime": {"secs": 1}})(c),
     r"linux\.timeOffsets\.realtime: unknown clock"),
    (lambda c: with_timens({"boottime": {"secs": -(10 ** 12)}})(c),
     r"linux\.timeOffsets\.boottime: -1000000000000s would put the clock out of range"),
    (lambda c: c["linux"]["namespaces"].append({"type": "time", "path": "/no/such/ns"}),
     r"linux\.namespaces: time path /no/such/ns"),
])
def test_bad_time_settings_are_refused(make_bundle: Callable[..., str], state_root: str,
                                       edit: Callable[[dict[str, Any]], None],
                                       match: str) -> None:
    config = Bundle(make_bundle(["true"], edit), id="timens-bad", root=state_root)
    with pytest.raises((SpecError, UnsupportedError)) as info:
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()
    assert "\n" not in str(info.value)
    assert re.search(match, str(info.value)), str(info.value)


def test_start_times_are_in_the_namespace_boottime(make_bundle: Callable[..., str],
                                                 state_root: str) -> None:
    """A process's start time in /proc/<pid>/stat is shown in the reader's boottime: the
    container's own program sees its start shifted by the offset."""
    bundle = make_bundle(["cut", "-d", " ", "-f", "22", "/proc/self/stat"],
                         with_timens({"boottime": {"secs": 100000}}))
    before = time.clock_gettime(time.CLOCK_BOOTTIME)
    status, out = run(bundle, state_root, "timens-stat")
    after = time.clock_gettime(time.CLOCK_BOOTTIME)
    assert status == 0, out
    ticks = os.sysconf("SC_CLK_TCK")
    start = int(out) / ticks
    assert before + 100000 - 1 / ticks <= start <= after + 100000 + 1 / ticks, \
        (before, start, after)
