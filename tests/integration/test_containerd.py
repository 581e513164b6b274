"""containerd 1.6 and its runc shim (io.containerd.runc.v2) driving ``containerkit``.

The module starts its own containerd (root, state, sockets and config in a tmp dir; the
CRI plugin off), imports an OCI image archive it writes itself from the busybox rootfs
(one uncompressed layer, config, manifest, index.json), runs containers with ``ctr run
--runc-binary <containerkit>`` in a namespace of its own and stops containerd afterwards.

cgroups: on this hybrid host the shim would see cgroup v1 and register its OOM watch in
the v1 memory hierarchy, which the tests must not touch. So containerd (and the shims it
starts) run in a private mount namespace where /sys/fs/cgroup is the host's cgroup2
hierarchy; the snapshotter's mounts stay in that namespace too. On a pure v2 host
containerd runs as is.

Skipped, with the reason, where containerd or ctr is not installed (``./dev`` installs them).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ckhelpers import COUNTER, advances, counter, is_cgroup2, run_to_files

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("containerd") is None or shutil.which("ctr") is None,
                       reason="containerd is not installed (apt-get install containerd)"),
]

CONTAINERKIT = str(Path(sys.executable).with_name("containerkit"))
IMAGE = "localhost/ck-containerd-busybox:latest"


# -- an OCI image archive, written by hand -------------------------------------------------

def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_archive(rootfs: str, name: str) -> bytes:
    """An OCI image layout (oci-layout, index.json, blobs/sha256/...) as a tar: one
    uncompressed layer with ``rootfs``, its config, its manifest; ``ctr image import``
    names it from the io.containerd.image.name annotation."""
    layer = subprocess.run(["tar", "-C", rootfs, "--numeric-owner", "-c", "."],
                           capture_output=True, check=True).stdout
    config = json.dumps({
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine,
                                                                    os.uname().machine),
        "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(layer), "size": len(layer)}],
    }).encode()
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": _digest(manifest), "size": len(manifest),
                       "annotations": {"io.containerd.image.name": name,
                                       "org.opencontainers.image.ref.name": "latest"}}],
    }).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        files = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)]
        files += [(f"blobs/sha256/{_digest(d)[7:]}", d) for d in (layer, config, manifest)]
        for path, data in files:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# -- containerd, private ---------------------------------------------------------------------

class Containerd:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.sock = str(tmp / "containerd.sock")
        self.namespace = f"ck-ctr-{uuid.uuid4().hex[:8]}"
        self.runc_root = str(tmp / "runc")
        self.proc: subprocess.Popen[bytes] | None = None
        self._n = 0

    def write_config(self) -> str:
        path = self.tmp / "config.toml"
        path.write_text(f"""\
version = 2
root = "{self.tmp}/root"
state = "{self.tmp}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{self.sock}"

[ttrpc]
  address = "{self.sock}.ttrpc"

[debug]
  level = "debug"
""")
        return str(path)

    def start(self) -> None:
        config = self.write_config()
        cmd = ["containerd", "--config", config]
        if not is_cgroup2("/sys/fs/cgroup"):
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                   "umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup"
                   ' && exec "$@"', "sh", *cmd]
        with open(self.tmp / "containerd.log", "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while self("version").returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("containerd did not start: "
                            + (self.tmp / "containerd.log").read_text()[-2000:])
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __call__(self, *args: str, stdin: bytes | None = None, timeout: float = 60
                 ) -> subprocess.CompletedProcess[str]:
        self._n += 1
        out, err = self.tmp / f"out{self._n}", self.tmp / f"err{self._n}"
        return run_to_files(["ctr", "--address", self.sock, "--namespace", self.namespace,
                             *args], out, err, stdin=stdin, timeout=timeout)

    def ok(self, *args: str) -> str:
        res = self(*args)
        assert res.returncode == 0, f"{args}: {res.returncode} {res.stderr}"
        return res.stdout

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``ctr run`` with containerkit as the shim's runc. ``--cpu-shares 0``: ctr sets
        cpu.shares 1024 by default, which needs the cpu controller (not in this host's
        cgroup2 hierarchy: containerkit refuses the limit, rightly)."""
        return self("run", "--runc-binary", CONTAINERKIT, "--runc-root", self.runc_root,
                    "--cpu-shares", "0", *args)

    def task(self, cid: str) -> tuple[int, str]:
        """(pid, status) from ``ctr task ls``."""
        for line in self.ok("task", "ls").splitlines()[1:]:
            name, pid, status = line.split()
            if name == cid:
                return int(pid), status
        raise AssertionError(f"no task {cid}")



@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    if not os.path.exists(CONTAINERKIT):
        pytest.skip(f"{CONTAINERKIT} is not installed (./dev installs it)")
    tmp = tmp_path_factory.mktemp("ck-containerd")
    ctrd = Containerd(tmp)
    ctrd.start()
    try:
        from containerkit.busybox import make_rootfs

        rootfs = make_rootfs(str(tmp / "rootfs"))
        archive = tmp / "busybox-oci.tar"
        archive.write_bytes(oci_archive(rootfs, IMAGE))
        ctrd.ok("image", "import", str(archive))
        yield ctrd
    finally:
        for line in ctrd("task", "ls", "--quiet").stdout.split():
            ctrd("task", "kill", "--signal", "SIGKILL", line)
            ctrd("task", "delete", "--force", line)
        for line in ctrd("container", "ls", "--quiet").stdout.split():
            ctrd("container", "delete", line)
        ctrd.stop()
        _remove_namespace_cgroup(ctrd.namespace)


