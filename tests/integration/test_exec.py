"""exec into running containers (library and CLI), ps, and joining namespaces by path.

Every effect is read from inside the container: /proc/self/status, /proc/self/ns/*,
/proc/self/cgroup, the process list of the container's /proc.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from ckhelpers import CLI, sh

from containerkit import (
    Bundle,
    ContainerkitError,
    InvalidState,
    NativeDriver,
    SetupError,
    SpecError,
    UnsupportedError,
    new_container,
)
from containerkit import spec as oci
from containerkit.container import Container
from containerkit.process import proc_state

pytestmark = pytest.mark.usefixtures("leak_check")

SLEEPER = ["sleep", "1000"]
NS = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")


@contextmanager
def running(make_bundle: Callable[..., str], state_root: str, cid: str,
            edit: Callable[[dict[str, Any]], None] | None = None,
            args: list[str] | None = None) -> Iterator[Container]:
    """A started container (deleted, with its exec'd processes, on the way out)."""
    config = Bundle(make_bundle(args or SLEEPER, edit), id=unique(cid), root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        yield c


def unique(name: str) -> str:
    """Container ids are global (cgroup paths): other runs of this file may be going on."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def process(args: list[str], **fields: Any) -> oci.Process:
    doc = {"args": args, "cwd": "/", "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], **fields}
    return oci.Process.from_dict(doc, "process.json")


def exec_output(c: Container, proc: oci.Process) -> tuple[int | None, str]:
    """new_process with stdout+stderr on a pipe; (status, output)."""
    r, w = os.pipe()
    try:
        p = c.new_process(proc, stdout=w, stderr=w)
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    return p.wait(), out


def status_field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in {text!r}")


# -- library ------------------------------------------------------------------------------

def test_exec_joins_namespaces_cgroup_and_root(make_bundle: Callable[..., str],
                                               state_root: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["hostname"] = "exec-host"

    with running(make_bundle, state_root, "exec-join", edit) as c:
        status, out = exec_output(c, process(sh("""
            for n in cgroup ipc mnt net pid time user uts; do
                echo "$n $(readlink /proc/self/ns/$n)"; done
            echo "cgroup=$(grep '^0::' /proc/self/cgroup)"
            echo "host=$(hostname)"
            echo "pid=$$"
            echo "root=$(stat -c %d:%i /) cwd=$(pwd)"
            echo "init=$(cat /proc/1/cmdline | tr '\\0' ' ')"
            """)))
        assert status == 0, out
        lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line
                     and "=" not in line.split(" ", 1)[0])
        for n in NS:
            assert lines[n] == os.readlink(f"/proc/{c.pid}/ns/{n}"), (n, out)
        with open(f"/proc/{c.pid}/cgroup") as f:
            init_cgroup = next(x for x in f.read().splitlines() if x.startswith("0::"))
        assert f"cgroup={init_cgroup}" in out
        assert "host=exec-host" in out
        assert "pid=1\n" not in out and "pid=" in out
        root = os.stat(f"/proc/{c.pid}/root/")
        assert f"root={root.st_dev}:{root.st_ino} cwd=/\n" in out
        assert "init=sleep 1000" in out
    # this thread forks into its own pid namespace again
    assert os.readlink("/proc/thread-self/ns/pid_for_children") == \
        os.readlink("/proc/self/ns/pid")


def test_exec_identity_from_the_process_spec(make_bundle: Callable[..., str],
                                             state_root: str) -> None:
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    proc = process(sh("""
        echo "id=$(id -u):$(id -g) groups=$(id -G)"
        echo "cwd=$(pwd) env=$GREETING umask=$(umask)"
        echo "nofile=$(ulimit -n)"
        grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status
        """), cwd="/tmp", env=["PATH=/bin", "GREETING=hello there"],
        user={"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 0o027},
        capabilities={"bounding": caps, "effective": caps, "permitted": caps,
                      "inheritable": caps, "ambient": caps},
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}],
        noNewPrivileges=True)
    with running(make_bundle, state_root, "exec-ident") as c:
        status, out = exec_output(c, proc)
    assert status == 0, out
    assert "id=1000:1001 groups=1001 5 7" in out
    assert "cwd=/tmp env=hello there umask=0027" in out
    assert "nofile=123" in out
    mask = (1 << 0) | (1 << 5) | (1 << 10)
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status_field(out, field), 16) == mask, (field, out)
    assert status_field(out, "NoNewPrivs") == "1"
    assert status_field(out, "Seccomp") == "0"


@pytest.mark.parametrize("nnp", [True, False])
def test_exec_gets_the_containers_seccomp_filter(make_bundle: Callable[..., str],
                                                 state_root: str, nnp: bool) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 1}]}

    with running(make_bundle, state_root, "exec-seccomp", edit) as c:
        status, out = exec_output(c, process(sh("""
            mkdir /tmp/x 2>&1 || true
            grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status
            """), noNewPrivileges=nnp))
    assert status == 0, out
    assert "Operation not permitted" in out
    assert status_field(out, "Seccomp") == "2"
    assert status_field(out, "NoNewPrivs") == str(int(nnp))


def test_exec_looks_up_the_executable_in_the_containers_path(
        make_bundle: Callable[..., str], state_root: str, tmp_path: Any) -> None:
    with running(make_bundle, state_root, "exec-path") as c:
        # the host has /bin/true too: only the container's PATH and root count
        status, out = exec_output(c, process(["busybox", "echo", "found"], env=["PATH=/bin"]))
        assert (status, out) == (0, "found\n")
        with pytest.raises(SetupError, match=f"cannot exec in container '{c.id}': exec "
                           "'python3': No such file or directory"):
            c.new_process(process(["python3"]))


def test_exec_status_of_a_signalled_process(make_bundle: Callable[..., str],
                                            state_root: str) -> None:
    with running(make_bundle, state_root, "exec-sig") as c:
        p = c.new_process(process(SLEEPER))
        assert p.alive()
        p.signal(signal.SIGTERM)
        assert p.wait() == 128 + signal.SIGTERM
        assert c.status == "running"


def test_exec_processes_are_killed_and_reaped_on_delete(make_bundle: Callable[..., str],
                                                        state_root: str) -> None:
    with running(make_bundle, state_root, "exec-del") as c:
        procs = [c.new_process(process(SLEEPER)) for _ in range(2)]
        assert all(p.pid in c.processes() for p in procs)
        assert c.pid in c.processes()
    # delete (the with block) killed them with the cgroup and reaped them: no zombie
    # (leak_check), and their pidfds are closed
    assert all(p.returncode == 128 + signal.SIGKILL for p in procs)


def test_kill_all_reaches_the_cgroups_below(make_bundle: Callable[..., str],
                                             state_root: str) -> None:
    """A process the container moved into a cgroup of its own below the container's is
    listed by ``ps`` and signalled by ``kill --all`` with any signal (cgroup.kill covers
    only KILL)."""
    with running(make_bundle, state_root, "exec-killall") as c:
        top, below = (c.new_process(process(SLEEPER)) for _ in range(2))
        sub = os.path.join(c.cgroup_path, "sub")
        os.mkdir(sub)
        try:
            with open(os.path.join(sub, "cgroup.procs"), "w") as f:
                f.write(str(below.pid))
            assert sorted(c.processes()) == sorted([c.pid, top.pid, below.pid])
            c.signal(signal.SIGTERM, all=True)
            assert top.wait(timeout=10) == below.wait(timeout=10) == 128 + signal.SIGTERM
        finally:
            for p in (top, below):
                if p.alive():
                    p.signal(signal.SIGKILL)
                    p.wait()
            os.rmdir(sub)


def test_exec_from_a_busy_multithreaded_caller(make_bundle: Callable[..., str],
                                               state_root: str, busy_threads: None) -> None:
    with running(make_bundle, state_root, "exec-threads") as c:
        results: list[tuple[int | None, str]] = []

        def one() -> None:
            results.append(exec_output(c, process(["cat", "/proc/self/cgroup"])))

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r[0] for r in results] == [0] * 4, results
        assert all("containerkit/exec-threads" in r[1] for r in results), results
    assert os.readlink("/proc/thread-self/ns/pid_for_children") == \
        os.readlink("/proc/self/ns/pid")


def test_exec_between_setns_and_execve_is_not_dumpable(make_bundle: Callable[..., str],
                                                       state_root: str) -> None:
    """CVE-2019-5736 class: until execve the exec'd child is a copy of this Python
    process (its exe is the host's interpreter); a process of the container (same uid
    and capabilities, no CAP_SYS_PTRACE) must not reach it through /proc."""
    probe = sh("""
        N=$1
        for t in 1 $N; do
            for f in exe mem fd/0 fd/1 fd/2 fd/3 fd/4 fd/5 cwd/. root/.; do
                if cat /proc/$t/$f </dev/null >/dev/null 2>&1 || [ -d /proc/$t/$f ] &&
                   ls /proc/$t/$f >/dev/null 2>&1; then echo "READ $t $f"; fi
                if (: >> /proc/$t/$f) 2>/dev/null; then echo "WRITE $t $f"; fi
            done
            readlink /proc/$t/exe >/dev/null 2>&1 && echo "LINK $t exe"
        done
        grep CapEff /proc/self/status
        echo probed
        """)
    with running(make_bundle, state_root, "exec-dump") as c:
        assert c.spec.process is not None and c.spec.process.capabilities is not None
        caps = c.spec.process.capabilities.to_dict()   # the init's: no CAP_SYS_PTRACE
        assert "CAP_SYS_PTRACE" not in caps["permitted"]
        hold_r, hold_w = os.pipe()
        try:
            held = c.new_process(process(["true"], capabilities=caps), _hold_fd=hold_r)
        finally:
            os.close(hold_r)
        with open(f"/proc/{held.pid}/status") as f:
            status = f.read()
        nspid = status_field(status, "NSpid").split()[-1]
        # held inside: the container's pid namespace, same capabilities as the probe
        assert os.readlink(f"/proc/{held.pid}/ns/mnt") == os.readlink(f"/proc/{c.pid}/ns/mnt")
        code, out = exec_output(c, process(probe[:3] + ["probe", nspid], capabilities=caps))
        os.write(hold_w, b"x")
        os.close(hold_w)
        assert held.wait() == 0
    assert code == 0 and out.endswith("probed\n"), out
    assert "READ 1 exe" in out and "LINK 1 exe" in out     # the control: the init is open
    assert f" {nspid} " not in out, out
    assert status_field(status, "CapEff") == status_field(out, "CapEff")


def test_exec_refused_unless_running(make_bundle: Callable[..., str], state_root: str) -> None:
    config = Bundle(make_bundle(["true"]), id=unique("exec-state"), root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        with pytest.raises(InvalidState, match=f"cannot exec in container '{c.id}': "
                           "it is created, not running"):
            c.new_process(process(["true"]))
        c.start()
        c.wait()
        with pytest.raises(InvalidState, match="it is stopped, not running"):
            c.new_process(process(["true"]))


@pytest.mark.parametrize("fields,error,match", [
    ({"capabilities": {"effective": ["CAP_NOPE"]}}, SpecError, "CAP_NOPE"),
    ({"apparmorProfile": "x"}, UnsupportedError, "apparmorProfile"),
    ({"selinuxLabel": "x"}, UnsupportedError, "selinuxLabel"),
    ({"execCPUAffinity": {"final": "4095"}}, ContainerkitError, "execCPUAffinity.final"),
    ({"cwd": "tmp"}, SpecError, "cwd"),
    ({"cwd": "/no/such/dir"}, SetupError, "cwd /no/such/dir: No such file or directory"),
    ({"env": ["NOEQUALS"]}, SpecError, "process.env"),
    ({"user": {"uid": 0, "gid": 0}, "args": []}, SpecError, "args"),
])
def test_exec_bad_input(make_bundle: Callable[..., str], state_root: str,
                        fields: dict[str, Any], error: type, match: str) -> None:
    with running(make_bundle, state_root, "exec-bad") as c:
        before = c.processes()
        args = fields.pop("args", ["true"])
        with pytest.raises(error, match=match):
            c.new_process(process(args, **fields))
        assert c.processes() == before


# -- command line ---------------------------------------------------------------------------



class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def cli(state_root: str, tmp_path: Path, *argv: str) -> Result:
    """The CLI as podman runs it; output to files (a detached process keeps them open)."""
    out, err = tmp_path / "cli.out", tmp_path / "cli.err"
    with open(out, "w") as fo, open(err, "w") as fe:
        code = subprocess.run([*CLI, "--root", state_root, *argv], stdin=subprocess.DEVNULL,
                              stdout=fo, stderr=fe, timeout=60).returncode
    return Result(code, out.read_text(), err.read_text())


def one_error_line(res: Result, *needles: str) -> None:
    assert res.returncode != 0, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("containerkit: "), res
    for needle in needles:
        assert needle in lines[0], res


def test_cli_exec_status_output_and_flags(make_bundle: Callable[..., str], state_root: str,
                                          tmp_path: Path) -> None:
    with running(make_bundle, state_root, "exec-cli") as c:
        res = cli(state_root, tmp_path, "exec", c.id, "sh", "-c", "echo hi; exit 3")
        assert res == (3, "hi\n", ""), res
        res = cli(state_root, tmp_path, "exec", c.id, "sh", "-c", "kill -TERM $$")
        assert res.returncode == 128 + signal.SIGTERM, res
        res = cli(state_root, tmp_path, "exec", "--cwd", "/tmp", "-e", "A=b", "--env=C=d",
                  "-u", "1000:1001", "-g", "5", "--additional-gids", "6",
                  "--cap", "CAP_KILL", "-c", "CAP_CHOWN", "--no-new-privs", c.id,
                  "sh", "-c", "echo $(pwd) $A $C $(id -u):$(id -g):$(id -G); "
                  "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status")
        assert res.returncode == 0, res
        assert res.stdout.startswith("/tmp b d 1000:1001:1001 5 6\n"), res
        assert "CAP_CHOWN" not in c.spec.process.capabilities.bounding  # type: ignore
        assert status_field(res.stdout, "NoNewPrivs") == "1"
        # a non-root uid keeps no effective capability across execve unless ambient
        assert status_field(res.stdout, "CapEff") == "0000000000000000"
        assert int(status_field(res.stdout, "CapBnd"), 16) & 0b100001 == 0b100001


def test_cli_exec_process_file_detach_and_pid_file(make_bundle: Callable[..., str],
                                                   state_root: str, tmp_path: Path) -> None:
    doc = {"args": ["sleep", "1000"], "cwd": "/", "env": ["PATH=/bin"],
           "user": {"uid": 0, "gid": 0}}
    (tmp_path / "process.json").write_text(json.dumps(doc))
    pid_file = tmp_path / "exec.pid"
    with running(make_bundle, state_root, "exec-cli-d") as c:
        res = cli(state_root, tmp_path, "exec", "--process", str(tmp_path / "process.json"),
                  "--detach", "--pid-file", str(pid_file), c.id)
        assert res == (0, "", ""), res
        pid = int(pid_file.read_text())
        assert sorted(c.processes()) == sorted([c.pid, pid])
        for n in NS:
            assert os.readlink(f"/proc/{pid}/ns/{n}") == os.readlink(f"/proc/{c.pid}/ns/{n}")
        assert [f for f in os.listdir(tmp_path) if f.startswith("exec.pid.")] == []
        res = cli(state_root, tmp_path, "ps", "--format", "json", c.id)
        assert res.returncode == 0 and sorted(json.loads(res.stdout)) == sorted(c.processes())
        res = cli(state_root, tmp_path, "ps", c.id)
        lines = res.stdout.splitlines()
        assert res.returncode == 0 and lines[0].split()[:2] == ["UID", "PID"], res
        assert sorted(int(line.split()[1]) for line in lines[1:]) == sorted([c.pid, pid])
        res = cli(state_root, tmp_path, "ps", c.id, "-o", "pid,args")
        assert res.returncode == 0, res
        assert sorted(line.split(None, 1)[1] for line in res.stdout.splitlines()[1:]) == \
            ["sleep 1000", "sleep 1000"]
    # delete killed the detached process with the cgroup (its parent, the CLI, is gone)
    assert not os.path.exists(f"/proc/{pid}/ns") or proc_state(pid) in ("Z", "")


def test_cli_exec_forwards_signals(make_bundle: Callable[..., str], state_root: str,
                                   tmp_path: Path) -> None:
    with running(make_bundle, state_root, "exec-cli-sig") as c:
        r, w = os.pipe()
        cmd = [*CLI, "--root", state_root, "exec", c.id, "sh", "-c",
               "trap 'echo got; exit 7' TERM; echo ready; while :; do sleep 0.05; done"]
        with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=w) as proc:
            os.close(w)
            with os.fdopen(r, "rb") as f:
                assert f.readline() == b"ready\n"
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 7
                assert f.read() == b"got\n"
        assert c.processes() == [c.pid]


@pytest.mark.parametrize("flags,command,needles", [
    ([], ["true"], ("cannot exec in container", "it is created, not running")),
    (["--cap", "CAP_NOPE"], ["true"], ("--cap CAP_NOPE: unknown capability",)),
    ([], ["no-such-program"], ("no such file or directory",)),
    (["--pid-file", "/nonexistent/dir/pid"], ["sleep", "100"],
     ("--pid-file", "/nonexistent", "no such file or directory")),
    (["-t", "-d"], ["sh"], ("cannot allocate tty if containerkit will detach without",)),
    (["--console-socket", "/nonexistent.sock"], ["sh"], ("cannot use console socket",)),
    (["-t", "-d", "--console-socket", "/nonexistent.sock"], ["sh"],
     ("--console-socket /nonexistent.sock: no such file or directory",)),
    (["--preserve-fds", "40"], ["sh"], ("--preserve-fds 40: fd", "is not open")),
    # fd 3 is closed in the caller: said so, not taken for the init's pidfd
    (["--preserve-fds", "1"], ["sh"], ("--preserve-fds 1: fd 3 is not open",)),
    (["--apparmor", "x"], ["sh"], ("--apparmor", "apparmor is not enabled on this host")),
    (["--process-label", "x"], ["sh"], ("--process-label", "selinux")),
    (["-u", "root"], ["sh"], ("--user 'root': expected UID[:GID]",)),
    (["--process", "/nonexistent.json"], [], ("--process /nonexistent.json: no such file",)),
    ([], [], ("a command is required",)),
])
def test_cli_exec_bad_input(make_bundle: Callable[..., str], state_root: str,
                            tmp_path: Path, flags: list[str], command: list[str],
                            needles: tuple[str, ...]) -> None:
    config = Bundle(make_bundle(SLEEPER), id=unique("exec-cli-bad"), root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        if "created" not in needles[-1]:
            c.start()
        before = c.processes()
        res = cli(state_root, tmp_path, "exec", *flags, c.id, *command)
        one_error_line(res, *needles)
        assert c.processes() == before


def test_cli_exec_and_ps_of_stopped_or_unknown_container(make_bundle: Callable[..., str],
                                                         state_root: str,
                                                         tmp_path: Path) -> None:
    config = Bundle(make_bundle(["true"]), id=unique("exec-cli-stopped"), root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        c.wait()
        one_error_line(cli(state_root, tmp_path, "exec", c.id, "true"),
                       f"cannot exec in container '{c.id}': it is stopped, "
                       "not running")
        one_error_line(cli(state_root, tmp_path, "ps", c.id), "stopped")
    one_error_line(cli(state_root, tmp_path, "exec", "nope", "true"), "does not exist")
    one_error_line(cli(state_root, tmp_path, "ps", "nope"), "does not exist")


def _read_pty(master: int) -> bytes:
    out = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:             # EIO: every copy of the peer is closed
            return out
        if not data:
            return out
        out += data


def test_exec_with_a_terminal(make_bundle: Callable[..., str], state_root: str) -> None:
    with running(make_bundle, state_root, "exec-tty") as c:
        before = open(f"/proc/{c.pid}/mountinfo").read()
        p = c.new_process(process(sh("""
            tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty
            ps -o pid,tty | grep "^ *$$ " | tr -s ' '
            """), terminal=True, consoleSize={"height": 30, "width": 100}))
        assert p.terminal is not None
        out = _read_pty(p.terminal.fileno()).decode()
        p.terminal.close()
        assert p.wait() == 0, out
        assert out.startswith("/dev/pts/"), out
        assert "all-tty" in out
        # no /dev/console bind for an exec'd process (that is the init's)
        assert open(f"/proc/{c.pid}/mountinfo").read() == before


def test_cli_exec_tty_console_socket_and_preserved_fds(make_bundle: Callable[..., str],
                                                       state_root: str,
                                                       tmp_path: Path) -> None:
    import array
    import socket

    with running(make_bundle, state_root, "exec-cli-tty") as c:
        # a detached exec with a terminal: the master arrives on the console socket
        path = str(tmp_path / "console.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(path)
            server.listen(1)
            res = cli(state_root, tmp_path, "exec", "-t", "-d", "--console-socket", path,
                      c.id, "sh", "-c", "tty; read x; echo got $x")
            assert res == (0, "", ""), res
            conn, _ = server.accept()
            with conn:
                fds = array.array("i")
                msg, anc, _, _ = conn.recvmsg(64, socket.CMSG_SPACE(fds.itemsize))
                fds.frombytes(anc[0][2])
            master = fds[0]
            try:
                assert msg == b"/dev/ptmx"
                os.write(master, b"hello\n")
                out = _read_pty(master).decode()
            finally:
                os.close(master)
        assert out.startswith("/dev/pts/") and "got hello" in out, out
        # the foreground exec -t relays between its stdio and the pty
        proc = subprocess.run([*CLI, "--root", state_root, "exec", "-t", c.id,
                               "sh", "-c", "tty; exit 6"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=60)
        assert proc.returncode == 6, proc
        assert proc.stdout.startswith(b"/dev/pts/"), proc
        # --preserve-fds: fd 3 of the caller is fd 3 of the process
        r, w = os.pipe()
        os.write(w, b"through fd 3\n")
        os.close(w)
        try:
            proc = subprocess.run([*CLI, "--root", state_root, "exec", "--preserve-fds", "1",
                                   c.id, "sh", "-c", "cat <&3; ls /proc/self/fd"],
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                                  preexec_fn=lambda: os.dup2(r, 3), pass_fds=(3,))
        finally:
            os.close(r)
        assert proc.returncode == 0, proc
        assert proc.stdout.decode().startswith("through fd 3\n"), proc
        assert c.processes() == [c.pid]


# -- joining namespaces by path at create ---------------------------------------------------

def _join(*types: str, of: int) -> Callable[[dict[str, Any]], None]:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] not in types]
        cfg["linux"]["namespaces"] += [{"type": t, "path": f"/proc/{of}/ns/{n}"}
                                       for t, n in (("pid", "pid"), ("network", "net"),
                                                    ("mount", "mnt"), ("ipc", "ipc"))
                                       if t in types]
    return edit


@pytest.mark.parametrize("share_memory", [True, False])
def test_create_joins_pid_and_network_namespaces_by_path(make_bundle: Callable[..., str],
                                                         state_root: str,
                                                         share_memory: bool) -> None:
    with running(make_bundle, state_root, "join-a") as a:
        script = sh("""
            echo "pid $(readlink /proc/self/ns/pid) net $(readlink /proc/self/ns/net)"
            echo "me $$"
            ps -o pid,args | tr -s ' '
            """)
        config = Bundle(make_bundle(script, _join("pid", "network", of=a.pid)),
                        id=unique("join-b"), root=state_root)
        r, w = os.pipe()
        with new_container(config, config.graph_driver(), NativeDriver(share_memory)) as b:
            b.stdout = b.stderr = w
            b.create()
            os.close(w)
            # B's init is in A's pid namespace (not its pid 1) and cgroup of its own
            assert os.readlink(f"/proc/{b.pid}/ns/pid") == os.readlink(f"/proc/{a.pid}/ns/pid")
            assert b.cgroup_path != a.cgroup_path and b.pid in b.processes()
            b.start()
            assert b.wait() == 0
            with os.fdopen(r, "rb") as f:
                out = f.read().decode()
        assert f"pid {os.readlink(f'/proc/{a.pid}/ns/pid')} " \
               f"net {os.readlink(f'/proc/{a.pid}/ns/net')}\n" in out, out
        assert "me 1\n" not in out
        assert " 1 sleep 1000\n" in out, out       # A's init, seen from B's own /proc
        assert os.readlink("/proc/thread-self/ns/pid_for_children") == \
            os.readlink("/proc/self/ns/pid")


def test_create_joins_a_pid_namespace_then_exec_into_it(make_bundle: Callable[..., str],
                                                        state_root: str) -> None:
    with running(make_bundle, state_root, "join-pa") as a:
        config = Bundle(make_bundle(SLEEPER, _join("pid", of=a.pid)), id=unique("join-pb"),
                        root=state_root)
        with new_container(config, config.graph_driver(), NativeDriver()) as b:
            b.create()
            b.start()
            status, out = exec_output(b, process(["sh", "-c", "readlink /proc/self/ns/pid"]))
            assert (status, out) == (0, os.readlink(f"/proc/{a.pid}/ns/pid") + "\n")


def test_create_joins_a_mount_namespace_by_path(make_bundle: Callable[..., str],
                                                state_root: str, tmp_path: Path) -> None:
    """B is set up in a mount namespace that another process made (still with the host's
    paths): its mounts and pivot_root stay in that namespace, none reaches the host's."""
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               "echo ready; exec sleep 1000"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        mnt = os.readlink(f"/proc/{holder.pid}/ns/mnt")
        assert mnt != os.readlink("/proc/self/ns/mnt")
        config = Bundle(make_bundle(sh("readlink /proc/self/ns/mnt; ls /bin/busybox"),
                                    _join("mount", of=holder.pid)),
                        id=unique("join-m"), root=state_root)
        r, w = os.pipe()
        with new_container(config, config.graph_driver(), NativeDriver()) as b:
            b.stdout = b.stderr = w
            b.create()
            os.close(w)
            assert os.readlink(f"/proc/{b.pid}/ns/mnt") == mnt
            with open(f"/proc/{b.pid}/mountinfo") as f:
                inside = f.read()
            assert " /proc " in inside and " /dev " in inside
            with open("/proc/self/mountinfo") as f:       # nothing of it in ours
                assert config.rootfs() not in f.read()
            b.start()
            assert b.wait() == 0
            with os.fdopen(r, "rb") as f:
                assert f.read().decode() == f"{mnt}\n/bin/busybox\n"
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_exec_cpu_affinity(make_bundle: Callable[..., str], state_root: str) -> None:
    first, second = sorted(os.sched_getaffinity(0))[:2]
    ours = status_field(open("/proc/self/status").read(), "Cpus_allowed_list")
    with running(make_bundle, state_root, "exec-cpus") as c:
        # initial: the setup runs there (seen while held before execve); final: after
        hold_r, hold_w = os.pipe()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            held = c.new_process(process(["grep", "Cpus_allowed_list", "/proc/self/status"],
                                         execCPUAffinity={"initial": str(first),
                                                          "final": str(second)}),
                                 stdout=devnull, _hold_fd=hold_r)
        finally:
            os.close(hold_r)
            os.close(devnull)
        with open(f"/proc/{held.pid}/status") as f:
            assert status_field(f.read(), "Cpus_allowed_list") == str(first)
        os.write(hold_w, b"x")
        os.close(hold_w)
        assert held.wait() == 0
        status, out = exec_output(c, process(["grep", "Cpus_allowed_list", "/proc/self/status"],
                                             execCPUAffinity={"final": str(second)}))
        assert (status, status_field(out, "Cpus_allowed_list")) == (0, str(second))
        # initial only: back to what the kernel gave it before execve
        status, out = exec_output(c, process(["grep", "Cpus_allowed_list", "/proc/self/status"],
                                             execCPUAffinity={"initial": str(first)}))
        assert (status, status_field(out, "Cpus_allowed_list")) == (0, ours)


def test_ps_lists_processes_in_the_containers_sub_cgroups(make_bundle: Callable[..., str],
                                                          state_root: str,
                                                          tmp_path: Path) -> None:
    with running(make_bundle, state_root, "exec-subcg") as c:
        p = c.new_process(process(SLEEPER))
        sub = os.path.join(c.cgroup_path, "sub")
        os.mkdir(sub)
        try:
            with open(os.path.join(sub, "cgroup.procs"), "w") as f:
                f.write(str(p.pid))
            assert sorted(c.processes()) == sorted([c.pid, p.pid])
            res = cli(state_root, tmp_path, "ps", "--format", "json", c.id)
            assert sorted(json.loads(res.stdout)) == sorted([c.pid, p.pid]), res
        finally:
            p.signal(signal.SIGKILL)
            p.wait()
            os.rmdir(sub)
