"""User namespaces: the mapping seen from inside, files made through it as seen from the
host, what the container's root still cannot do, refusals, and rootless runs by an
unprivileged user."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ckhelpers import run_container as run
from ckhelpers import sh

# podman's world (fixtures), for a run with --uidmap through conmon
from test_podman import IMAGE, Podman, pod, podman  # noqa: F401  (fixtures)

from containerkit import (
    Bundle,
    NativeDriver,
    SpecError,
    UnsupportedError,
    new_container,
)
from containerkit.busybox import make_rootfs

pytestmark = pytest.mark.usefixtures("leak_check")

HOST_BASE = 100000
MAP = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_MKNOD", "CAP_SYS_ADMIN",
            "CAP_SETUID", "CAP_SETGID", "CAP_SYS_CHROOT"]


@pytest.fixture(scope="module")
def open_dir() -> Iterator[str]:
    """A directory every user may traverse (pytest's tmp dirs are 0700 root): the
    container's root is an unprivileged host uid and resolves its rootfs path itself."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    path = tempfile.mkdtemp(prefix="ck-userns-")
    os.chmod(path, 0o755)
    rootfs = make_rootfs(os.path.join(path, "rootfs"))
    for d in ("data", "host", "mnt"):     # mount points: the mapped root cannot mkdir there
        os.mkdir(os.path.join(rootfs, d))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def userns_bundle(make_bundle: Callable[..., str], open_dir: str) -> Callable[..., str]:
    def make(args: list[str], edit: Callable[[dict[str, Any]], None] | None = None) -> str:
        def full(cfg: dict[str, Any]) -> None:
            cfg["root"]["path"] = os.path.join(open_dir, "rootfs")
            cfg["linux"]["namespaces"].append({"type": "user"})
            cfg["linux"]["uidMappings"] = MAP
            cfg["linux"]["gidMappings"] = MAP
            if edit is not None:
                edit(cfg)
        return make_bundle(args, full)
    return make


def test_root_inside_and_the_maps(userns_bundle: Callable[..., str], state_root: str) -> None:
    bundle = userns_bundle(sh("""
        echo ids=$(id -u):$(id -g)
        cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups
        readlink /proc/self/ns/user
        echo oom=$(cat /proc/self/oom_score_adj)
        """), lambda c: c["process"].update(oomScoreAdj=500))
    status, out = run(bundle, state_root, "userns-ids")
    assert status == 0, out
    assert "ids=0:0\n" in out
    assert " ".join(out.split()).count(f"0 {HOST_BASE} 65536") == 2, out
    assert "allow\n" in out                 # a privileged writer leaves setgroups alone
    assert "oom=500\n" in out               # written by the parent (host credentials)
    assert os.readlink("/proc/self/ns/user") not in out


def test_files_are_made_as_the_mapped_host_ids(userns_bundle: Callable[..., str],
                                               state_root: str, open_dir: str) -> None:
    shared = tempfile.mkdtemp(prefix="share-", dir=open_dir)
    os.chown(shared, HOST_BASE, HOST_BASE)

    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/data", "type": "bind", "source": shared,
                              "options": ["rbind", "rw"]})
        caps = cfg["process"]["capabilities"]
        for k in ("bounding", "effective", "permitted"):
            caps[k] = ["CAP_CHOWN"]

    bundle = userns_bundle(sh("touch /data/f; mkdir /data/d; chown 5:6 /data/d; "
                              "ls -ln /data"), edit)
    status, out = run(bundle, state_root, "userns-files")
    assert status == 0, out
    f = os.stat(os.path.join(shared, "f"))
    assert (f.st_uid, f.st_gid) == (HOST_BASE, HOST_BASE)
    d = os.stat(os.path.join(shared, "d"))
    assert (d.st_uid, d.st_gid) == (HOST_BASE + 5, HOST_BASE + 6)


