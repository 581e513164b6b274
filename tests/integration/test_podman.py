"""podman 4.3 driving ``containerkit`` as its OCI runtime (through conmon), like a user would.

Each test module gets podman's own world in a tmp dir: ``CONTAINERS_CONF`` and
``CONTAINERS_STORAGE_CONF`` (vfs driver: no mounts for image layers), the cgroupfs manager,
no network, containerkit named in ``runtime_supports_json`` (so podman passes ``--log-format
json --log FILE`` and reads our errors from it), and the container state under the test's
own ``--root`` (``--runtime-flag root=...``). The image is ``podman import`` of the busybox
rootfs.

cgroups: this host is hybrid (v1 controllers, cgroup2 at /sys/fs/cgroup/unified). podman
would see v1 there and create its cgroups in the v1 hierarchies, which the tests must not
touch. So on a hybrid host every podman command runs in one private mount namespace (held
by a ``sleep`` this module starts) where /sys/fs/cgroup is the host's cgroup2 hierarchy:
podman and containerkit both see a pure v2 host. On a pure v2 host podman runs as is.

Skipped, with the reason, where podman or conmon is not installed (``./dev`` installs them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ckhelpers import COUNTER, advances, is_cgroup2, run_to_files

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("podman") is None,
                       reason="podman is not installed (apt-get install podman)"),
    pytest.mark.skipif(not (shutil.which("conmon") or os.path.exists("/usr/bin/conmon")),
                       reason="conmon is not installed (apt-get install conmon)"),
]

CONTAINERKIT = str(Path(sys.executable).with_name("containerkit"))
IMAGE = "localhost/ck-podman-busybox:latest"
STATE_ROOT = "/run/containerkit"          # containerkit's default --root
# conmon runs the runtime with RLIMIT_NPROC 32768 and podman's default ulimits (1048576)
# are above it: raising a hard limit needs CAP_SYS_RESOURCE, which the bounding set of
# these machines lacks, so every runtime fails. Defaults at what the runtime really has.
NPROC_UNDER_CONMON = 32768


def _hard(resource: int) -> int:
    import resource as r

    return r.getrlimit(resource)[1]


class Podman:
    """podman with this module's config, in the pure-v2 mount namespace if there is one."""

    def __init__(self, tmp: Path, holder: int | None) -> None:
        self.tmp = tmp
        self.holder = holder
        self.cgroup_parent = f"/ck-podman-{uuid.uuid4().hex[:8]}"
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(tmp),
            "CONTAINERS_CONF": str(tmp / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(tmp / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(tmp / "registries.conf"),
        }
        self._n = 0

    def write_config(self) -> None:
        import resource

        nofile = _hard(resource.RLIMIT_NOFILE)
        nproc = min(_hard(resource.RLIMIT_NPROC), NPROC_UNDER_CONMON)
        t = self.tmp
        (t / "containers.conf").write_text(f"""\
[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
pids_limit = 0
log_driver = "k8s-file"
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{t}/events.log"
tmp_dir = "{t}/tmp"
volume_path = "{t}/volumes"
conmon_path = ["/usr/bin/conmon"]
runtime = "containerkit"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "containerkit"]

[engine.runtimes]
containerkit = ["{CONTAINERKIT}"]

[network]
network_config_dir = "{t}/net"
""")
        (t / "storage.conf").write_text(f"""\
[storage]
driver = "vfs"
graphroot = "{t}/graph"
runroot = "{t}/run"
""")
        (t / "registries.conf").write_text("unqualified-search-registries = []\n")

    def command(self, *args: str) -> list[str]:
        # containerkit's default --root (/run/containerkit): podman does not pass its
        # --runtime-flag options to the exit command that deletes the container
        cmd = ["podman", "--runtime", CONTAINERKIT, "--cgroup-manager", "cgroupfs", *args]
        if self.holder is not None:
            cmd = ["nsenter", "-t", str(self.holder), "-m", *cmd]
        return cmd

    def __call__(self, *args: str, stdin: bytes | None = None, timeout: float = 120
                 ) -> subprocess.CompletedProcess[str]:
        self._n += 1
        out, err = self.tmp / f"out{self._n}", self.tmp / f"err{self._n}"
        # files, not pipes: conmon keeps a detached container's stdio open
        return run_to_files(self.command(*args), out, err, stdin=stdin, env=self.env,
                            timeout=timeout)

    def ok(self, *args: str) -> str:
        res = self(*args)
        assert res.returncode == 0, f"{args}: {res.returncode} {res.stderr}"
        return res.stdout

    def run_args(self) -> list[str]:
        return ["--network", "none", "--pull", "never", "--cgroup-parent", self.cgroup_parent]

    def inspect(self, name: str) -> dict:
        return json.loads(self.ok("inspect", name))[0]


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    if not os.path.exists(CONTAINERKIT):
        pytest.skip(f"{CONTAINERKIT} is not installed (./dev installs it)")
    tmp = tmp_path_factory.mktemp("ck-podman")
    holder = None
    if not is_cgroup2("/sys/fs/cgroup"):
        # hybrid host: a mount namespace where /sys/fs/cgroup is the cgroup2 hierarchy
        holder_proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             "umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup"
             " && echo ready && exec sleep infinity"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert holder_proc.stdout is not None
        if holder_proc.stdout.readline() != b"ready\n":
            holder_proc.kill()
            holder_proc.wait()
            pytest.fail("could not make a mount namespace with cgroup2 at /sys/fs/cgroup")
        holder = holder_proc.pid
    pod = Podman(tmp, holder)
    pod.write_config()
    rootfs = tmp / "rootfs"
    from containerkit.busybox import make_rootfs

    make_rootfs(str(rootfs))
    archive = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True,
                             check=True).stdout
    res = pod("import", "-", IMAGE, stdin=archive)
    assert res.returncode == 0, res.stderr
    try:
        yield pod
    finally:
        pod("rm", "--all", "--force", "--time", "0")
        pod("rmi", "--all", "--force")
        if holder is not None:
            os.kill(holder, signal.SIGKILL)
            holder_proc.wait()
        _remove_cgroup_tree(pod.cgroup_parent)


