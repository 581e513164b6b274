"""The library end to end: real containers, checked from inside."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from ckhelpers import COUNTER, advances, counter, sh
from ckhelpers import run_container as run
from conftest import _children

from containerkit import (
    BindGraphDriver,
    Bundle,
    ContainerExists,
    ContainerNotFound,
    InvalidState,
    NativeDriver,
    OverlayGraphDriver,
    SetupError,
    SpecError,
    UnsupportedError,
    load_container,
    new_container,
)

pytestmark = pytest.mark.usefixtures("leak_check")


def test_readme_shape_runs(make_bundle: Callable[..., str], state_root: str) -> None:
    bundle = make_bundle(["/bin/true"])
    config = Bundle(bundle, id="demo", root=state_root)
    graph = BindGraphDriver(config.rootfs())
    with new_container(config, graph, NativeDriver()) as c:
        c.create()
        assert c.status == "created"
        c.start()
        assert c.wait() == 0
        assert c.status == "stopped"
    assert not os.path.exists(os.path.join(state_root, "demo"))


def test_pid_one_hostname_uid_cwd_env(make_bundle: Callable[..., str], state_root: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["hostname"] = "ck-host"
        cfg["process"]["cwd"] = "/tmp"
        cfg["process"]["env"].append("GREETING=hi there")
        cfg["process"]["user"] = {"uid": 65534, "gid": 65534, "additionalGids": [5]}

    bundle = make_bundle(sh("""
        echo pid=$$
        echo host=$(hostname)
        echo cwd=$(pwd)
        echo env=$GREETING
        echo ids=$(id -u):$(id -g):$(id -G)
        grep -E '^(NoNewPrivs|CapEff|CapBnd|CapPrm)' /proc/self/status
        """), edit)
    status, out = run(bundle, state_root)
    assert status == 0, out
    assert "pid=1\n" in out
    assert "host=ck-host\n" in out
    assert "cwd=/tmp\n" in out
    assert "env=hi there\n" in out
    assert "ids=65534:65534:65534 5\n" in out
    assert "NoNewPrivs:\t1" in out
    # non-root user: no effective caps, bounding set from the spec (AUDIT_WRITE, KILL,
    # NET_BIND_SERVICE = bits 29, 5, 10)
    assert "CapEff:\t0000000000000000" in out
    assert "CapBnd:\t0000000020000420" in out


def test_root_capabilities_are_the_spec_sets(make_bundle: Callable[..., str],
                                             state_root: str) -> None:
    bundle = make_bundle(sh("""
        grep -E '^Cap(Eff|Bnd|Prm)' /proc/self/status
        mknod /tmp/x c 1 3 2>&1 || echo mknod-refused
        """))
    status, out = run(bundle, state_root)
    assert "CapEff:\t0000000020000420" in out
    assert "CapBnd:\t0000000020000420" in out
    assert "mknod-refused" in out


def test_mounts_devices_and_readonly_root(make_bundle: Callable[..., str],
                                          state_root: str) -> None:
    bundle = make_bundle(sh("""
        cat /proc/self/mountinfo | awk '{print $5, $6}'
        ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty
        for f in /dev/fd /dev/stdin /dev/ptmx; do readlink $f; done
        head -c 4 /dev/zero | od -An -tx1
        touch /newfile 2>/dev/null && echo root-writable || echo root-readonly
        echo x > /proc/sys/kernel/hostname 2>/dev/null && echo procsys-writable || echo procsys-ro
        cat /proc/kcore 2>/dev/null | head -c1 | wc -c
        ls /proc/acpi | wc -l
        """))
    status, out = run(bundle, state_root)
    assert status == 0, out
    lines = out.splitlines()
    for mnt in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"):
        assert any(line.split()[0] == mnt for line in lines if " " in line), (mnt, out)
    assert "/ ro," in out
    for dev in ("null", "zero", "full", "random", "urandom", "tty"):
        assert any(line.startswith("crw-rw-rw-") and line.endswith(f"/dev/{dev}")
                   for line in lines), (dev, out)
    assert "/proc/self/fd\n/proc/self/fd/0\npts/ptmx\n" in out
    assert " 00 00 00 00" in out
    assert "root-readonly" in out
    assert "procsys-ro" in out
    assert lines[-2:] == ["0", "0"]     # /proc/kcore masked by /dev/null, /proc/acpi empty


def test_namespaces_are_new(make_bundle: Callable[..., str], state_root: str) -> None:
    bundle = make_bundle(sh("""
        for ns in pid mnt uts ipc net; do echo $ns=$(readlink /proc/self/ns/$ns); done
        ip -o link show 2>/dev/null | awk '{print $2, $9}' || cat /sys/class/net/lo/operstate
        cat /sys/class/net/lo/flags
        ls /sys/class/net
        cat /proc/self/cgroup
        """))
    status, out = run(bundle, state_root)
    assert status == 0, out
    for ns in ("pid", "mnt", "uts", "ipc", "net"):
        mine = os.readlink(f"/proc/self/ns/{ns}")
        assert f"{ns}={mine}" not in out
    assert "lo\n" in out and "eth0" not in out
    flags = int([line for line in out.splitlines() if line.startswith("0x")][0], 16)
    assert flags & 1, "lo is up"
    assert "0::/containerkit/t1" in out


def test_cgroup_namespace_root_is_the_container_cgroup(make_bundle: Callable[..., str],
                                                       state_root: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "cgroup"})

    status, out = run(make_bundle(["cat", "/proc/self/cgroup"], edit), state_root)
    assert status == 0
    assert "0::/\n" in out


@pytest.mark.parametrize("script,expected", [
    ("exit 0", 0), ("exit 3", 3), ("exit 255", 255), ("kill -TERM $$", 0),
])
def test_exit_codes(make_bundle: Callable[..., str], state_root: str, script: str,
                    expected: int) -> None:
    # pid 1 ignores signals it has no handler for, even from itself: "kill" just returns
    status, _ = run(make_bundle(sh(script)), state_root)
    assert status == expected


def test_stdin_is_passed(make_bundle: Callable[..., str], state_root: str) -> None:
    r, w = os.pipe()
    os.write(w, b"from the host\n")
    os.close(w)
    try:
        status, out = run(make_bundle(["cat"]), state_root, stdin=r)
    finally:
        os.close(r)
    assert status == 0
    assert out == "from the host\n"


def test_no_host_fd_crosses_over(make_bundle: Callable[..., str], state_root: str) -> None:
    leaked = os.open("/etc/hostname", os.O_RDONLY)   # inheritable-by-default would leak
    os.set_inheritable(leaked, True)
    try:
        status, out = run(make_bundle(sh("ls /proc/self/fd")), state_root)
    finally:
        os.close(leaked)
    assert status == 0
    assert sorted(out.split()) == ["0", "1", "2", "3"]   # 3 is ls's own directory fd


def test_signal_and_status(make_bundle: Callable[..., str], state_root: str) -> None:
    bundle = make_bundle(sh("trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done"))
    config = Bundle(bundle, id="sig", root=state_root)
    r, w = os.pipe()
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.stdout = w
        c.create()
        os.close(w)
        assert c.status == "created"
        assert c.state()["pid"] == c.pid > 0
        c.start()
        assert c.status == "running"
        with pytest.raises(InvalidState, match="running"):
            c.delete()
        with pytest.raises(InvalidState, match="running, not created"):
            c.start()
        assert os.read(r, 6) == b"ready\n"     # the trap is set: pid 1 now handles TERM
        os.close(r)
        c.signal(signal.SIGTERM)
        assert c.wait(timeout=10) == 7
        assert c.status == "stopped"


def test_delete_force_kills_running(make_bundle: Callable[..., str], state_root: str) -> None:
    config = Bundle(make_bundle(["sleep", "1000"]), id="force", root=state_root)
    c = new_container(config, config.graph_driver(), NativeDriver())
    c.create()
    c.start()
    cgroup = c.cgroup_path
    c.delete(force=True)
    assert c.init is not None and c.init.returncode == 128 + signal.SIGKILL   # killed, reaped
    assert not os.path.exists(cgroup)
    assert not os.path.exists(os.path.join(state_root, "force"))


def test_delete_of_created_container(make_bundle: Callable[..., str], state_root: str) -> None:
    config = Bundle(make_bundle(["true"]), id="created", root=state_root)
    c = new_container(config, config.graph_driver(), NativeDriver())
    c.create()
    c.delete()                       # no force needed: the init never ran the program
    assert c.init is not None and c.init.returncode == 128 + signal.SIGKILL
    assert not os.path.exists(os.path.join(state_root, "created"))


HELPER = """
import sys
from types import SimpleNamespace
from containerkit import NativeDriver, load_container
c = load_container(SimpleNamespace(id=sys.argv[2], root=sys.argv[1]), NativeDriver())
print(c.status, c.pid, flush=True)
getattr(c, sys.argv[3])()
print(c.status, flush=True)
"""


def test_create_and_start_from_two_processes(make_bundle: Callable[..., str],
                                             state_root: str, tmp_path: Any) -> None:
    marker = tmp_path / "started"
    bundle = make_bundle(sh("echo started > /out/started"), lambda cfg: cfg["mounts"].append(
        {"destination": "/out", "type": "bind", "source": str(tmp_path), "options": ["rbind"]}))
    config = Bundle(bundle, id="twoproc", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        pid = c.pid
        out = subprocess.run([sys.executable, "-c", HELPER, state_root, "twoproc", "start"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        first, second = out.stdout.splitlines()
        assert first == f"created {pid}"
        assert second in ("running", "stopped")
        assert c.wait(timeout=10) == 0
        assert marker.read_text() == "started\n"


def test_load_container_from_another_process(make_bundle: Callable[..., str],
                                             state_root: str) -> None:
    config = Bundle(make_bundle(["sleep", "1000"]), id="loaded", root=state_root)
    c = new_container(config, config.graph_driver(), NativeDriver())
    c.create()
    c.start()
    out = subprocess.run([sys.executable, "-c", HELPER, state_root, "loaded", "delete"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "running" in out.stderr      # refused without force
    script = HELPER.replace("getattr(c, sys.argv[3])()", "c.delete(force=True)")
    out = subprocess.run([sys.executable, "-c", script, state_root, "loaded", "x"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"running {c.pid}"
    assert c.wait(timeout=10) == 128 + signal.SIGKILL
    assert not os.path.exists(os.path.join(state_root, "loaded"))


def test_recycled_pid_is_not_the_container(make_bundle: Callable[..., str],
                                           state_root: str) -> None:
    config = Bundle(make_bundle(["true"]), id="recycled", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        path = os.path.join(state_root, "recycled", "state.json")
        state = json.load(open(path))
        state["start_time"] += 1            # as if the pid now belonged to another process
        with open(path, "w") as f:
            json.dump(state, f)
        other = load_container(config, NativeDriver())
        assert other.status == "stopped"
        assert other.init is None


def test_overlay_driver_isolates_containers(rootfs: str, make_bundle: Callable[..., str],
                                            state_root: str, tmp_path: Any) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = False

    bundle = make_bundle(sh("echo $0 > /mine; cat /mine; ls /theirs 2>&1 | head -1"), edit)
    graph = OverlayGraphDriver([rootfs], root=str(tmp_path / "ck-test-overlay"))
    outputs = []
    for cid in ("ova", "ovb"):
        config = Bundle(bundle, id=cid, root=state_root)
        cfg = json.load(open(os.path.join(bundle, "config.json")))
        cfg["process"]["args"] = ["/bin/sh", "-c", "echo $0 > /mine; cat /mine; ls /ova-was-here "
                                  "2>/dev/null || echo clean; touch /ova-was-here", cid]
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(cfg, f)
        with open(tmp_path / f"{cid}.out", "w+") as out:
            with new_container(config, graph, NativeDriver()) as c:
                c.stdout = out
                c.create()
                c.start()
                assert c.wait(timeout=30) == 0
            out.seek(0)
            outputs.append(out.read())
    assert outputs == ["ova\nclean\n", "ovb\nclean\n"]
    assert not os.path.exists(os.path.join(rootfs, "mine"))          # lower layer untouched
    assert not os.listdir(tmp_path / "ck-test-overlay")             # upper dirs removed


# -- bad input: a clear error and nothing left behind ---------------------------------

def test_missing_executable(make_bundle: Callable[..., str], state_root: str) -> None:
    config = Bundle(make_bundle(["/no/such/program"]), id="noexec", root=state_root)
    c = new_container(config, config.graph_driver(), NativeDriver())
    with pytest.raises(SetupError, match="'/no/such/program': No such file or directory"):
        c.create()
    c.delete()


def test_missing_executable_in_path(make_bundle: Callable[..., str], state_root: str) -> None:
    config = Bundle(make_bundle(["nosuchprogram"]), id="noexec2", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        with pytest.raises(SetupError, match="nosuchprogram"):
            c.create()


def test_not_executable(make_bundle: Callable[..., str], state_root: str) -> None:
    config = Bundle(make_bundle(["/etc/passwd"]), id="noperm", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        with pytest.raises(SetupError, match="Permission denied"):
            c.create()


def test_duplicate_id(make_bundle: Callable[..., str], state_root: str) -> None:
    config = Bundle(make_bundle(["true"]), id="dup", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()):
        with pytest.raises(ContainerExists, match="'dup' already exists"):
            new_container(config, config.graph_driver(), NativeDriver())


@pytest.mark.parametrize("cid", ["a/b", "..", "../x", "", "-x"])
def test_bad_ids(make_bundle: Callable[..., str], state_root: str, cid: str) -> None:
    from containerkit import ConfigError
    with pytest.raises(ConfigError, match="invalid container id"):
        Bundle(make_bundle(["true"]), id=cid, root=state_root)


def test_unknown_id(state_root: str) -> None:
    from types import SimpleNamespace
    with pytest.raises(ContainerNotFound, match="'ghost' does not exist"):
        load_container(SimpleNamespace(id="ghost", root=state_root), NativeDriver())


def test_missing_bundle_and_config(tmp_path: Any, state_root: str) -> None:
    from containerkit import ConfigError
    with pytest.raises(ConfigError, match="no such directory"):
        Bundle(tmp_path / "nope", id="x", root=state_root).rootfs()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="config.json"):
        Bundle(tmp_path / "empty", id="x", root=state_root).rootfs()


@pytest.mark.parametrize("edit,match", [
    (lambda c: c["linux"]["resources"].update(memory={"limit": 1 << 20}),
     "linux.resources.memory: the memory controller is not available"),
    (lambda c: c["linux"]["resources"].update(pids={"limit": 10}),
     "linux.resources.pids: the pids controller is not available"),
    (lambda c: c["linux"]["resources"].update(cpu={"realtimeRuntime": 1000}),
     "linux.resources.cpu.realtimeRuntime"),
    (lambda c: c["process"].update(terminal=True, consoleSize={"height": 1 << 16, "width": 80}),
     "process.consoleSize"),
    (lambda c: c["linux"]["namespaces"].append({"type": "user"}), "user namespace needs"),
    (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_BOGUS"), "CAP_BOGUS"),
    (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}),
     "RLIMIT_BOGUS"),
    (lambda c: c["linux"].update(devices=[{"path": "/etc/x", "type": "c", "major": 1,
                                          "minor": 3}]), "not under /dev"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "bind",
                                   "source": "/no/such/dir"}), "mounts"),
    (lambda c: c.update(hooks={"createContainer": [{"path": "rel/hook"}]}), "absolute"),
])
def test_refused_specs_leave_nothing(make_bundle: Callable[..., str], state_root: str,
                                     edit: Callable[[dict[str, Any]], None], match: str) -> None:
    from containerkit import ContainerkitError
    config = Bundle(make_bundle(["true"], edit), id="refused", root=state_root)
    with pytest.raises((UnsupportedError, SpecError, ContainerkitError), match=match) as info:
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()
    assert "\n" not in str(info.value)


def test_mount_failure_names_the_step(make_bundle: Callable[..., str], state_root: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/mnt", "type": "nosuchfs", "source": "x"})

    config = Bundle(make_bundle(["true"], edit), id="badmount", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        with pytest.raises(SetupError, match=r"mount nosuchfs on /mnt: No such device"):
            c.create()


def test_failed_write_while_the_init_sets_up_kills_it(make_bundle: Callable[..., str],
                                                       state_root: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """create writes the state dir's config.json while the init makes its mounts (the
    driver's ``meanwhile``): when that fails, the init (already running) is killed and
    reaped, its cgroup removed; delete leaves nothing (leak_check)."""
    config = Bundle(make_bundle(["true"]), id="meanwhile", root=state_root)
    seen: list[int] = []

    def failing_save(spec: Any) -> None:
        seen.extend(_children())
        raise OSError(28, "No space left on device")

    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        monkeypatch.setattr(c, "_save_spec", failing_save)
        with pytest.raises(OSError, match="No space left"):
            c.create()
        assert seen, "the init was not running yet when config.json was written"
        assert not _children()                  # killed and reaped
        assert not os.path.exists(c.driver.cgroup_for(c).path)


def test_driver_that_ignores_meanwhile_still_gets_config_saved(
        make_bundle: Callable[..., str], state_root: str) -> None:
    """A driver written to the older protocol (create without calling ``meanwhile``):
    create saves the state dir's config.json itself, so another process can load it."""

    class OlderDriver(NativeDriver):
        def create(self, container: Any, meanwhile: Any = None) -> Any:
            return super().create(container)

    config = Bundle(make_bundle(["true"]), id="older-driver", root=state_root)
    with new_container(config, config.graph_driver(), OlderDriver()) as c:
        c.create()
        assert os.path.isfile(os.path.join(c.statedir.path, "config.json"))
        loaded = load_container(Bundle(config.path, id="older-driver", root=state_root),
                                NativeDriver())
        assert loaded.spec.process is not None and loaded.spec.process.args == ["true"]