def test_container_root_is_not_host_root(userns_bundle: Callable[..., str],
                                         state_root: str, open_dir: str) -> None:
    """Even with every capability the spec can give, root in the user namespace cannot
    touch a host root's file, nor make a device node, nor mount a host block device."""
    host = tempfile.mkdtemp(prefix="rootowned-", dir=open_dir)   # 0700 root
    os.chmod(host, 0o755)
    secret = os.path.join(host, "file")
    with open(secret, "w") as f:
        f.write("host\n")
    os.chmod(secret, 0o644)

    def edit(cfg: dict[str, Any]) -> None:
        caps = cfg["process"]["capabilities"]
        for k in ("bounding", "effective", "permitted"):
            caps[k] = ALL_CAPS
        cfg["mounts"].append({"destination": "/host", "type": "bind", "source": host,
                              "options": ["rbind", "rw"]})

    bundle = userns_bundle(sh("""
        grep CapEff /proc/self/status
        echo owned > /host/file 2>/dev/null && echo wrote || echo write-refused
        chmod 777 /host/file 2>/dev/null && echo chmodded || echo chmod-refused
        touch /host/new 2>/dev/null && echo created || echo create-refused
        mknod /tmp/sda b 8 0 2>/dev/null && echo mknod-ok || echo mknod-refused
        mount -t tmpfs none /mnt && echo tmpfs-mounted
        """), edit)
    status, out = run(bundle, state_root, "userns-notroot")
    assert "CapEff:\t0000000000000000" not in out
    assert "write-refused" in out and "chmod-refused" in out and "create-refused" in out
    assert "mknod-refused" in out
    assert "tmpfs-mounted" in out          # what its own mount namespace allows still works
    with open(secret) as f:
        assert f.read() == "host\n"
    assert os.stat(secret).st_mode & 0o777 == 0o644
    assert not os.path.exists(os.path.join(host, "new"))


def test_devices_are_bound_and_sysfs_falls_back(userns_bundle: Callable[..., str],
                                                state_root: str) -> None:
    """mknod is refused in a user namespace: the default devices are the host's nodes,
    bound; without a network namespace of its own sysfs cannot be mounted: /sys is the
    host's, bound read-only (runc's rootless behaviour)."""
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "network"]
        cfg["linux"]["devices"] = [{"path": "/dev/loop-control", "type": "c", "major": 10,
                                    "minor": 237}] if os.path.exists("/dev/loop-control") \
            else []

    bundle = userns_bundle(sh("""
        ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty
        echo hi > /dev/null && echo null-ok
        head -c 3 /dev/zero | od -An -tx1
        ls /sys/kernel >/dev/null && echo sys-readable
        touch /sys/kernel/x 2>/dev/null && echo sys-writable || echo sys-ro
        awk '$5 == "/sys" {print $6}' /proc/self/mountinfo
        ls -l /dev/loop-control 2>/dev/null
        """), edit)
    status, out = run(bundle, state_root, "userns-devices")
    assert status == 0, out
    for dev in ("null", "zero", "full", "random", "urandom", "tty"):
        assert any(line.startswith("crw-rw-rw-") and line.endswith(f"/dev/{dev}")
                   for line in out.splitlines()), (dev, out)
    assert "null-ok" in out and " 00 00 00" in out
    assert "sys-readable" in out and "sys-ro" in out
    if os.path.exists("/dev/loop-control"):
        assert "10, 237" in out


def test_sysfs_mounts_with_an_own_network_namespace(userns_bundle: Callable[..., str],
                                                    state_root: str) -> None:
    bundle = userns_bundle(sh("ls /sys/class/net; grep ' /sys ' /proc/self/mountinfo"))
    status, out = run(bundle, state_root, "userns-sysfs")
    assert status == 0, out
    assert out.split()[0] == "lo" and "eth0" not in out    # the container's own netns view
    assert " - sysfs " in out


def _many(n: int) -> list[dict[str, int]]:
    return [{"containerID": i, "hostID": HOST_BASE + i, "size": 1} for i in range(n)]


