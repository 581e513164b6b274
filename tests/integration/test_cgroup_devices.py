"""linux.resources.devices enforced by the BPF_CGROUP_DEVICE program, checked from inside.

BPF cgroup programs attach to cgroup2 directories, so this works on the hybrid hosts too.
Major 42 is reserved for "demo/sample" drivers and unused: opening such a node gives
ENXIO ("No such device or address") when the cgroup lets the open through, EPERM when the
program denies it (the device cgroup check runs before the driver lookup).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ckhelpers import CLI, run_container

from containerkit import Bundle, NativeDriver, new_container, syscalls
from containerkit import spec as oci
from containerkit.errors import ContainerkitError

pytestmark = pytest.mark.usefixtures("leak_check")

DENIED = "Operation not permitted"
ALLOWED = "No such device or address"

# open each node read-only and read-write; one line per attempt: "<node> <r|rw> <result>"
PROBE = ("for n in d0 d1 null; do"
         " (exec 3</dev/$n) 2>/dev/null && echo $n r ok"
         " || echo $n r \"$( (exec 3</dev/$n) 2>&1)\";"
         " (exec 3<>/dev/$n) 2>/dev/null && echo $n rw ok"
         " || echo $n rw \"$( (exec 3<>/dev/$n) 2>&1)\";"
         " done")
MKNODS = "mknod /dev/d0 c 42 0 && mknod /dev/d1 c 42 1 || echo mknod failed; "


def _edit(devices: list[dict[str, Any]]) -> Callable[[dict[str, Any]], None]:
    def edit(cfg: dict[str, Any]) -> None:
        for k in ("bounding", "effective", "permitted"):
            cfg["process"]["capabilities"][k].append("CAP_MKNOD")
        cfg["linux"].setdefault("resources", {})["devices"] = devices
    return edit


def _results(out: str) -> dict[tuple[str, str], str]:
    res = {}
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in ("r", "rw"):
            res[(parts[0], parts[1])] = "ok" if parts[2] == "ok" else (
                DENIED if DENIED in parts[2] else ALLOWED if ALLOWED in parts[2] else parts[2])
    return res


def _run(bundle: str, root: str, cid: str) -> str:
    status, out = run_container(bundle, root, cid)
    assert status == 0, out
    return out


def test_denied_device_cannot_be_opened_even_by_root(make_bundle: Callable[..., str],
                                                     state_root: str) -> None:
    # runc's default: deny all, then the spec's allows; d1 readable only
    bundle = make_bundle(["/bin/sh", "-c", MKNODS + PROBE], _edit([
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 42, "minor": 1, "access": "r"},
    ]))
    out = _run(bundle, state_root, "cgdev-deny")
    assert "mknod failed" not in out, out       # runc's list allows mknod of any node
    assert _results(out) == {
        ("d0", "r"): DENIED, ("d0", "rw"): DENIED,
        ("d1", "r"): ALLOWED, ("d1", "rw"): DENIED,
        ("null", "r"): "ok", ("null", "rw"): "ok",    # runc's default allow list
    }, out


def test_a_hole_in_a_wildcard_allow_is_refused(make_bundle: Callable[..., str],
                                              state_root: str) -> None:
    """runc refuses a deny that takes a node out of an earlier wildcard allow (a v1
    devices cgroup would ignore it): refused here too, with nothing left."""
    bundle = make_bundle(["/bin/true"], _edit([
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 42, "access": "rw"},
        {"allow": False, "type": "c", "major": 42, "minor": 1, "access": "w"},
    ]))
    config = Bundle(bundle, id="cgdev-hole", root=state_root)
    with pytest.raises(ContainerkitError, match=r"linux.resources.devices: deny c 42:1 w "
                                                r"cannot punch a hole in .*allow c 42:\* rw"):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()


# /dev/kmsg (c 1:11) in linux.devices: the node is made, but only a rule lets it open;
# the default devices stay usable ("<node> <result>" lines; any error but EPERM is the
# device's own answer, past the device cgroup)
KMSG_NODE = {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600,
             "uid": 0, "gid": 0}
KMSG_PROBE = (
    "mknod /dev/tun c 10 200; "
    "for n in null zero full random urandom tty ptmx tun; do"
    " echo $n \"$( (exec 3<>/dev/$n && echo ok) 2>&1)\"; done; "
    "exec 4<>/dev/ptmx; for p in /dev/pts/[0-9]*; do"
    " echo pts \"$( (exec 3<>$p && echo ok) 2>&1)\"; done; "
    "ls -l /dev/kmsg | cut -c1; "       # write-only: reading it needs CAP_SYSLOG
    "echo kmsg \"$( (echo '<7>containerkit test: /dev/kmsg written by rule' >/dev/kmsg"
    " && echo ok) 2>&1)\"")


def _kmsg(make_bundle: Callable[..., str], state_root: str, cid: str,
          rules: list[dict[str, Any]]) -> tuple[dict[str, str], str]:
    def edit(cfg: dict[str, Any]) -> None:
        _edit(rules)(cfg)
        cfg["linux"].setdefault("devices", []).append(dict(KMSG_NODE))
    out = _run(make_bundle(["/bin/sh", "-c", KMSG_PROBE], edit), state_root, cid)
    got = {}
    for line in out.splitlines():
        node, _, msg = line.partition(" ")
        if msg:
            got[node] = "ok" if msg == "ok" else DENIED if DENIED in msg else msg
    return got, out


def test_a_listed_node_is_not_an_allowed_one(make_bundle: Callable[..., str],
                                             state_root: str) -> None:
    """runc's case: deny all, /dev/kmsg in linux.devices: the node exists, writing it is
    EPERM; runc's default devices still open."""
    got, out = _kmsg(make_bundle, state_root, "cgdev-kmsg", [{"allow": False, "access": "rwm"}])
    assert "c" in out.splitlines(), out       # the node was made
    assert got["kmsg"] == DENIED, out
    for node in ("null", "zero", "full", "random", "urandom", "ptmx"):
        assert got[node] == "ok", (node, out)
    for node in ("tty", "pts", "tun"):       # past the cgroup: ENXIO, EIO (locked), ...
        assert got[node] != DENIED, (node, out)