def test_state_root_may_be_a_path_object(make_bundle: Callable[..., str],
                                         state_root: str) -> None:
    from pathlib import Path

    config = Bundle(make_bundle(["true"]), id="pathroot", root=Path(state_root))
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        assert c.wait() == 0
        assert c.statedir.path == os.path.join(state_root, "pathroot")




def _spec_bad_docs() -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    for base in (os.path.join(here, "..", "..", "..", "shared"), "/work/shared"):
        # shared/ lies beside the checkout (CI's clone and /work/main alike)
        path = os.path.join(base, "oci-runtime-spec", "schema", "test", "config", "bad")
        if os.path.isdir(path):
            return sorted(os.path.join(path, n) for n in os.listdir(path))
    return []


@pytest.mark.parametrize("doc", _spec_bad_docs(), ids=os.path.basename)
def test_spec_bad_documents_leave_nothing(doc: str, tmp_path: Any, state_root: str) -> None:
    bundle = tmp_path / "bad"
    bundle.mkdir()
    (bundle / "rootfs").mkdir()
    with open(doc, "rb") as f:
        (bundle / "config.json").write_bytes(f.read())
    config = Bundle(bundle, id="bad", root=state_root)
    with pytest.raises(SpecError) as info:
        new_container(config, BindGraphDriver(bundle / "rootfs"), NativeDriver())
    assert "config.json" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.usefixtures("busy_threads")
