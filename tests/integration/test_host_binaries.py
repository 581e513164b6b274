"""CVE-2019-5736 and its class: no process of a container ever gets a writable handle on
a host binary that the runtime or the embedding program runs.

The reproducer: an image whose program is a script starting with ``#!/proc/self/exe``.
At the container's first execve, ``/proc/self/exe`` is the executable of the process
that makes it; were that still a copy of the runtime's process, the kernel would run
the host's interpreter as the container's process, which keeps an O_PATH fd on it,
waits until nothing runs it any more, and writes it through ``/proc/self/fd``. The init
(and an exec'd process) re-execute into ck-init, a sealed memfd, before anything of the
container's runs (_native/child.c: ck_reexec), so the script reaches ck-init, which
refuses to run it.

Every run here uses a private copy of the interpreter (never the system's), with the
host's /usr bound read-only into the container so that the copy, were it run there,
would find its libraries and stdlib and carry the attack out.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ckhelpers import CLI, sh
from conftest import copy_rootfs, needs_root

# The attack, as the container's program: run by the host's interpreter (the old hole),
# it keeps an fd on /proc/self/exe and becomes a shell that writes through it as soon
# as nothing runs the binary (ETXTBSY until then).
EVIL = textwrap.dedent("""\
    #!/proc/self/exe
    import os
    fd = os.open("/proc/self/exe", os.O_PATH)
    os.set_inheritable(fd, True)
    loop = ("i=0; while [ $i -lt 100 ]; do "
            "if printf PWNED >> /proc/self/fd/%d 2>/dev/null; then echo WROTE; exit 0; fi; "
            "i=$((i+1)); sleep 0.05; done; echo NOT-WRITTEN")
    os.execv("/bin/sh", ["sh", "-c", loop % fd])
    """)
REFUSAL = "containerkit-init: this is containerkit's container init, not a program to run"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def private_python(tmp_path: Path) -> Path:
    """A private copy of the interpreter the suite runs on: the runtime runs from it."""
    needs_root()
    copy = tmp_path / "priv" / "python3"
    copy.parent.mkdir()
    shutil.copy2(os.path.realpath(sys.executable), copy)
    return copy


def _runtime(python: Path) -> list[str]:
    """The CLI, in Python, on ``python`` (not the native front end)."""
    paths = [p for p in sys.path if p and ("site-packages" in p or
                                           os.path.isdir(os.path.join(p, "containerkit")))]
    boot = (f"import sys; sys.path[:0] = {paths!r}; import runpy; "
            "runpy.run_module('containerkit', run_name='__main__')")
    return [str(python), "-I", "-S", "-c", boot]


@pytest.fixture
def evil_bundle(tmp_path: Path, rootfs: str) -> Callable[[list[str]], str]:
    """A bundle whose rootfs has /evil (the script above) and the host's /usr, read-only."""
    from containerkit import spec as oci

    root = copy_rootfs(rootfs, str(tmp_path / "evilroot"))
    for name in ("lib", "lib64"):
        os.symlink(f"usr/{name}", os.path.join(root, name))
    evil = Path(root, "evil")
    evil.write_text(EVIL)
    evil.chmod(0o755)

    def make(args: list[str]) -> str:
        bundle = tmp_path / f"bundle-{len(list(tmp_path.glob('bundle-*')))}"
        bundle.mkdir()
        config = oci.default_spec(cgroupns=False).to_dict()
        config["root"] = {"path": root, "readonly": False}
        config["process"]["args"] = args
        config["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                                 "options": ["rbind", "ro"]})
        (bundle / "config.json").write_text(json.dumps(config))
        return str(bundle)

    return make


def _wait_stopped(cli: list[str], root: str, cid: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        state = subprocess.run([*cli, "--root", root, "state", cid], capture_output=True,
                               text=True)
        if state.returncode != 0 or json.loads(state.stdout)["status"] == "stopped":
            return
        assert time.monotonic() < deadline, "the container never stopped"
        time.sleep(0.05)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_proc_self_exe_entrypoint_cannot_write_the_runtime(
        private_python: Path, evil_bundle: Callable[[list[str]], str], state_root: str,
        tmp_path: Path, leak_check: Callable[[], None]) -> None:
    before = _digest(private_python)
    cli = _runtime(private_python)
    out = tmp_path / "out"
    with open(out, "w") as f:
        subprocess.run([*cli, "--root", state_root, "create", "--bundle",
                        evil_bundle(["/evil"]), "evil"], stdout=f, stderr=f, check=True,
                       timeout=30)
    try:
        subprocess.run([*cli, "--root", state_root, "start", "evil"], check=True, timeout=30)
        _wait_stopped(cli, state_root, "evil")   # every runtime process has exited by now
    finally:
        subprocess.run([*CLI, "--root", state_root, "delete", "--force", "evil"], timeout=30)
    assert "WROTE" not in _read(out)
    assert _digest(private_python) == before
    assert REFUSAL in _read(out)            # what the kernel ran was ck-init, not Python


def test_proc_self_exe_exec_cannot_write_the_runtime(
        private_python: Path, evil_bundle: Callable[[list[str]], str], state_root: str,
        tmp_path: Path, leak_check: Callable[[], None]) -> None:
    before = _digest(private_python)
    cli = _runtime(private_python)
    out = tmp_path / "out"
    subprocess.run([*cli, "--root", state_root, "run", "-d", "--bundle",
                    evil_bundle(sh("sleep 60")), "target"], check=True, timeout=30,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    try:
        with open(out, "w") as f:      # detached: no runtime process waits for it
            subprocess.run([*cli, "--root", state_root, "exec", "-d", "target", "/evil"],
                           stdout=f, stderr=f, timeout=30)
        deadline = time.monotonic() + 10
        while "NOT-WRITTEN" not in _read(out) and "WROTE" not in _read(out) \
                and REFUSAL not in _read(out) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        subprocess.run([*CLI, "--root", state_root, "delete", "--force", "target"],
                       timeout=30)
    assert "WROTE" not in _read(out)
    assert _digest(private_python) == before
    assert REFUSAL in _read(out)


LIBRARY_CALLER = """
import sys
from containerkit import Bundle, NativeDriver, new_container
config = Bundle(sys.argv[1], id="lib", root=sys.argv[2])
c = new_container(config, config.graph_driver(), NativeDriver())
out = open(sys.argv[3], "w")
c.stdout = c.stderr = out
c.create()
c.start()
# and this program exits: the container outlives it, as a build tool's would
"""


def test_proc_self_exe_cannot_write_the_embedding_interpreter(
        private_python: Path, evil_bundle: Callable[[list[str]], str], state_root: str,
        tmp_path: Path, leak_check: Callable[[], None]) -> None:
    before = _digest(private_python)
    paths = [p for p in sys.path if p and ("site-packages" in p or
                                           os.path.isdir(os.path.join(p, "containerkit")))]
    script = tmp_path / "caller.py"
    script.write_text(f"import sys; sys.path[:0] = {paths!r}\n" + LIBRARY_CALLER)
    out = tmp_path / "out"
    subprocess.run([str(private_python), "-I", "-S", str(script), evil_bundle(["/evil"]),
                    state_root, str(out)], check=True, timeout=30)
    try:
        deadline = time.monotonic() + 10
        while not _read(out) and time.monotonic() < deadline:
            time.sleep(0.05)
        _wait_stopped(CLI, state_root, "lib")
    finally:
        subprocess.run([*CLI, "--root", state_root, "delete", "--force", "lib"], timeout=30)
    assert "WROTE" not in _read(out)
    assert _digest(private_python) == before
    assert REFUSAL in _read(out)


# Inside a container that may look at other processes as much as any (CAP_SYS_PTRACE,
# and CAP_SYS_ADMIN for map_files): every executable and mapped file it can see while
# the runtime execs into it, each tried for writing.
WATCH = """
trap 'exit 0' TERM
while :; do
  for p in /proc/[0-9]*; do
    [ "$p" = /proc/$$ ] && continue
    for f in $p/exe $p/map_files/*; do
      t=$(readlink "$f" 2>/dev/null) || continue
      echo "seen $t" >> /dev/shm/seen
      # open for writing, write nothing: were the fix gone, this must not harm the host
      if ( : >> "$f" ) 2>/dev/null; then echo "OPENED $t" >> /dev/shm/seen; fi
      # a memfd of ours: a write is harmless, and the seals must refuse it
      case $t in /memfd:containerkit-*)
        if ( printf X >> "$f" ) 2>/dev/null; then echo "WROTE $t" >> /dev/shm/seen; fi;;
      esac
    done
  done
done
"""


def test_nothing_of_the_runtime_is_reachable_during_exec(
        make_bundle: Callable[..., str], state_root: str, private_python: Path,
        leak_check: Callable[[], None]) -> None:
    def edit(config: dict[str, Any]) -> None:
        caps = config["process"]["capabilities"]
        for kind in ("bounding", "effective", "permitted"):
            caps[kind] += ["CAP_SYS_PTRACE", "CAP_SYS_ADMIN"]

    before = _digest(private_python)
    cli = _runtime(private_python)
    bundle = make_bundle(sh(WATCH), edit)
    subprocess.run([*cli, "--root", state_root, "run", "-d", "--bundle", bundle, "watch"],
                   check=True, timeout=30, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(15):             # the runtime is running: each exec is a window
            subprocess.run([*cli, "--root", state_root, "exec", "watch", "/bin/true"],
                           check=True, timeout=30)
        time.sleep(0.3)                 # and it is not: a last look
        state = json.loads(subprocess.run([*CLI, "--root", state_root, "state", "watch"],
                                          capture_output=True, text=True).stdout)
        with open(f"/proc/{state['pid']}/root/dev/shm/seen") as f:
            seen = {line.strip() for line in f}
    finally:
        subprocess.run([*CLI, "--root", state_root, "delete", "--force", "watch"],
                       timeout=30)
    assert not [s for s in seen if s.startswith("WROTE")], seen
    # only a sealed memfd of ours may be opened for writing (and refuses every write)
    assert not [s for s in seen if s.startswith("OPENED") and
                not s.startswith("OPENED /memfd:containerkit-")], seen
    targets = {s.removeprefix("seen ") for s in seen if s.startswith("seen ")}
    assert targets <= {"/bin/busybox", "/memfd:containerkit-init (deleted)",
                       "/memfd:containerkit-plan (deleted)"}, targets
    assert _digest(private_python) == before


# CVE-2025-52881: the files the runtime writes in procfs must not follow the image's
# symlinks. Here proc is mounted at /realproc, so the image's own /proc is what a plain
# open("/proc/sys/...") after pivot_root would walk: each file it writes leads to a trap
# in the rootfs (in the real attack, to /realproc/sys/kernel/core_pattern and the like).
TRAPS = {"proc/sys/net/ipv4/ip_forward": "/trap-sysctl",
         "proc/self/oom_score_adj": "/trap-oom",
         "proc/self/timens_offsets": "/trap-time"}


def test_procfs_writes_never_follow_the_images_symlinks(
        rootfs: str, tmp_path: Path, state_root: str,
        leak_check: Callable[[], None]) -> None:
    from ckhelpers import run_container

    from containerkit import spec as oci

    root = copy_rootfs(rootfs, str(tmp_path / "root"))
    os.rmdir(os.path.join(root, "proc"))
    for link, trap in TRAPS.items():
        os.makedirs(os.path.join(root, os.path.dirname(link)), exist_ok=True)
        os.symlink(trap, os.path.join(root, link))
        Path(root, trap.lstrip("/")).write_text("")
    config = oci.default_spec(cgroupns=False).to_dict()
    config["root"] = {"path": root, "readonly": False}
    for m in config["mounts"]:
        if m["destination"] == "/proc":
            m["destination"] = "/realproc"
    linux = config["linux"]
    linux["maskedPaths"] = linux["readonlyPaths"] = []
    linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    linux["namespaces"].append({"type": "time"})
    linux["timeOffsets"] = {"boottime": {"secs": 86400, "nanosecs": 0}}
    config["process"]["oomScoreAdj"] = 123
    config["process"]["args"] = sh("""
        echo forward=$(cat /realproc/sys/net/ipv4/ip_forward)
        echo oom=$(cat /realproc/self/oom_score_adj)
        echo uptime=$(cut -d. -f1 /realproc/uptime)
        for t in /trap-*; do echo "$t=[$(cat $t)]"; done
        """)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(config))
    with open("/proc/uptime") as f:
        host_uptime = int(float(f.read().split()[0]))
    status, out = run_container(str(bundle), state_root)
    assert status == 0, out
    assert "forward=1" in out and "oom=123" in out          # each write did land, in place
    uptime = int(out.split("uptime=")[1].split()[0])
    assert uptime >= host_uptime + 86400 - 5, out            # the offset is the container's
    for trap in TRAPS.values():
        assert f"{trap}=[]" in out, out                      # and nothing followed a link