@pytest.mark.parametrize("edit, match", [
    (lambda c: c["linux"].update(uidMappings=[]), r"linux\.uidMappings: a new user namespace"),
    (lambda c: c["linux"].update(gidMappings=[]), r"linux\.gidMappings: a new user namespace"),
    (lambda c: c["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1, "size": 0}]),
     r"linux\.uidMappings\[0\]\.size: must not be 0"),
    (lambda c: c["linux"].update(uidMappings=[
        {"containerID": 0, "hostID": HOST_BASE, "size": 10},
        {"containerID": 5, "hostID": 200000, "size": 10}]),
     r"linux\.uidMappings\[1\]: containerID range 5-14 overlaps linux\.uidMappings\[0\]"),
    (lambda c: c["linux"].update(gidMappings=[
        {"containerID": 0, "hostID": HOST_BASE, "size": 10},
        {"containerID": 100, "hostID": HOST_BASE + 9, "size": 1}]),
     r"linux\.gidMappings\[1\]: hostID range"),
    (lambda c: c["linux"].update(uidMappings=_many(341)), r"341 mappings.*at most 340"),
    (lambda c: c["linux"].update(uidMappings=[
        {"containerID": 0, "hostID": 4294967000, "size": 1000}]), r"goes past the last id"),
    (lambda c: c["linux"].update(
        namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "user"]),
     r"linux\.uidMappings: set, but linux\.namespaces has no new user namespace"),
    (lambda c: c["linux"].update(namespaces=[
        *[n for n in c["linux"]["namespaces"] if n["type"] != "user"],
        {"type": "user", "path": "/proc/1/ns/user"}]),
     r"linux\.uidMappings: set, but .* joined by path keeps its own maps"),
    (lambda c: c["process"].update(user={"uid": 70000, "gid": 0}),
     r"process\.user\.uid: uid 70000 is not mapped in linux\.uidMappings"),
    (lambda c: c["process"].update(user={"uid": 0, "gid": 0, "additionalGids": [5, 65536]}),
     r"process\.user\.additionalGids\[1\]: gid 65536 is not mapped in linux\.gidMappings"),
    (lambda c: c["linux"].update(gidMappings=[{"containerID": 0, "hostID": HOST_BASE,
                                               "size": 1}]),
     r"mounts\[2\]\.options gid=5: gid 5 is not mapped in linux\.gidMappings"),
    (lambda c: c["process"].update(rlimits=[{
        "type": "RLIMIT_NOFILE", "soft": 1024,
        "hard": resource.getrlimit(resource.RLIMIT_NOFILE)[1] + 1}]),
     r"process\.rlimits\[0\]: RLIMIT_NOFILE hard limit .* user namespace cannot raise it"),
])
def test_bad_mappings_are_refused_before_the_clone(userns_bundle: Callable[..., str],
                                                   state_root: str,
                                                   edit: Callable[[dict[str, Any]], None],
                                                   match: str | None) -> None:
    config = Bundle(userns_bundle(["true"], edit), id="userns-bad", root=state_root)
    with pytest.raises((SpecError, UnsupportedError)) as info:
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()
    msg = str(info.value)
    assert "\n" not in msg
    assert re.search(match, msg), msg


def test_exec_becomes_root_of_the_user_namespace(userns_bundle: Callable[..., str],
                                                 state_root: str, open_dir: str) -> None:
    """A process exec'd into the container is root of its user namespace (the mapped
    host uid), not the caller's host uid left unmapped: files it makes on the host
    belong to the mapped uid."""
    shared = tempfile.mkdtemp(prefix="exec-", dir=open_dir)
    os.chown(shared, HOST_BASE, HOST_BASE)

    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/data", "type": "bind", "source": shared,
                              "options": ["rbind", "rw"]})

    config = Bundle(userns_bundle(["sleep", "60"], edit), id="userns-exec", root=state_root)
    from containerkit import spec as oci

    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        r, w = os.pipe()
        proc = c.new_process(oci.Process(args=["sh", "-c", "id -u; id -g; touch /data/e"],
                                         cwd="/"), stdout=w, stderr=w)
        os.close(w)
        status = proc.wait()
        with os.fdopen(r) as f:
            out = f.read()
        c.delete(force=True)
    assert status == 0, out
    assert out == "0\n0\n"
    st = os.stat(os.path.join(shared, "e"))
    assert (st.st_uid, st.st_gid) == (HOST_BASE, HOST_BASE)