def test_create_is_safe_while_other_threads_run(make_bundle: Callable[..., str],
                                                state_root: str) -> None:
    """The init runs C only (no lock, no allocation, no Python) after the clone: a thread
    that holds the GIL and one that allocates cannot deadlock it."""
    bundle = make_bundle(["true"])
    for i in range(4):
        status, _ = run(bundle, state_root, cid=f"thr{i}")
        assert status == 0


def test_sys_fs_cgroup_is_the_container_cgroup_read_only(make_bundle: Callable[..., str],
                                                         state_root: str) -> None:
    status, out = run(make_bundle(sh("""
        ls /sys/fs/cgroup | grep -c '^containerkit$' || true
        head -1 /sys/fs/cgroup/cgroup.procs
        mkdir /sys/fs/cgroup/sub 2>/dev/null && echo writable || echo read-only
        grep ' /sys/fs/cgroup ' /proc/self/mountinfo | cut -d' ' -f6
        """)), state_root)
    lines = out.splitlines()
    assert lines[0] == "0"              # not the host hierarchy: no containerkit/ in it
    assert lines[1] == "1"              # its own cgroup: only the container's pid 1
    assert lines[2] == "read-only"
    assert lines[3].startswith("ro,nosuid,nodev,noexec")


def test_abandoned_create_is_removed_with_its_cgroup(make_bundle: Callable[..., str],
                                                     state_root: str) -> None:
    """A create killed after the clone (state.json never written): delete --force finds the
    cgroup through the link made before the clone, kills the init and removes both."""
    from containerkit.container import remove_abandoned

    config = Bundle(make_bundle(["true"]), id="abandoned", root=state_root)
    c = new_container(config, config.graph_driver(), NativeDriver())
    c.create()
    os.unlink(os.path.join(state_root, "abandoned", "state.json"))
    cgroup = c.cgroup_path
    assert os.path.isdir(cgroup)
    assert remove_abandoned(state_root, "abandoned") is False
    assert not os.path.exists(cgroup)
    assert not os.path.exists(os.path.join(state_root, "abandoned"))
    assert c.wait(timeout=10) == 128 + signal.SIGKILL