def test_an_allow_rule_opens_a_listed_node(make_bundle: Callable[..., str],
                                           state_root: str) -> None:
    got, out = _kmsg(make_bundle, state_root, "cgdev-kmsg-ok", [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rw"}])
    assert got["kmsg"] == "ok", out
    assert got["null"] == "ok", out


def test_without_rules_only_the_default_devices_open(make_bundle: Callable[..., str],
                                                     state_root: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        _edit([])(cfg)
        del cfg["linux"]["resources"]["devices"]
    bundle = make_bundle(["/bin/sh", "-c", MKNODS + PROBE], edit)
    res = _results(_run(bundle, state_root, "cgdev-none"))
    assert res[("d0", "r")] == DENIED and res[("null", "rw")] == "ok"


def test_update_replaces_the_rules(make_bundle: Callable[..., str], state_root: str,
                                   tmp_path: Any) -> None:
    loop = MKNODS + f"while :; do {{ {PROBE}; }} > /dev/shm/r.new 2>&1; " \
                    "mv /dev/shm/r.new /dev/shm/r; sleep 0.05; done"
    bundle = make_bundle(["/bin/sh", "-c", loop], _edit([{"allow": False, "access": "rwm"}]))
    config = Bundle(bundle, id="cgdev-upd", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        assert _inside(c.pid, lambda r: r.get(("d0", "r")) == DENIED)
        c.update(oci.Resources(devices=[
            oci.DeviceCgroup(allow=False, access="rwm"),
            oci.DeviceCgroup(allow=True, type="c", major=42, minor=0, access="rw")]))
        res = _inside(c.pid, lambda r: r.get(("d0", "rw")) == ALLOWED)
        assert res[("d1", "r")] == DENIED
        fd = os.open(c.cgroup_path, os.O_RDONLY | os.O_DIRECTORY)
        try:       # replaced, not stacked
            assert len(syscalls.bpf_prog_query(fd, syscalls.BPF_CGROUP_DEVICE)) == 1
        finally:
            os.close(fd)
        # the CLI's `update --resources FILE` (as podman calls it) replaces them too
        res_file = tmp_path / "res.json"
        res_file.write_text(json.dumps({"devices": [{"allow": False, "access": "rwm"}]}))
        res = subprocess.run([*CLI, "--root", state_root, "update", "--resources",
                              str(res_file), "cgdev-upd"], capture_output=True, text=True)
        assert res.returncode == 0, res
        assert _inside(c.pid, lambda r: r.get(("d0", "rw")) == DENIED)
        c.delete(force=True)


def _inside(pid: int, ok: Callable[[dict[tuple[str, str], str]], bool],
            timeout: float = 20) -> dict[tuple[str, str], str]:
    path = Path(f"/proc/{pid}/root/dev/shm/r")
    deadline = time.monotonic() + timeout
    while True:
        try:
            res = _results(path.read_text())
        except FileNotFoundError:
            res = {}
        if ok(res):
            return res
        assert time.monotonic() < deadline, res
        time.sleep(0.05)


def test_bad_rule_is_refused_and_nothing_left(make_bundle: Callable[..., str],
                                              state_root: str) -> None:
    bundle = make_bundle(["/bin/true"], _edit([
        {"allow": True, "type": "c", "major": 1 << 33, "minor": 0, "access": "r"}]))
    config = Bundle(bundle, id="cgdev-bad", root=state_root)
    with pytest.raises(ContainerkitError, match=r"linux.resources.devices\[0\].major"):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()


def test_the_verifier_walks_the_default_program_once() -> None:
    """Every create loads the program, so the verifier's work is start-up time: with runc's
    default rules it must visit each instruction about once per branch, not once per
    combination of matching rules (what comparing the device registers directly cost)."""
    import re

    from containerkit.cgroups import devices as d

    ffi = syscalls.ffi
    code = d.assemble([d.Rule(False), *d.DEFAULT_RULES])
    insns, lic, log = ffi.new("char[]", code), ffi.new("char[]", b"Apache"), ffi.new(
        "char[]", 4096)
    attr = syscalls._attr("<IIQQIIQII16sII", syscalls.BPF_PROG_TYPE_CGROUP_DEVICE,
                          len(code) // 8, syscalls._addr(insns), syscalls._addr(lic),
                          4, 4096, syscalls._addr(log), 0, 0, b"ck_test", 0,  # BPF_LOG_STATS
                          syscalls.BPF_CGROUP_DEVICE)
    fd = syscalls.lib.ck_bpf(syscalls.BPF_PROG_LOAD, attr, syscalls._BPF_ATTR_SIZE)
    assert fd >= 0, ffi.errno
    os.close(fd)
    stats = ffi.string(log).decode()
    processed = int(re.search(r"processed (\d+) insns", stats).group(1))  # type: ignore[union-attr]
    assert processed <= 3 * len(code) // 8, stats   # was ~9x
