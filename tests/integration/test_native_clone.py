"""The two clone paths of the native module, without a container around them.

``syscalls.clone`` returns in a Python child (GIL and fork hooks taken around the
clone); ``syscalls.spawn`` runs a plan of C ops in the child up to execve. The spawn
tests here use only ops that are harmless in the host's namespaces.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from contextlib import closing
from typing import Any

import pytest

from containerkit import Bundle, NativeDriver, new_container, syscalls
from containerkit.errors import SetupError
from containerkit.native import ops, sync
from containerkit.native.ops import OpArray, Step

pytestmark = pytest.mark.usefixtures("leak_check")


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


SHARED_VM = platform.machine() == "x86_64"     # ck_spawn's CLONE_VM child

_memory: dict[int, syscalls.ChildMemory] = {}  # pid -> its region, released once reaped


def _spawn(make: Callable[[int, int], list[Step]], flags: int = 0) -> tuple[int, Any, int]:
    """spawn the steps ``make(sync_fd, release_fd)`` builds; returns (pid, parent end of
    the sync socket, write end of the release pipe) with the pidfd closed."""
    parent, child = sync.channel()
    release_r, release_w = os.pipe2(os.O_CLOEXEC)
    try:
        array = OpArray(make(child.fileno(), release_r))
        pid, pidfd, _, memory = syscalls.spawn(flags, -1, array.ops, child.fileno())
        os.close(pidfd)
        if memory is not None:
            _memory[pid] = memory
    except BaseException:
        parent.close()
        os.close(release_w)
        raise
    finally:
        child.close()
        os.close(release_r)
    return pid, parent, release_w


def _exit_code(pid: int) -> int:
    status = os.waitpid(pid, 0)[1]
    memory = _memory.pop(pid, None)
    if memory is not None:          # reaped: the child cannot run on it any more
        memory.release()
    return os.waitstatus_to_exitcode(status)


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
        with closing(sock):
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
    with closing(sock):
        msg = sync.read_message(sock)
    assert _exit_code(pid) == 1
    with pytest.raises(SetupError, match=f"container init: exec 'program': {err}"):
        sync.raise_if_error(msg)


def test_spawn_without_execve_is_an_error() -> None:
    pid, sock, release = _spawn(lambda sync_fd, fifo: _steps(
        ("reset signals", ops.reset_signals())))
    os.close(release)
    with closing(sock):
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
    with closing(sock):
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
        with closing(sock):
            assert sync.read_message(sock) == b""
        assert _exit_code(pid) == 0


def _region_start(pid: int) -> int:
    memory = next(m for p, m in _memory.items() if p == pid)
    return int(syscalls.ffi.cast("uintptr_t", memory._base))


@pytest.mark.skipif(not SHARED_VM, reason="the shared-memory child is x86_64 only")
def test_spawn_shares_the_address_space() -> None:
    """The child runs in this address space (its own stack and plan copy, in the region
    spawn returned) until its execve, which closes the sync socket."""
    pid, sock, release = _spawn(lambda sync_fd, fifo: _steps(
        ("reset signals", ops.reset_signals()),
        ("created", ops.report_created_and_wait(sync_fd, fifo)),
        ("exec", ops.find_executable((b"/bin/true",))),
        ("exec", ops.execve((b"true",), (), 0o022)),
    ))
    with closing(sock):
        sync.expect_created(sock)
        with open(f"/proc/{pid}/maps") as f:
            starts = {int(line.split("-", 1)[0], 16) for line in f}
        with open("/proc/self/maps") as f:
            assert starts == {int(line.split("-", 1)[0], 16) for line in f}
        assert _region_start(pid) in starts
        os.write(release, b"0")
        os.close(release)
        assert sync.read_message(sock) == b""               # execve closed it
    assert _exit_code(pid) == 0


@pytest.mark.parametrize("flags,extra", [
    (0, ops.unshare(syscalls.CLONE_NEWTIME)),       # in an op: scanned, never reached
    (0, ops.unshare(syscalls.CLONE_NEWUSER)),
    (0, ops.setns(0, 0)),                           # nstype 0: any, a user ns too
    (syscalls.CLONE_NEWTIME, None),
    (0, ops.write_proc(0, b"self/oom_score_adj", b"0")),  # would set the parent's
    (0, ops.write_proc(0, b"self/coredump_filter", b"0")),  # the mm's own
    (0, ops.set_user(4242, 4242, [], True)),        # would make the parent's mm undumpable
])
def test_spawn_fork_like_when_the_mm_must_not_be_shared(flags: int,
                                                        extra: ops.Op | None) -> None:
    """Plans the kernel refuses to a process sharing its mm, or whose effects would reach
    the parent through it, get a fork-like child, with the same results."""
    pid, sock, release = _spawn(lambda sync_fd, fifo: _steps(
        ("reset signals", ops.reset_signals()),
        ("exec", ops.find_executable((b"/no/such/program",)), "'program'"),
        *([("extra", extra)] if extra else []),
    ), flags=flags)
    assert pid not in _memory
    os.close(release)
    with closing(sock):
        msg = sync.read_message(sock)
    assert _exit_code(pid) == 1
    assert msg == sync.encode_error("exec", 2, "'program'")


@pytest.mark.skipif(not SHARED_VM, reason="the shared-memory child is x86_64 only")
def test_spawn_same_user_or_sysctl_shares_the_mm() -> None:
    pid, sock, release = _spawn(lambda sync_fd, fifo: _steps(
        ("reset signals", ops.reset_signals()),
        ("user", ops.set_user(os.geteuid(), os.getegid(), [], True)),
        ("exec", ops.find_executable((b"/bin/true",))),
        ("exec", ops.execve((b"true",), (), 0o022)),
        ("sysctl", ops.write_proc(0, b"sys/kernel/domainname", b"x")),  # never reached
    ))
    assert pid in _memory
    os.close(release)
    with closing(sock):
        assert sync.read_message(sock) == b""
    assert _exit_code(pid) == 0


CREATOR = """
import gc, os, sys
from containerkit import syscalls
from containerkit.native import ops, sync
from containerkit.native.ops import OpArray, Step