def test_sysctl_in_the_containers_own_namespaces(make_bundle: Callable[..., str],
                                                 state_root: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "12345678",
                                  "fs.mqueue.msg_max": "42"}

    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_forward = f.read()
    with open("/proc/sys/kernel/shmmax") as f:
        host_shmmax = f.read()
    status, out = run(make_bundle(sh("""
        cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax /proc/sys/fs/mqueue/msg_max
        """), edit), state_root)
    assert status == 0, out
    assert out.split() == ["1", "12345678", "42"]
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host_forward
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read() == host_shmmax


@pytest.mark.parametrize("sysctl,match", [
    ({"vm.swappiness": "10"}, "'vm.swappiness': not in a namespace of the container's own"),
    ({"kernel.hostname": "x"}, "use the hostname field"),
    ({"net.ipv4.../x": "1"}, "not a sysctl name"),
])
def test_sysctl_refused(make_bundle: Callable[..., str], state_root: str,
                        sysctl: dict[str, str], match: str) -> None:
    from containerkit import ContainerkitError
    config = Bundle(make_bundle(["true"], lambda c: c["linux"].update(sysctl=sysctl)),
                    id="sysctl", root=state_root)
    with pytest.raises(ContainerkitError, match=match):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()


def test_net_sysctl_needs_a_new_network_namespace(make_bundle: Callable[..., str],
                                                  state_root: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "network"]
        cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}

    config = Bundle(make_bundle(["true"], edit), id="netsysctl", root=state_root)
    with pytest.raises(UnsupportedError, match="needs a new network namespace"):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()