# -- joining by path -------------------------------------------------------------------


def _holder(bundle: str, root: str, cid: str) -> Any:
    config = Bundle(bundle, id=cid, root=root)
    c = new_container(config, config.graph_driver(), NativeDriver())
    c.create()
    c.start()
    return c


def test_join_a_user_namespace_by_path(userns_bundle: Callable[..., str],
                                       make_bundle: Callable[..., str], state_root: str,
                                       open_dir: str) -> None:
    """A second container joins the first one's user namespace (as a pod does) and gets
    new pid, mount, ipc, uts and network namespaces owned by it: it is pid 1, root there,
    and mounts its own proc and sysfs."""
    holder = _holder(userns_bundle(["sleep", "60"]), state_root, "userns-holder")
    try:
        userns = f"/proc/{holder.pid}/ns/user"
        shared = tempfile.mkdtemp(prefix="join-", dir=open_dir)
        os.chown(shared, HOST_BASE, HOST_BASE)

        def join(cfg: dict[str, Any]) -> None:
            cfg["root"]["path"] = os.path.join(open_dir, "rootfs")
            cfg["linux"]["namespaces"].append({"type": "user", "path": userns})
            cfg["process"]["oomScoreAdj"] = 300
            cfg["mounts"].append({"destination": "/data", "type": "bind", "source": shared,
                                  "options": ["rbind", "rw"]})

        status, out = run(make_bundle(sh("""
            echo pid=$$ ids=$(id -u):$(id -g)
            cat /proc/self/uid_map
            readlink /proc/self/ns/user; readlink /proc/self/ns/pid
            grep -E ' /(proc|sys) ' /proc/self/mountinfo | awk '{print $5, $9}'
            echo net=$(ls /sys/class/net) oom=$(cat /proc/self/oom_score_adj)
            touch /data/f
            """), join), state_root, "userns-joiner")
        users = (os.readlink(userns), os.readlink(f"/proc/{holder.pid}/ns/pid"))
    finally:
        holder.delete(force=True)
    assert status == 0, out
    assert "pid=1 ids=0:0\n" in out
    assert " ".join(out.split()).count(f"0 {HOST_BASE} 65536") == 1, out
    lines = out.splitlines()
    assert lines[2] == users[0] and lines[3] != users[1]
    assert "/proc proc" in out and "/sys sysfs" in out
    assert "net=lo oom=300\n" in out   # a sysfs of its own network namespace
    st = os.stat(os.path.join(shared, "f"))
    assert (st.st_uid, st.st_gid) == (HOST_BASE, HOST_BASE)


def test_a_failure_after_the_fork_leaves_nothing(userns_bundle: Callable[..., str],
                                                make_bundle: Callable[..., str],
                                                state_root: str, open_dir: str) -> None:
    """Two stages: the first child is reaped at INIT, the init's own failure (a mount)
    is reported with its step and the init is killed and reaped too."""
    from containerkit import SetupError

    holder = _holder(userns_bundle(["sleep", "60"]), state_root, "userns-holder2")
    try:
        def join(cfg: dict[str, Any]) -> None:
            cfg["root"]["path"] = os.path.join(open_dir, "rootfs")
            cfg["linux"]["namespaces"].append(
                {"type": "user", "path": f"/proc/{holder.pid}/ns/user"})
            cfg["mounts"].append({"destination": "/mnt", "type": "nosuchfs", "source": "x"})

        config = Bundle(make_bundle(["true"], join), id="userns-forkfail", root=state_root)
        with pytest.raises(SetupError, match=r"nosuchfs on /mnt"):
            with new_container(config, config.graph_driver(), NativeDriver()) as c:
                c.create()
    finally:
        holder.delete(force=True)