def _remove_cgroup_tree(rel: str) -> None:
    """podman's cgroup parent (its conmon cgroups are left: podman never removes them)."""
    from containerkit.cgroups import cgroup2_mountpoint

    top = os.path.join(cgroup2_mountpoint(), rel.lstrip("/"))
    for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def _our_states(pod: Podman) -> list[str]:
    """containerkit state dirs of this module's podman (other test runs may share the
    default --root): their bundle is in our storage."""
    found = []
    for cid in os.listdir(STATE_ROOT) if os.path.isdir(STATE_ROOT) else []:
        try:
            with open(os.path.join(STATE_ROOT, cid, "state.json")) as f:
                bundle = json.load(f).get("bundle", "")
        except (OSError, ValueError):
            continue
        if bundle.startswith(str(pod.tmp)):
            found.append(cid)
    return found


def _cgroups_left(pod: Podman) -> list[str]:
    from containerkit.cgroups import cgroup2_mountpoint

    top = os.path.join(cgroup2_mountpoint(), pod.cgroup_parent.lstrip("/"))
    try:
        return sorted(d for d in os.listdir(top) if d.startswith("libpod-"))
    except FileNotFoundError:
        return []


@pytest.fixture
def pod(podman: Podman) -> Iterator[Podman]:
    """The module's podman; after the test, its containers are removed and nothing of
    them is left: containerkit state, container cgroup, mount, child process."""
    from conftest import _children

    names: list[str] = []
    podman.names = names  # type: ignore[attr-defined]
    children = _children()
    yield podman
    for name in names:
        podman("rm", "--force", "--time", "0", name)
    assert _our_states(podman) == [], "containerkit state left"
    assert _cgroups_left(podman) == []
    assert _children() == children
    with open("/proc/self/mountinfo") as f:
        assert str(podman.tmp) not in f.read()


def _name(pod: Podman) -> str:
    name = f"ck-podman-{uuid.uuid4().hex[:8]}"
    pod.names.append(name)  # type: ignore[attr-defined]
    return name



# -- run ------------------------------------------------------------------------------------

def test_run_rm_echo(pod: Podman) -> None:
    res = pod("run", "--rm", *pod.run_args(), IMAGE, "echo", "hi from podman")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hi from podman\n"


def test_run_sees_its_own_namespaces(pod: Podman) -> None:
    out = pod.ok("run", "--rm", *pod.run_args(), IMAGE, "sh", "-c",
                 "echo $$; hostname; cat /proc/self/status | grep ^CapEff; ls /sys/class/net")
    pid, hostname, capeff, netdevs = out.split("\n", 3)
    assert pid == "1"                              # its own pid namespace
    assert hostname and hostname != os.uname().nodename
    assert capeff.split()[1] == "00000000a80425fb"  # podman's default capability set
    assert netdevs.split() == ["lo"]               # --network none: only loopback


@pytest.mark.parametrize("args, code", [
    (["sh", "-c", "exit 3"], 3),
    (["/no/such/binary"], 127),     # podman maps our "no such file or directory" to 127
    (["/etc/passwd"], 126),         # ... and "permission denied" to 126
], ids=["exit3", "missing-127", "not-executable-126"])
def test_run_exit_codes(pod: Podman, args: list[str], code: int) -> None:
    res = pod("run", "--rm", *pod.run_args(), IMAGE, *args)
    assert res.returncode == code, res.stderr
    if code > 125:
        assert "containerkit" in res.stderr and "Traceback" not in res.stderr