def test_rlimits_applied_and_raising_checked(make_bundle: Callable[..., str],
                                             state_root: str) -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def edit(limit: int) -> Callable[[dict[str, Any]], None]:
        return lambda c: c["process"].update(
            rlimits=[{"type": "RLIMIT_NOFILE", "soft": 100, "hard": limit}])

    status, out = run(make_bundle(sh("ulimit -Sn; ulimit -Hn"), edit(200)), state_root)
    assert out.split() == ["100", "200"]
    with open("/proc/self/status") as f:
        have_cap = any(line.startswith("CapEff:") and int(line.split()[1], 16) >> 24 & 1
                       for line in f)
    config = Bundle(make_bundle(["true"], edit(hard + 1)), id="rlim", root=state_root)
    if have_cap:
        run(config.bundle, state_root, cid="rlim")
        return
    with pytest.raises(UnsupportedError, match=r"process.rlimits\[0\]: RLIMIT_NOFILE hard limit"):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()


def _shares_my_mm(pid: int) -> bool:
    """A new mapping made here shows in the other process's maps only if the mm is shared."""
    import mmap

    probe = mmap.mmap(-1, 4096)
    try:
        with open("/proc/self/maps") as f:
            mine = {line.split()[0] for line in f}
        with open(f"/proc/{pid}/maps") as f:
            theirs = {line.split()[0] for line in f}
        return mine == theirs
    finally:
        probe.close()