def test_joining_a_user_namespace_without_root_is_refused(make_bundle: Callable[..., str],
                                                         state_root: str) -> None:
    holder = subprocess.Popen(["unshare", "-U", "sleep", "60"])     # maps nothing
    try:
        userns = f"/proc/{holder.pid}/ns/user"
        while os.readlink(userns) == os.readlink("/proc/self/ns/user"):
            assert holder.poll() is None, "unshare -U failed"
            os.sched_yield()                    # unshare(1) has not unshared yet
        bundle = make_bundle(["true"], lambda c: c["linux"]["namespaces"].append(
            {"type": "user", "path": userns}))
        config = Bundle(bundle, id="userns-joinbad", root=state_root)
        with pytest.raises(UnsupportedError, match=r"user namespace /proc/\d+/ns/user: "
                                                   r"maps no uid 0"):
            with new_container(config, config.graph_driver(), NativeDriver()) as c:
                c.create()
    finally:
        holder.kill()
        holder.wait()


def test_new_user_namespace_with_a_joined_network_namespace(
        userns_bundle: Callable[..., str], make_bundle: Callable[..., str],
        state_root: str) -> None:
    """The network namespace of a root container (owned by the host's user namespace),
    joined by a container with a new user namespace: it is joined before the user
    namespace is made; sysfs then cannot be mounted and /sys is bound."""
    holder = _holder(make_bundle(["sleep", "60"],
                                 lambda c: c.update(hostname="ck-netholder")),
                     state_root, "userns-netholder")
    try:
        netns = f"/proc/{holder.pid}/ns/net"

        def join(cfg: dict[str, Any]) -> None:
            cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                          if n["type"] != "network"]
            cfg["linux"]["namespaces"].append({"type": "network", "path": netns})

        status, out = run(userns_bundle(sh("""
            echo pid=$$ ids=$(id -u):$(id -g)
            readlink /proc/self/ns/net; readlink /proc/self/ns/user
            ls /sys/class/net | tr '\\n' ' '
            """), join), state_root, "userns-netjoiner")
        net = os.readlink(netns)
    finally:
        holder.delete(force=True)
    assert status == 0, out
    lines = out.splitlines()
    assert lines[0] == "pid=1 ids=0:0"
    assert lines[1] == net
    assert lines[2] != os.readlink("/proc/self/ns/user")
    # the host's /sys, bound (a sysfs of the joined namespace would list only lo)
    assert lines[3].split() == sorted(os.listdir("/sys/class/net")), out


# -- rootless: an unprivileged user runs `containerkit spec --rootless`'s config ------------

NOBODY = 65534


def _cli() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "containerkit")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "containerkit"]


def _as_nobody(args: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    # files, not pipes: a created container keeps its stdio open after `create` exits
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        res = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                              "--clear-groups", "--inh-caps=-all", *args], cwd=cwd,
                             stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=60,
                             env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(res.args, res.returncode, out.read(), err.read())