fifo = os.open(sys.argv[1], os.O_RDWR | os.O_CLOEXEC)
parent, child = sync.channel()
steps = [Step(name, op[0], op[1], "") for name, op in (
    ("reset signals", ops.reset_signals()),
    ("fds", ops.close_fds_except((child.fileno(), fifo))),
    ("created", ops.report_created_and_wait(child.fileno(), fifo)),
    ("exec", ops.find_executable((b"/bin/sh",))),
    ("exec", ops.execve((b"sh", b"-c", b"echo $WHO > " + sys.argv[2].encode()),
                        (b"WHO=init after its creator",), 0o022)),
)]
array = OpArray(steps)
pid, pidfd, _, memory = syscalls.spawn(0, -1, array.ops, child.fileno())
child.close()
sync.expect_created(parent)
print(pid, memory is not None, flush=True)
del array, steps                 # the parent's copies go, and their memory is reused
gc.collect()
junk = [bytes([i % 256]) * 4096 for i in range(5000)]
"""


def test_spawned_init_outlives_its_creator(tmp_path: Any) -> None:
    """As `containerkit create`: the creating process exits while the init waits; the
    init still finds its plan (its own copy, in a region the creator never unmaps)."""
    fifo, out = tmp_path / "fifo", tmp_path / "out"
    os.mkfifo(fifo, 0o600)
    with open(tmp_path / "stdout", "w+") as stdout, open(tmp_path / "stderr", "w+") as stderr:
        # files, not pipes: the init keeps its copies of them until it exits
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CREATOR), str(fifo),
                               str(out)], stdin=subprocess.DEVNULL, stdout=stdout,
                              stderr=stderr, timeout=30)
        stdout.seek(0)
        stderr.seek(0)
        assert proc.returncode == 0, stderr.read()
        pid_text, shared = stdout.read().split()
    assert shared == str(SHARED_VM)
    with open(f"/proc/{pid_text}/status") as f:       # waiting for the release
        assert any(line.split() == ["State:", "S", "(sleeping)"] for line in f)
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
    deadline = time.monotonic() + 10
    while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out.read_text() == "init after its creator\n"


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
pid, pidfd, _, _ = syscalls.spawn(0, -1, array.ops, child.fileno())
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