@pytest.mark.parametrize("share", [True, False])
def test_init_shares_memory_only_when_allowed(make_bundle: Callable[..., str],
                                              state_root: str, share: bool) -> None:
    import platform

    config = Bundle(make_bundle(["true"]), id="mm", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver(share_memory=share)) as c:
        c.create()
        expected = share and platform.machine() == "x86_64"
        assert (c._child_memory is not None) is expected    # how the init was spawned
        # either way, once created it runs ck-init (REEXEC): nothing of this process
        assert not _shares_my_mm(c.pid)
        assert os.readlink(f"/proc/{c.pid}/exe").startswith("/memfd:containerkit-init")
        c.start()
        assert c.wait(timeout=10) == 0


def test_memory_limited_containers_never_share_the_mm() -> None:
    from containerkit import spec as oci
    from containerkit.native.driver import _memory_limited

    def linux(resources: dict[str, Any]) -> Any:
        return oci.loads(json.dumps({"ociVersion": "1.3.0", "root": {"path": "r"},
                                     "linux": {"resources": resources}})).linux

    assert _memory_limited(linux({"memory": {"limit": 1 << 20}}))
    assert _memory_limited(linux({"unified": {"memory.high": "1M"}}))
    assert not _memory_limited(linux({"pids": {"limit": 5}}))
    assert not _memory_limited(None)


def _seccomp(cfg: dict[str, Any], **seccomp: Any) -> None:
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", **seccomp}


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_denies_from_inside(make_bundle: Callable[..., str], state_root: str,
                                    nnp: bool) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["noNewPrivileges"] = nnp
        _seccomp(cfg, architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                 syscalls=[
                     {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1},
                     {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_KILL"},
                     # personality(0xffffffff) only queries: deny just the query
                     {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                      "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
                 ])

    status, out = run(make_bundle(sh("""
        mkdir /tmp/x 2>&1 || true
        grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status
        echo done
        """), edit), state_root)
    assert status == 0, out
    assert "Operation not permitted" in out
    assert "Seccomp:\t2" in out                     # filter mode
    assert f"NoNewPrivs:\t{int(nnp)}" in out
    assert out.endswith("done\n")


def test_seccomp_default_errno_blocks_everything_else(make_bundle: Callable[..., str],
                                                      state_root: str) -> None:
    """An allow-list profile: the container runs, and a syscall not on the list fails."""
    allowed = ["execve", "read", "write", "exit_group", "brk", "arch_prctl", "mmap",
               "munmap", "rt_sigaction", "rt_sigprocmask", "umask", "getpid", "getuid",
               "open", "openat", "close", "fstat", "newfstatat", "stat", "ioctl",
               "set_tid_address", "getppid", "uname", "getcwd", "prlimit64", "readlink",
               "mprotect", "set_robust_list", "getrandom", "rseq", "prctl", "exit"]

    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}

    status, out = run(make_bundle(["/bin/mkdir", "/tmp/x"], edit), state_root)
    assert status == 1, out
    assert "Function not implemented" in out         # ENOSYS, the defaultErrnoRet


@pytest.mark.parametrize("seccomp,match", [
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NOPE"]},
     "architectures"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "SCMP_ACT_NOTIFY"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"],
                                                       "action": "SCMP_ACT_NOTIFY"}]},
     "listenerPath"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/no/such.sock",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "listenerPath: /no/such.sock: no such file or directory"),
    ({"defaultAction": "SCMP_ACT_BOGUS"}, "defaultAction"),
])
def test_seccomp_refusals(make_bundle: Callable[..., str], state_root: str,
                          seccomp: dict[str, Any], match: str) -> None:
    from containerkit import ContainerkitError
    config = Bundle(make_bundle(["true"], lambda c: c["linux"].update(seccomp=seccomp)),
                    id="seccomp", root=state_root)
    with pytest.raises(ContainerkitError, match=match):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()