@pytest.fixture
def rootless_bundle(open_dir: str) -> Iterator[str]:
    """A bundle (and state root) owned by the unprivileged user, with the config that
    ``containerkit spec --rootless`` writes for it."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    with open("/proc/sys/user/max_user_namespaces") as f:
        if int(f.read()) == 0:
            pytest.skip("user.max_user_namespaces is 0: no unprivileged user namespaces")
    top = tempfile.mkdtemp(prefix="rootless-", dir=open_dir)
    os.chmod(top, 0o755)
    bundle = os.path.join(top, "bundle")
    os.mkdir(bundle)
    os.symlink(os.path.join(open_dir, "rootfs"), os.path.join(bundle, "rootfs"))
    os.mkdir(os.path.join(top, "state"))
    for p in (bundle, os.path.join(top, "state")):
        os.chown(p, NOBODY, NOBODY)
    res = _as_nobody([*_cli(), "spec", "--rootless"], bundle)
    assert res.returncode == 0, res.stderr
    yield bundle
    shutil.rmtree(top)


def _edit_config(bundle: str, fn: Callable[[dict[str, Any]], None]) -> None:
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    fn(cfg)
    with open(path, "w") as f:
        json.dump(cfg, f)


def test_rootless_run_by_an_unprivileged_user(rootless_bundle: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = True
        cfg["process"]["args"] = sh("""
            echo ids=$(id -u):$(id -g) pid=$$
            cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups
            hostname
            echo x > /dev/null && echo dev-ok
            ls /sys/kernel > /dev/null && echo sys-ok
            ls /sys/fs/cgroup > /dev/null && echo cgroup-ok
            awk '$5 ~ "^/(proc|dev|sys)" {print $5}' /proc/self/mountinfo | sort -u | tr '\\n' ' '
            """)

    _edit_config(rootless_bundle, edit)
    state = os.path.join(os.path.dirname(rootless_bundle), "state")
    res = _as_nobody([*_cli(), "--root", state, "run", "rootless-run"], rootless_bundle)
    assert res.returncode == 0, res.stderr + res.stdout
    out = res.stdout
    assert "ids=0:0 pid=1\n" in out
    assert " ".join(out.split()).count(f"0 {NOBODY} 1") == 2 and "deny\n" in out
    assert "runc\n" in out
    assert "dev-ok" in out and "sys-ok" in out and "cgroup-ok" in out
    for mnt in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                "/sys/fs/cgroup"):
        assert f"{mnt} " in out.splitlines()[-1], out
    assert os.listdir(state) == []


def test_rootless_lifecycle_create_start_state_kill_delete(rootless_bundle: str) -> None:
    """The split lifecycle, each verb a separate process of the unprivileged user (as
    podman calls them): no cgroup, the init is its own pid 1 and is killed and reaped."""
    _edit_config(rootless_bundle, lambda c: c["process"].update(
        args=["sh", "-c", "trap 'exit 3' TERM; while :; do sleep 0.05; done"]))
    state = os.path.join(os.path.dirname(rootless_bundle), "state")
    cid = "rootless-life"

    def ck(*args: str) -> subprocess.CompletedProcess[str]:
        return _as_nobody([*_cli(), "--root", state, *args], rootless_bundle)

    res = ck("create", "--bundle", rootless_bundle, cid)
    assert res.returncode == 0, res.stderr
    try:
        doc = json.loads(ck("state", cid).stdout)
        assert doc["status"] == "created"
        ps = ck("ps", "--format", "json", cid)
        assert ps.returncode == 0 and json.loads(ps.stdout) == [doc["pid"]], ps
        with open(f"/proc/{doc['pid']}/status") as f:
            status = f.read()
        assert f"Uid:\t{NOBODY}\t{NOBODY}" in status   # host view: the unprivileged user
        assert ck("start", cid).returncode == 0
        assert json.loads(ck("state", cid).stdout)["status"] == "running"
        for verb in (["pause"], ["update", "--pids-limit", "10"], ["events", "--stats"]):
            res = ck(*verb, cid)               # no cgroup: said so, in one line
            assert res.returncode == 1 and res.stderr.count("\n") == 1, (verb, res)
            assert "it has no cgroup" in res.stderr, (verb, res.stderr)
        assert ck("kill", cid, "TERM").returncode == 0
        res = ck("delete", "--force", cid)
        assert res.returncode == 0, res.stderr
    finally:
        ck("delete", "--force", cid)
    assert os.listdir(state) == []
    assert ck("state", cid).returncode == 1


@pytest.mark.parametrize("resources, field", [
    ({"pids": {"limit": 10}}, "pids"),
    ({"devices": [{"allow": False, "access": "rwm"},
                  {"allow": False, "type": "c", "major": 1, "minor": 3}]}, "devices"),
])
def test_rootless_refuses_resources_without_a_cgroup(rootless_bundle: str,
                                                     resources: dict[str, Any],
                                                     field: str) -> None:
    _edit_config(rootless_bundle, lambda c: c["linux"].update(resources=resources))
    state = os.path.join(os.path.dirname(rootless_bundle), "state")
    res = _as_nobody([*_cli(), "--root", state, "run", "rootless-res"], rootless_bundle)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1, res.stderr
    assert f"linux.resources.{field}" in res.stderr and "delegat" in res.stderr
    assert os.listdir(state) == []


def test_rootless_accepts_the_default_deny_all_device_rule(rootless_bundle: str) -> None:
    _edit_config(rootless_bundle, lambda c: (
        c["linux"].update(resources={"devices": [{"allow": False, "access": "rwm"}]}),
        c["process"].update(args=["true"])))
    state = os.path.join(os.path.dirname(rootless_bundle), "state")
    res = _as_nobody([*_cli(), "--root", state, "run", "rootless-deny"], rootless_bundle)
    assert res.returncode == 0, res.stderr


def test_rootless_exec(rootless_bundle: str) -> None:
    """exec by the unprivileged user: it cannot join the pid namespace itself, so the
    child joins it with the user namespace it owns, becomes root there, skips setgroups
    (denied) and forks the process into the pid namespace."""
    _edit_config(rootless_bundle, lambda c: c["process"].update(args=["sleep", "60"]))
    state = os.path.join(os.path.dirname(rootless_bundle), "state")
    cid = "rootless-exec"

    def ck(*args: str) -> subprocess.CompletedProcess[str]:
        return _as_nobody([*_cli(), "--root", state, *args], rootless_bundle)

    res = ck("run", "-d", cid)
    assert res.returncode == 0, res.stderr
    try:
        res = ck("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map; ps -o pid,args")
        assert res.returncode == 0, res.stderr
        failed = ck("exec", cid, "/no/such/program")
    finally:
        ck("delete", "--force", cid)
    lines = res.stdout.split("\n")
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(NOBODY), "1"]
    assert any(line.split()[:2] == ["1", "sleep"] for line in lines[3:] if line), res.stdout
    assert failed.returncode != 0 and failed.stderr.count("\n") == 1, failed.stderr
    assert "no such file or directory" in failed.stderr
    assert os.listdir(state) == []


def test_rootless_refuses_a_map_of_another_uid(rootless_bundle: str) -> None:
    _edit_config(rootless_bundle, lambda c: c["linux"].update(
        uidMappings=[{"containerID": 0, "hostID": NOBODY, "size": 1},
                     {"containerID": 1, "hostID": HOST_BASE, "size": 100}]))
    state = os.path.join(os.path.dirname(rootless_bundle), "state")
    res = _as_nobody([*_cli(), "--root", state, "run", "rootless-map"], rootless_bundle)
    assert res.returncode == 1
    assert "linux.uidMappings: an unprivileged user can map only its own uid" in res.stderr
    assert os.listdir(state) == []


def test_unprivileged_user_without_a_user_namespace_is_told_why(rootless_bundle: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "user"]
        cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = []

    _edit_config(rootless_bundle, edit)
    state = os.path.join(os.path.dirname(rootless_bundle), "state")
    res = _as_nobody([*_cli(), "--root", state, "run", "rootless-nouserns"], rootless_bundle)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1, res.stderr
    assert "lacks CAP_SYS_ADMIN" in res.stderr and "--rootless" in res.stderr
    assert os.listdir(state) == []


# -- podman --------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("podman") is None or shutil.which("conmon") is None
                    and not os.path.exists("/usr/bin/conmon"),
                    reason="podman or conmon is not installed")
def test_podman_run_with_uidmap(pod: Podman) -> None:  # noqa: F811
    """podman --uidmap/--gidmap: podman chowns its copy of the image to the host range
    and gives us the maps; inside, root owns the image's files and can write there."""
    res = pod("run", "--rm", *pod.run_args(), "--uidmap", f"0:{HOST_BASE}:65536",
              "--gidmap", f"0:{HOST_BASE}:65536", IMAGE, "sh", "-c",
              "id -u; cat /proc/self/uid_map; stat -c %u:%g /bin; touch /x && echo touched")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split("\n")
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(HOST_BASE), "65536"]
    assert lines[2] == "0:0" and lines[3] == "touched"
