"""The two clone paths of the native module, without a container around them.

``syscalls.clone`` returns in a Python child (GIL and fork hooks taken around the
clone); ``syscalls.spawn`` runs a plan of C ops in the child up to execve. The spawn
tests here use only ops that are harmless in the host's namespaces.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from containerkit import Bundle, NativeDriver, new_container, syscalls
from containerkit.errors import SetupError
from containerkit.native import ops, sync
from containerkit.native.ops import OpArray, Step

pytestmark = pytest.mark.usefixtures("leak_check")


@pytest.fixture
def busy_threads(leak_check: Callable[[], None]) -> Iterator[None]:
    """One thread that holds the GIL most of the time, one that allocates (started after
    the leak check's snapshot, which is slow while they compete for the GIL)."""
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    def churn() -> None:
        while not stop.is_set():
            _ = [str(i) * 10 for i in range(1000)]

    threads = [threading.Thread(target=f, daemon=True) for f in (spin, churn)]
    for t in threads:
        t.start()
    yield
    stop.set()
    for t in threads:
        t.join()


def _clone_exit_7() -> None:
    pid, pidfd, _ = syscalls.clone(0)
    if pid == 0:                      # the Python child
        os._exit(7)
    try:
        assert pidfd >= 0
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 7
    finally:
        os.close(pidfd)


def test_clone_returns_in_a_python_child() -> None:
    _clone_exit_7()


@pytest.mark.usefixtures("busy_threads")
def test_clone_while_other_threads_run() -> None:
    for _ in range(20):
        _clone_exit_7()


# -- spawn: the C child ---------------------------------------------------------------

def _steps(*items: tuple[str, ops.Op] | tuple[str, ops.Op, str]) -> list[Step]:
    return [Step(item[0], item[1][0], item[1][1], item[2] if len(item) > 2 else "")
            for item in items]


def _spawn(make: Callable[[int, int], list[Step]]) -> tuple[int, Any, int]:
    """spawn the steps ``make(sync_fd, release_fd)`` builds; returns (pid, parent end of
    the sync socket, write end of the release pipe) with the pidfd closed."""
    parent, child = sync.channel()
    release_r, release_w = os.pipe2(os.O_CLOEXEC)
    try:
        array = OpArray(make(child.fileno(), release_r))
        pid, pidfd, _ = syscalls.spawn(0, -1, array.ops, child.fileno())
        os.close(pidfd)
    except BaseException:
        parent.close()
        os.close(release_w)
        raise
    finally:
        child.close()
        os.close(release_r)
    return pid, parent, release_w


def _exit_code(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_spawn_runs_the_ops_and_execs(tmp_path: Any) -> None:
    out = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    leaked = os.open("/etc/hostname", os.O_RDONLY)       # inheritable: must not cross
    os.set_inheritable(leaked, True)
    script = "echo $GREETING; umask; grep -E '^Sig(Blk|Ign)' /proc/self/status; ls /proc/self/fd"
    try:
        pid, sock, release = _spawn(lambda sync_fd, fifo: _steps(
            ("reset signals", ops.reset_signals()),
            ("stdio", ops.stdio((null, out, out))),
            ("fds", ops.close_fds_except((sync_fd, fifo))),
            ("fds", ops.cloexec_from(3)),
            ("exec", ops.find_executable((b"/no/such/dir/sh", b"/etc/passwd", b"/bin/sh")),
             "'sh'"),
            ("created", ops.report_created_and_wait(sync_fd, fifo)),
            ("exec", ops.execve((b"sh", b"-c", script.encode()), (b"GREETING=hi there",),
                                0o027), "'sh'"),
        ))
        with sock:
            sync.expect_created(sock)
            assert os.lseek(out, 0, os.SEEK_END) == 0          # waits for the release
            os.write(release, b"0")
            os.close(release)
            assert sync.read_message(sock) == b""               # execve closed it
        assert _exit_code(pid) == 0
        os.lseek(out, 0, os.SEEK_SET)
        text = os.read(out, 4096).decode()
    finally:
        for fd in (out, null, leaked):
            os.close(fd)
    assert text.splitlines()[:4] == ["hi there", "0027", "SigBlk:\t0000000000000000",
                                     "SigIgn:\t0000000000000000"]
    assert sorted(text.split()[7:]) == ["0", "1", "2", "3"]     # 3: ls's directory


@pytest.mark.parametrize("candidates,err", [
    ((b"/no/such/program",), "No such file or directory"),
    ((b"/no/such/program", b"/etc/passwd"), "Permission denied"),
    ((b"/etc/passwd/x",), "No such file or directory"),             # ENOTDIR: as ENOENT
])
def test_spawn_reports_the_failing_op(candidates: tuple[bytes, ...], err: str) -> None:
    pid, sock, release = _spawn(lambda sync_fd, fifo: _steps(
        ("reset signals", ops.reset_signals()),
        ("exec", ops.find_executable(candidates), "'program'"),
        ("created", ops.report_created_and_wait(sync_fd, fifo)),
    ))
    os.close(release)
    with sock:
        msg = sync.read_message(sock)
    assert _exit_code(pid) == 1
    with pytest.raises(SetupError, match=f"container init: exec 'program': {err}"):
        sync.raise_if_error(msg)


def test_spawn_without_execve_is_an_error() -> None:
    pid, sock, release = _spawn(lambda sync_fd, fifo: _steps(
        ("reset signals", ops.reset_signals())))
    os.close(release)
    with sock:
        msg = sync.read_message(sock)
    assert _exit_code(pid) == 1
    assert msg == sync.encode_error("exec", 8, "plan ended without execve")


@pytest.mark.parametrize("message,created", [(sync.CGROUP, True), (b"NOPE", False)])
def test_spawn_waits_for_the_parent(message: bytes, created: bool) -> None:
    """Without CLONE_INTO_CGROUP the child goes on only after the parent's CGROUP."""
    pid, sock, release = _spawn(lambda sync_fd, fifo: _steps(
        ("reset signals", ops.reset_signals()),
        ("wait for cgroup", ops.wait_parent(sync_fd)),
        ("fds", ops.close_fds_except((sync_fd, fifo))),   # its copy of the write end too
        ("created", ops.report_created_and_wait(sync_fd, fifo)),
    ))
    os.close(release)                  # a created child reads EOF and ends the plan
    with sock:
        sock.send(message)
        msg = sync.read_message(sock)
    assert _exit_code(pid) == 1
    if created:
        assert msg == sync.CREATED
    else:
        assert msg == sync.encode_error("wait for cgroup", 71, "")      # EPROTO


@pytest.mark.usefixtures("busy_threads")
def test_spawn_while_other_threads_run() -> None:
    for _ in range(20):
        pid, sock, release = _spawn(lambda sync_fd, fifo: _steps(
            ("reset signals", ops.reset_signals()),
            ("exec", ops.find_executable((b"/bin/true",))),
            ("exec", ops.execve((b"true",), (), 0o022)),
        ))
        os.close(release)
        with sock:
            assert sync.read_message(sock) == b""
        assert _exit_code(pid) == 0


SWAP = """
import os, sys
from containerkit import syscalls
from containerkit.native import ops, sync
from containerkit.native.ops import OpArray, Step

r_in, w_in = os.pipe()
os.write(w_in, b"from stdin\\n")
os.close(w_in)
out = os.open(sys.argv[1], os.O_WRONLY)
os.dup2(r_in, 1)                 # the container's stdin sits on 1,
os.dup2(out, 0)                  # its stdout on 0: stdio (1, 0, 2) swaps them
os.close(r_in)
os.close(out)
parent, child = sync.channel()
steps = [Step(name, op[0], op[1], "") for name, op in (
    ("reset signals", ops.reset_signals()),
    ("stdio", ops.stdio((1, 0, 2))),
    ("fds", ops.close_fds_except((child.fileno(),))),
    ("exec", ops.find_executable((b"/bin/sh",))),
    ("exec", ops.execve((b"sh", b"-c", b"cat; ls /proc/self/fd"), (), 0o022)),
)]
array = OpArray(steps)
pid, pidfd, _ = syscalls.spawn(0, -1, array.ops, child.fileno())
child.close()
sync.raise_if_error(sync.read_message(parent))
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_spawn_stdio_swap_does_not_clobber(tmp_path: Any) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(SWAP), str(out)],
                          stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = out.read_text().split()
    assert lines[:2] == ["from", "stdin"]
    assert sorted(lines[2:]) == ["0", "1", "2", "3"]


def test_container_without_clone_into_cgroup(make_bundle: Callable[..., str], state_root: str,
                                             monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Any) -> None:
    """As on a kernel without CLONE_INTO_CGROUP: the plan waits for the parent to move
    the child, before it unshares the cgroup namespace."""
    monkeypatch.setattr(syscalls, "clone3_into_cgroup", lambda: False)

    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "cgroup"})

    bundle = make_bundle(["sh", "-c", "cat /proc/self/cgroup; cat /sys/fs/cgroup/cgroup.procs"],
                         edit)
    config = Bundle(bundle, id="noclone3", root=state_root)
    with open(tmp_path / "out", "w+") as out:
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.stdout = out
            c.create()
            c.start()
            assert c.wait(timeout=30) == 0
        out.seek(0)
        lines = out.read().splitlines()
    # the namespace was made inside the container's cgroup, and only the init is there
    assert [line for line in lines if line.startswith("0::")] == ["0::/"]
    assert lines[-1] == "1"