# -- pause / resume / update / stats ------------------------------------------------------



def test_pause_and_resume(make_bundle: Callable[..., str], state_root: str) -> None:
    config = Bundle(make_bundle(sh(COUNTER)), id="pz", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        with pytest.raises(InvalidState, match="it is created, not running"):
            c.pause()
        c.start()
        assert advances(c.pid)
        with pytest.raises(InvalidState, match="it is running, not paused"):
            c.resume()
        c.pause()
        assert c.status == "paused"
        assert c.state()["status"] == "paused"
        assert not advances(c.pid)
        with open(os.path.join(c.cgroup_path, "cgroup.events")) as f:
            assert "frozen 1" in f.read().split("\n")
        with pytest.raises(InvalidState, match="it is paused, not running"):
            c.pause()
        with pytest.raises(InvalidState, match="paused"):
            c.delete()
        again = load_container(config, NativeDriver())
        assert again.status == "paused"
        c.resume()
        assert c.status == "running"
        assert advances(c.pid)
        stats = c.stats()
        assert stats["pids"]["current"] >= 1 and "cpu" in stats and "memory" in stats


def test_delete_force_of_paused_container(make_bundle: Callable[..., str],
                                          state_root: str) -> None:
    config = Bundle(make_bundle(sh(f"sleep 1000 & {COUNTER}")), id="pzdel", root=state_root)
    c = new_container(config, config.graph_driver(), NativeDriver())
    c.create()
    c.start()
    counter(c.pid)
    cgroup = c.cgroup_path
    c.pause()
    pid = c.pid
    c.delete(force=True)
    assert not os.path.exists(cgroup)
    assert not os.path.exists(os.path.join(state_root, "pzdel"))
    assert not os.path.exists(f"/proc/{pid}")           # killed and reaped, not left frozen


@pytest.mark.skipif(not os.path.isdir("/sys/fs/cgroup/unified"),
                    reason="the hybrid host's refusal")
def test_update_refused_without_controllers(make_bundle: Callable[..., str],
                                            state_root: str) -> None:
    from containerkit import spec as oci

    config = Bundle(make_bundle(["sleep", "1000"]), id="upd", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        with pytest.raises(UnsupportedError, match="memory controller is not available"):
            c.update(oci.Resources(memory=oci.Memory(limit=64 << 20)))
        with open(os.path.join(c.path, "config.json")) as f:
            assert "memory" not in json.load(f)["linux"].get("resources", {})
        assert c.status == "running"


def test_personality_scheduler_and_io_priority(make_bundle: Callable[..., str],
                                               state_root: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["personality"] = {"domain": "LINUX32"}
        cfg["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
        cfg["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}

    status, out = run(make_bundle(sh("""
        uname -m
        cut -d' ' -f19,41 /proc/self/stat
        ionice
        """), edit), state_root)
    assert status == 0, out
    lines = out.split("\n")
    assert lines[0] in ("i686", "i386")                 # PER_LINUX32
    nice, policy = lines[1].split()
    assert (nice, policy) == ("7", "3")                 # SCHED_BATCH, nice 7
    assert lines[2].startswith("idle"), lines[2]        # IOPRIO_CLASS_IDLE


@pytest.mark.parametrize("edit,match", [
    (lambda c: c["process"].update(apparmorProfile="x"), "apparmor is not enabled"),
    (lambda c: c["process"].update(selinuxLabel="system_u:system_r:x"),
     "selinux is not enabled"),
    (lambda c: c["process"].update(scheduler={"policy": "SCHED_ISO"}), "SCHED_ISO"),
    (lambda c: c["process"].update(ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 9}),
     "ioPriority.priority"),
    (lambda c: c["linux"].update(personality={"domain": "LINUX", "flags": ["X"]}),
     "personality.flags"),
])
def test_identity_refusals(make_bundle: Callable[..., str], state_root: str,
                           edit: Callable[[dict[str, Any]], None], match: str) -> None:
    from containerkit import ContainerkitError
    if "apparmor" in match and os.path.exists("/sys/kernel/security/apparmor"):
        pytest.skip("AppArmor is enabled here")
    config = Bundle(make_bundle(["true"], edit), id="ident", root=state_root)
    with pytest.raises(ContainerkitError, match=match):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()


def _hook(tmp_path: Any, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_poststart_and_poststop_hooks_get_the_state(make_bundle: Callable[..., str],
                                                    state_root: str, tmp_path: Any) -> None:
    post = _hook(tmp_path, "post", 'cat > "$1"; echo >> "$1"; echo "$HOOKENV" >> "$1"\n')

    def edit(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = {
            "poststart": [{"path": post, "args": ["post", str(tmp_path / "start.json")],
                           "env": ["HOOKENV=from-spec"], "timeout": 10}],
            "poststop": [{"path": post, "args": ["post", str(tmp_path / "stop.json")]}]}

    config = Bundle(make_bundle(["sleep", "1000"], edit), id="hooked", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        start_state, start_env = (tmp_path / "start.json").read_text().splitlines()
        assert json.loads(start_state)["status"] == "running"
        assert json.loads(start_state)["pid"] == c.pid
        assert start_env == "from-spec"
        assert not (tmp_path / "stop.json").exists()
    stop_state = json.loads((tmp_path / "stop.json").read_text().splitlines()[0])
    assert (stop_state["id"], stop_state["status"]) == ("hooked", "stopped")


def test_failing_poststart_stops_the_container(make_bundle: Callable[..., str],
                                              state_root: str, tmp_path: Any) -> None:
    from containerkit import ContainerkitError
    bad = _hook(tmp_path, "bad", "echo 'no network for you' >&2; exit 3\n")
    config = Bundle(make_bundle(["sleep", "1000"],
                                lambda c: c.update(hooks={"poststart": [{"path": bad}]})),
                    id="badhook", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        with pytest.raises(ContainerkitError,
                           match=r"hooks.poststart\[0\]: .*/bad: exited with status 3: no "
                                 "network for you"):
            c.start()
        assert c.wait(timeout=10) == 128 + signal.SIGKILL


def test_hook_timeout_and_failing_poststop(make_bundle: Callable[..., str], state_root: str,
                                           tmp_path: Any, caplog: Any) -> None:
    from containerkit import ContainerkitError
    slow = _hook(tmp_path, "slow", "sleep 5\n")
    fail = _hook(tmp_path, "fail", "exit 1\n")
    config = Bundle(make_bundle(["true"], lambda c: c.update(hooks={
        "poststart": [{"path": slow, "timeout": 1}], "poststop": [{"path": fail}]})),
        id="slowhook", root=state_root)
    c = new_container(config, config.graph_driver(), NativeDriver())
    try:
        c.create()
        with pytest.raises(ContainerkitError,
                           match=r"hooks.poststart\[0\]: .* timed out after 1s"):
            c.start()
    finally:
        with caplog.at_level("WARNING", logger="containerkit"):
            c.delete(force=True)                      # poststop fails: logged, deleted
    assert "hooks.poststop[0]" in caplog.text
    assert not os.path.exists(os.path.join(state_root, "slowhook"))


def test_hook_path_must_exist(make_bundle: Callable[..., str], state_root: str) -> None:
    config = Bundle(make_bundle(["true"], lambda c: c.update(
        hooks={"poststop": [{"path": "/no/such/hook"}]})), id="nohook", root=state_root)
    with pytest.raises(SpecError, match=r"hooks.poststop\[0\].path: /no/such/hook: not an"):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()


def test_every_masked_file_is_the_null_device(make_bundle: Callable[..., str],
                                              state_root: str) -> None:
    """Each masked file (the default list's that exist here) is a bind of /dev/null and
    each masked directory an empty read-only tmpfs, from inside: the first file and the
    ones after it (which reuse the /dev/null the init resolved once) alike."""
    from containerkit import spec as oci

    masked = oci.default_spec().linux.masked_paths  # type: ignore[union-attr]
    files = [p for p in masked if os.path.isfile(p)]
    dirs = [p for p in masked if os.path.isdir(p)]
    assert len(files) >= 2, masked
    bundle = make_bundle(sh(f"""
        for f in {' '.join(files)}; do echo "$f $(stat -c '%t:%T' $f)"; done
        for d in {' '.join(dirs)}; do echo "$d $(ls -A $d | wc -l)"; touch $d/x 2>&1; done; true
        """))
    status, out = run(bundle, state_root)
    assert status == 0, out
    for f in files:
        assert f"{f} 1:3\n" in out, (f, out)
    for d in dirs:
        assert f"{d} 0\n" in out and f"touch: {d}/x: Read-only file system" in out, (d, out)