def _remove_namespace_cgroup(namespace: str) -> None:
    """ctr puts a container's cgroup at /<namespace>/<id>: containerkit removes the
    container's, the namespace's is ctr's to clean (as with runc), so the test does."""
    from containerkit.cgroups import cgroup2_mountpoint

    path = os.path.join(cgroup2_mountpoint(), namespace)
    if os.path.isdir(path):
        os.rmdir(path)


@pytest.fixture
def ctr(containerd: Containerd) -> Iterator[Containerd]:
    """The module's containerd; after the test its tasks and containers are gone, and so
    is containerkit's state of them (the shim's --root)."""
    from conftest import _children

    children = _children()
    yield containerd
    for cid in containerd("task", "ls", "--quiet").stdout.split():
        containerd("task", "kill", "--signal", "SIGKILL", cid)
        containerd("task", "delete", "--force", cid)
    for cid in containerd("container", "ls", "--quiet").stdout.split():
        containerd("container", "delete", cid)
    state = os.path.join(containerd.runc_root, containerd.namespace)
    assert not os.path.isdir(state) or os.listdir(state) == []
    from containerkit.cgroups import cgroup2_mountpoint

    ns_cgroup = os.path.join(cgroup2_mountpoint(), containerd.namespace)
    assert not os.path.isdir(ns_cgroup) or not [
        d for d in os.listdir(ns_cgroup) if os.path.isdir(os.path.join(ns_cgroup, d))]
    assert _children() == children


def _id() -> str:
    return f"ck-ctr-{uuid.uuid4().hex[:8]}"


# -- tests -----------------------------------------------------------------------------------

def test_run_rm_echo(ctr: Containerd) -> None:
    res = ctr.run("--rm", IMAGE, _id(), "echo", "hi from containerd")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hi from containerd\n"


def test_run_exit_code(ctr: Containerd) -> None:
    res = ctr.run("--rm", IMAGE, _id(), "sh", "-c", "echo $$; exit 3")
    assert res.returncode == 3, res.stderr
    assert res.stdout == "1\n"                     # pid 1 of its own pid namespace


def test_missing_binary(ctr: Containerd) -> None:
    res = ctr.run("--rm", IMAGE, _id(), "/no/such/binary")
    assert res.returncode != 0
    assert "no such file or directory" in res.stderr, res.stderr


def test_detached_pause_resume_kill_delete(ctr: Containerd) -> None:
    cid = _id()
    script = f"trap 'echo usr1 > /dev/shm/usr1' USR1; {COUNTER}"
    res = ctr.run("--detach", "--null-io", IMAGE, cid, "sh", "-c", script)
    assert res.returncode == 0, res.stderr
    pid, status = ctr.task(cid)
    assert status == "RUNNING"
    assert os.path.isdir(os.path.join(ctr.runc_root, ctr.namespace, cid))  # our state
    counter(pid)
    assert advances(pid)

    ctr.ok("task", "pause", cid)
    assert ctr.task(cid) == (pid, "PAUSED")
    assert not advances(pid)
    ctr.ok("task", "resume", cid)
    assert ctr.task(cid) == (pid, "RUNNING")
    assert advances(pid)

    ctr.ok("task", "kill", "--signal", "SIGUSR1", cid)
    deadline = time.monotonic() + 10
    while not os.path.exists(f"/proc/{pid}/root/dev/shm/usr1"):
        assert time.monotonic() < deadline, "the trap never ran"
        time.sleep(0.02)
    assert ctr.task(cid)[1] == "RUNNING"

    ctr.ok("task", "kill", "--signal", "SIGKILL", cid)
    deadline = time.monotonic() + 10
    while ctr.task(cid)[1] != "STOPPED":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    out = ctr.ok("task", "delete", cid)
    assert "137" in out or out == "", out
    assert not os.path.exists(os.path.join(ctr.runc_root, ctr.namespace, cid))
    ctr.ok("container", "delete", cid)


def test_task_ps(ctr: Containerd) -> None:
    cid = _id()
    res = ctr.run("--detach", "--null-io", IMAGE, cid, "sh", "-c",
                  "sleep 1000 & while :; do sleep 0.05; done")
    assert res.returncode == 0, res.stderr
    pid, _ = ctr.task(cid)
    res = ctr("task", "ps", cid)
    assert res.returncode == 0, res.stderr
    pids = [int(line.split()[0]) for line in res.stdout.splitlines()[1:]]
    assert pid in pids and len(pids) >= 2          # the init and its sleep, host pids


def test_task_exec(ctr: Containerd) -> None:
    cid = _id()
    res = ctr.run("--detach", "--null-io", IMAGE, cid, "sh", "-c",
                  "while :; do sleep 0.05; done")
    assert res.returncode == 0, res.stderr
    res = ctr("task", "exec", "--exec-id", "e1", cid, "sh", "-c",
              "echo exec $$; cat /proc/1/cmdline | tr '\\0' ' '")
    assert res.returncode == 0, res.stderr
    first, cmdline = res.stdout.splitlines()
    assert first.startswith("exec ") and first != "exec 1"
    assert cmdline.startswith("sh -c while")
    res = ctr("task", "exec", "--exec-id", "e2", cid, "sh", "-c", "exit 4")
    assert res.returncode == 4, res.stderr
