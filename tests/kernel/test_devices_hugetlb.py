"""Device rules (the BPF_CGROUP_DEVICE program), the hugetlb limit, and delete of a frozen
container, on a pure cgroup v2 kernel (run in the VM)."""

from __future__ import annotations

import os
from typing import Any

from vmhelpers import add_caps, bundle, inside, kv, poll, read

from containerkit import Bundle, NativeDriver, new_container, syscalls
from containerkit import spec as oci

DENIED = "Operation not permitted"
ALLOWED = "No such device or address"     # major 42 has no driver: the open got through

# open d0 and d1 (char 42:0, 42:1) read-write, over and over; "<node> <result>" lines
PROBE = ("mknod /dev/d0 c 42 0; mknod /dev/d1 c 42 1; "
         "while :; do for n in d0 d1 null; do"
         " echo $n \"$( (exec 3<>/dev/$n && echo ok) 2>&1)\"; done > /dev/shm/r.new;"
         " mv /dev/shm/r.new /dev/shm/r; sleep 0.05; done")


def _verdicts(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        node, _, msg = line.partition(" ")
        out[node] = ("ok" if msg == "ok" else DENIED if DENIED in msg
                     else ALLOWED if ALLOWED in msg else msg)
    return out


def test_device_rules_enforced_and_replaced_by_update(tmp_path: Any) -> None:
    b = bundle(str(tmp_path / "b"), PROBE, {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 42, "minor": 1, "access": "rw"}]},
        edit=lambda cfg: add_caps(cfg, "CAP_MKNOD"))
    config = Bundle(b, id="dev1", root=str(tmp_path / "state"))
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        got = poll(lambda: _verdicts(inside(c.pid, "r")), lambda v: len(v) == 3, "probe")
        # root with CAP_MKNOD made the node, but cannot open it
        assert got == {"d0": DENIED, "d1": ALLOWED, "null": "ok"}
        c.update(oci.Resources(devices=[
            oci.DeviceCgroup(allow=False, access="rwm"),
            oci.DeviceCgroup(allow=True, type="c", major=42, minor=0, access="rw")]))
        got = poll(lambda: _verdicts(inside(c.pid, "r")), lambda v: v.get("d0") == ALLOWED,
                   "probe after update")
        assert got["d1"] == DENIED and got["null"] == "ok"
        fd = os.open(c.cgroup_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert len(syscalls.bpf_prog_query(fd, syscalls.BPF_CGROUP_DEVICE)) == 1
        finally:
            os.close(fd)


KMSG_NODE = {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600,
             "uid": 0, "gid": 0}
# write-only (reading /dev/kmsg needs CAP_SYSLOG); then the default devices, read-write
KMSG_PROBE = ("echo kmsg \"$( (echo '<7>containerkit vm test' >/dev/kmsg && echo ok) 2>&1)\"; "
              "for n in null zero full random urandom ptmx; do"
              " echo $n \"$( (exec 3<>/dev/$n && echo ok) 2>&1)\"; done")


def test_a_listed_node_needs_an_allow_rule(tmp_path: Any) -> None:
    """runc's case: deny all and /dev/kmsg in linux.devices: the node is there, writing it
    is EPERM; with an allow rule it is written. runc's default devices open in both."""
    for cid, extra, want in (("kmsg1", [], DENIED), ("kmsg2", [
            {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}], "ok")):
        b = bundle(str(tmp_path / cid), KMSG_PROBE,
                   {"devices": [{"allow": False, "access": "rwm"}, *extra]},
                   edit=lambda cfg: cfg["linux"].setdefault("devices", []).append(
                       dict(KMSG_NODE)))
        config = Bundle(b, id=cid, root=str(tmp_path / "state"))
        out = tmp_path / f"{cid}.out"
        with open(out, "w+") as f, new_container(config, config.graph_driver(),
                                                 NativeDriver()) as c:
            c.stdout = f
            c.stderr = f
            c.create()
            c.start()
            assert c.wait(timeout=60) == 0
        got = _verdicts(out.read_text())
        assert got == {"kmsg": want, **{n: "ok" for n in ("null", "zero", "full", "random",
                                                          "urandom", "ptmx")}}, got


def test_hugetlb_limit(tmp_path: Any) -> None:
    with open("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "w") as f:
        f.write("4")                       # the VM's own pool; gone at power-off
    script = ("fallocate -l 2097152 /mnt/a && echo a ok || echo a failed; "
              "fallocate -l 2097152 /mnt/b && echo b ok || echo b failed; exec sleep 1000")

    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/mnt", "type": "hugetlbfs", "source": "none",
                              "options": ["pagesize=2M"]})
    b = bundle(str(tmp_path / "b"), script,
               {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}]}, edit)
    config = Bundle(b, id="huge1", root=str(tmp_path / "state"))
    out = tmp_path / "out"
    with open(out, "w+") as f, new_container(config, config.graph_driver(),
                                             NativeDriver()) as c:
        c.stdout = f
        c.stderr = f
        c.create()
        assert read(os.path.join(c.cgroup_path, "hugetlb.2MB.max")) == f"{2 << 20}\n"
        rsvd = os.path.join(c.cgroup_path, "hugetlb.2MB.rsvd.max")
        if os.path.exists(rsvd):                    # 5.7+: reservations limited too
            assert read(rsvd) == f"{2 << 20}\n"
        c.start()
        poll(lambda: out.read_text(), lambda t: "b " in t, "the second fallocate")
        events = kv(read(os.path.join(c.cgroup_path, "hugetlb.2MB.events")))
        stats = c.stats()["hugetlb"]["2MB"]
        c.signal(9)
        c.wait(timeout=60)
    text = out.read_text()
    assert "a ok" in text and "b failed" in text, text     # one page allowed, not two
    assert events["max"] >= 1 and stats["failcnt"] >= 1, (events, stats)


def test_delete_removes_a_frozen_container(tmp_path: Any) -> None:
    b = bundle(str(tmp_path / "b"), "sleep 1000 & sleep 1000 & wait", {"pids": {"limit": 8}})
    config = Bundle(b, id="frz1", root=str(tmp_path / "state"))
    c = new_container(config, config.graph_driver(), NativeDriver())
    try:
        c.create()
        c.start()
        cg = c.cgroup_path
        poll(lambda: read(f"{cg}/cgroup.procs").split(), lambda p: len(p) == 3, "3 processes")
        pids = [int(p) for p in read(f"{cg}/cgroup.procs").split()]
        c.pause()
    finally:
        c.delete(force=True)
    assert not os.path.exists(cg)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), pid