def test_run_detached_stop_rm(pod: Podman) -> None:
    name = _name(pod)
    pod.ok("run", "-d", "--name", name, *pod.run_args(), IMAGE, "sh", "-c",
           "trap 'exit 7' TERM; while :; do sleep 0.05; done")
    info = pod.inspect(name)
    assert info["State"]["Running"] is True
    pid, full_id = info["State"]["Pid"], info["Id"]
    assert os.path.isdir(os.path.join(STATE_ROOT, full_id))      # podman's id is ours
    with open(f"/proc/{pid}/status") as f:
        assert "NSpid" in f.read()
    pod.ok("stop", "--time", "10", name)
    info = pod.inspect(name)
    assert info["State"]["Status"] == "exited"
    assert info["State"]["ExitCode"] == 7          # it got SIGTERM, not SIGKILL
    pod.ok("rm", name)
    assert not os.path.exists(os.path.join(STATE_ROOT, full_id))


def test_pause_unpause(pod: Podman) -> None:
    name = _name(pod)
    pod.ok("run", "-d", "--name", name, *pod.run_args(), IMAGE, "sh", "-c", COUNTER)
    pid = pod.inspect(name)["State"]["Pid"]
    assert advances(pid)
    pod.ok("pause", name)
    assert pod.inspect(name)["State"]["Status"] == "paused"
    assert not advances(pid)
    pod.ok("unpause", name)
    assert pod.inspect(name)["State"]["Status"] == "running"
    assert advances(pid)
    pod.ok("rm", "--force", "--time", "0", name)


def test_kill_usr1(pod: Podman) -> None:
    name = _name(pod)
    pod.ok("run", "-d", "--name", name, *pod.run_args(), IMAGE, "sh", "-c",
           "trap 'echo got USR1' USR1; echo ready; while :; do sleep 0.05; done")
    _wait_log(pod, name, "ready")
    pod.ok("kill", "--signal", "USR1", name)
    _wait_log(pod, name, "got USR1")
    assert pod.inspect(name)["State"]["Running"] is True
    pod.ok("kill", name)                            # SIGKILL by default
    pod.ok("wait", name)
    assert pod.inspect(name)["State"]["ExitCode"] == 137
    pod.ok("rm", name)


def _wait_log(pod: Podman, name: str, text: str) -> None:
    deadline = time.monotonic() + 30
    while text not in (logs := pod.ok("logs", name)):
        assert time.monotonic() < deadline, logs
        time.sleep(0.1)


def test_update_memory(pod: Podman) -> None:
    from containerkit.cgroups import cgroup2_mountpoint

    name = _name(pod)
    pod.ok("run", "-d", "--name", name, *pod.run_args(), IMAGE, "sh", "-c",
           "while :; do sleep 0.05; done")
    pid = pod.inspect(name)["State"]["Pid"]
    res = pod("update", "--memory", "64m", name)
    if res.returncode != 0 and "memory controller is not available" in res.stderr:
        pytest.skip("the host's cgroup2 hierarchy has no memory controller (hybrid host: "
                    "memory is bound to cgroup v1); containerkit refuses the limit, as it "
                    f"should: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr
    with open(f"/proc/{pid}/cgroup") as f:
        rel = f.read().strip().split("::", 1)[1]
    with open(os.path.join(cgroup2_mountpoint(), rel.lstrip("/"), "memory.max")) as f:
        assert int(f.read()) == 64 * 1024 * 1024
    pod.ok("rm", "--force", "--time", "0", name)


# -- exec and terminals (other parts of the CLI: skipped while containerkit refuses them) --

def test_exec(pod: Podman) -> None:
    name = _name(pod)
    pod.ok("run", "-d", "--name", name, *pod.run_args(), IMAGE, "sh", "-c",
           "while :; do sleep 0.05; done")
    res = pod("exec", name, "sh", "-c", "echo exec $$; cat /proc/1/cmdline | tr '\\0' ' '")
    assert res.returncode == 0, res.stderr
    first, cmdline = res.stdout.splitlines()
    assert first.startswith("exec ") and first != "exec 1"
    assert cmdline.startswith("sh -c while")       # it sees the container's init
    res = pod("exec", name, "sh", "-c", "exit 5")
    assert res.returncode == 5, res.stderr
    pod.ok("rm", "--force", "--time", "0", name)


def test_exec_tty(pod: Podman) -> None:
    name = _name(pod)
    pod.ok("run", "-d", "--name", name, *pod.run_args(), IMAGE, "sh", "-c",
           "while :; do sleep 0.05; done")
    res = pod("exec", "-t", name, "tty")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith("/dev/pts/"), res.stdout
    pod.ok("rm", "--force", "--time", "0", name)


def test_run_tty(pod: Podman) -> None:
    res = pod("run", "--rm", "-t", *pod.run_args(), IMAGE, "tty")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "/dev/pts/0", res.stdout
