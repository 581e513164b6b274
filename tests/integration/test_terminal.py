"""Terminals (process.terminal, --console-socket, run -t), --preserve-fds and the session
keyring, checked from inside real containers (root).
"""

from __future__ import annotations

import array
import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ckhelpers import CLI, is_open, run_container

from containerkit import Bundle, NativeDriver, new_container
from containerkit.busybox import make_rootfs
from containerkit.errors import ContainerkitError

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.usefixtures("leak_check")]



def tty_config(rows: int = 33, cols: int = 77) -> Callable[[dict[str, Any]], None]:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["terminal"] = True
        cfg["process"]["consoleSize"] = {"height": rows, "width": cols}
    return edit


def read_until_hangup(fd: int, want: bytes | None = None) -> bytes:
    """What the pty shows until it hangs up (EIO) or ``want`` appears. The select timeout
    only keeps a broken run from hanging the suite."""
    out = b""
    while want is None or want not in out:
        ready, _, _ = select.select([fd], [], [], 60)
        assert ready, f"the terminal went silent; so far: {out!r}"
        try:
            data = os.read(fd, 4096)
        except OSError:          # EIO: every copy of the peer is closed
            break
        if not data:
            break
        out += data
    return out


def lib_run(bundle: str, root: str, cid: str, driver: NativeDriver | None = None,
            **attrs: Any) -> tuple[int | None, str]:
    """Create, start, read the terminal to the end, wait, delete."""
    config = Bundle(bundle, id=cid, root=root)
    with new_container(config, config.graph_driver(), driver or NativeDriver()) as c:
        for k, v in attrs.items():
            setattr(c, k, v)
        c.create()
        assert c.terminal is not None
        c.start()
        out = read_until_hangup(c.terminal.fileno())
        return c.wait(), out.decode()


def cli(root: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--root", root, *args], capture_output=True, text=True,
                          **kw)


# -- process.terminal ---------------------------------------------------------------------

@pytest.mark.parametrize("no_pivot", [False, True])
def test_terminal_inside(make_bundle: Callable[..., str], state_root: str,
                         no_pivot: bool) -> None:
    script = ("tty; stty size; cat /proc/1/stat; ls -ln /dev/console; "
              "ls -l /proc/1/fd | grep -c pts/0")
    bundle = make_bundle(["/bin/sh", "-c", script], tty_config(33, 77))
    status, out = lib_run(bundle, state_root, "term-inside", NativeDriver(no_pivot=no_pivot))
    assert status == 0, out
    lines = out.replace("\r", "").splitlines()
    assert lines[0] == "/dev/pts/0"
    assert lines[1] == "33 77"
    stat = lines[2].rsplit(")", 1)[1].split()
    sid, tty_nr = int(stat[3]), int(stat[4])
    assert sid == 1                                 # the init leads its own session
    assert tty_nr == (136 << 8 | 0)                 # ... whose controlling tty is pts/0
    assert lines[3].startswith("c") and "136,   0" in lines[3]   # /dev/console is the pty
    assert lines[4] == "3"                          # 0, 1 and 2 are the pty


def test_terminal_for_a_non_root_user_is_its_own(make_bundle: Callable[..., str],
                                                 state_root: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        tty_config()(cfg)
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle = make_bundle(["/bin/sh", "-c", "stat -c %u $(tty); echo ok > $(tty)"], edit)
    status, out = lib_run(bundle, state_root, "term-user")
    assert status == 0, out
    assert out.replace("\r", "").splitlines() == ["1000", "ok"]


def test_without_devpts_terminal_is_an_error(make_bundle: Callable[..., str],
                                             state_root: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        tty_config()(cfg)
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/dev/pts"]
    config = Bundle(make_bundle(["/bin/true"], edit), id="term-nopts", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        with pytest.raises(ContainerkitError, match="terminal.*/dev/ptmx"):
            c.create()


@pytest.fixture
def open_rootfs() -> Iterator[str]:
    """A rootfs whose path a mapped root can walk (not under pytest's 0700 tmp)."""
    path = tempfile.mkdtemp(prefix="ck-term-")
    os.chmod(path, 0o755)
    yield make_rootfs(os.path.join(path, "rootfs"))
    shutil.rmtree(path)


@pytest.mark.parametrize("two_stage", [False, True])
def test_init_leads_its_own_session_without_a_terminal(
        make_bundle: Callable[..., str], state_root: str, two_stage: bool,
        request: pytest.FixtureRequest) -> None:
    def edit(cfg: dict[str, Any]) -> None:     # the init forked by a first child
        cfg["root"]["path"] = request.getfixturevalue("open_rootfs")
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "network"]
        cfg["linux"]["namespaces"] += [{"type": "user"},
                                       {"type": "network", "path": "/proc/self/ns/net"}]
        cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = [
            {"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle = make_bundle(["/bin/sh", "-c", "cat /proc/1/stat"], edit if two_stage else None)
    status, out = run_container(bundle, state_root, "term-session")
    assert status == 0, out
    stat = out.rsplit(")", 1)[1].split()
    assert (stat[2], stat[3], stat[4]) == ("1", "1", "0")    # pgrp, session (runc's), no tty


# -- --console-socket ---------------------------------------------------------------------

class ConsoleServer:
    """A console socket like conmon's: accepts one connection, receives the master."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.payload = b""
        self.fds: list[int] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            msg, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(16))
            self.payload = msg
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(data[:len(data) - len(data) % 4])
                    self.fds += list(fds)

    def close(self) -> None:
        self.sock.close()
        for fd in self.fds:
            os.close(fd)


def test_console_socket_gets_the_master(make_bundle: Callable[..., str], state_root: str,
                                        tmp_path: Path) -> None:
    bundle = make_bundle(["/bin/sh"], tty_config())
    server = ConsoleServer(str(tmp_path / "console.sock"))
    try:
        r = cli(state_root, "create", "--bundle", bundle, "--console-socket", server.path,
                "term-sock")
        assert r.returncode == 0, r.stderr
        server.thread.join()
        assert server.payload == b"/dev/ptmx"           # runc's name for the fd
        assert len(server.fds) == 1
        master = server.fds[0]
        assert cli(state_root, "start", "term-sock").returncode == 0
        os.write(master, b"echo hi-$((6*7))\n")
        assert b"hi-42" in read_until_hangup(master, b"hi-42")
        os.write(master, b"exit\n")
        read_until_hangup(master)
    finally:
        cli(state_root, "delete", "--force", "term-sock")
        server.close()


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_console_socket_that_is_not_a_socket(make_bundle: Callable[..., str], state_root: str,
                                             tmp_path: Path, kind: str) -> None:
    bundle = make_bundle(["/bin/true"], tty_config())
    path = tmp_path / "not-a-socket"
    if kind == "file":
        path.write_text("")
    r = cli(state_root, "create", "--bundle", bundle, "--console-socket", str(path),
            "term-bad")
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and str(path) in r.stderr, r.stderr
    assert os.listdir(state_root) == []


def test_detached_terminal_needs_a_console_socket(make_bundle: Callable[..., str],
                                                  state_root: str) -> None:
    bundle = make_bundle(["/bin/true"], tty_config())
    for verb in (["create"], ["run", "-d"]):
        r = cli(state_root, *verb, "--bundle", bundle, "term-nosock")
        assert r.returncode == 1
        assert r.stderr.strip().endswith(
            "cannot allocate tty if containerkit will detach without setting console socket")
    assert os.listdir(state_root) == []


def test_console_socket_without_terminal_is_refused(make_bundle: Callable[..., str],
                                                    state_root: str, tmp_path: Path) -> None:
    bundle = make_bundle(["/bin/true"])
    r = cli(state_root, "create", "--bundle", bundle, "--console-socket",
            str(tmp_path / "x.sock"), "term-notty")
    assert r.returncode == 1
    assert "cannot use console socket if containerkit will not detach or allocate tty" \
        in r.stderr
    assert os.listdir(state_root) == []


def test_run_in_the_foreground_relays_the_terminal(make_bundle: Callable[..., str],
                                                   state_root: str) -> None:
    bundle = make_bundle(["/bin/sh", "-c", "tty; read x; echo got-$x; exit 3"], tty_config())
    r = cli(state_root, "run", "--bundle", bundle, "term-fg", input="abc\n")
    assert r.returncode == 3, r.stderr
    lines = r.stdout.replace("\r", "").splitlines()   # the pty echoes "abc" too
    assert "/dev/pts/0" in lines
    assert "got-abc" in lines
    assert os.listdir(state_root) == []


def test_run_in_the_foreground_ends_with_the_init(make_bundle: Callable[..., str],
                                                  state_root: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:      # no pid namespace: the child outlives it
        tty_config()(cfg)
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "pid"]
    bundle = make_bundle(["/bin/sh", "-c", "sleep 1000 & echo bye"], edit)
    r = cli(state_root, "run", "--bundle", bundle, "term-bg", stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.replace("\r", "").splitlines() == ["bye"]
    assert os.listdir(state_root) == []


# -- --preserve-fds -----------------------------------------------------------------------

def _fd_at(fd: int, target: int) -> None:
    if fd != target:
        os.dup2(fd, target)
        os.close(fd)


def test_preserved_fd_is_readable_and_nothing_else_crosses(
        make_bundle: Callable[..., str], state_root: str) -> None:
    # the last command lists its own fds: 0-3 and its directory's, which takes the
    # lowest free number (4: had the host's fd 4 crossed, it would be 5)
    script = ("read x <&3; echo got-$x; readlink /proc/1/cwd; "
              "echo env-${LISTEN_FDS:-none}; exec ls /proc/self/fd")
    bundle = make_bundle(["/bin/sh", "-c", script], tty_config())
    saved = [os.dup(fd) if is_open(fd) else -1 for fd in (3, 4)]
    r, w = os.pipe()
    try:
        _fd_at(r, 3)
        os.write(w, b"through-fd3\n")
        os.close(w)
        host_file = os.open("/etc/hostname", os.O_RDONLY)   # at 4: must not cross
        _fd_at(host_file, 4)
        status, out = lib_run(bundle, state_root, "term-fds", preserve_fds=1)
    finally:
        for fd, old in zip((3, 4), saved, strict=True):
            if old >= 0:
                os.dup2(old, fd)
                os.close(old)
            elif is_open(fd):
                os.close(fd)
    assert status == 0, out
    lines = out.replace("\r", "").splitlines()
    assert lines[0] == "got-through-fd3"
    assert lines[1] == "/"                                   # CVE-2024-21626: cwd inside
    assert lines[2] == "env-none"                            # no LISTEN_FDS without activation
    assert " ".join(lines[3:]).split() == ["0", "1", "2", "3", "4"]   # no host fd 4


def test_preserve_fds_and_socket_activation_cli(make_bundle: Callable[..., str],
                                                state_root: str, tmp_path: Path) -> None:
    (tmp_path / "a").write_text("listen\n")
    (tmp_path / "b").write_text("extra\n")
    script = ("read a <&3; read b <&4; echo $a $b $LISTEN_FDS $LISTEN_PID; "
              "exec ls /proc/self/fd")       # its own: 0-4 and its directory's (5, not 6)
    bundle = make_bundle(["/bin/sh", "-c", script])
    shell = (f'exec 3<{tmp_path}/a 4<{tmp_path}/b 5</etc/hostname; '
             f'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"')
    r = subprocess.run(["bash", "-c", shell, "bash", *CLI, "--root", state_root, "run",
                        "--bundle", bundle, "--preserve-fds", "1", "term-listen"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    first, *fds = r.stdout.splitlines()
    assert first == "listen extra 1 1"       # runc: LISTEN_FDS only with activation
    assert " ".join(fds).split() == ["0", "1", "2", "3", "4", "5"]


def test_preserve_fds_of_a_closed_fd_is_an_error(make_bundle: Callable[..., str],
                                                 state_root: str) -> None:
    bundle = make_bundle(["/bin/true"])
    r = subprocess.run(["bash", "-c", 'exec 3>&- 4>&-; exec "$@"', "bash", *CLI, "--root",
                        state_root, "run", "--bundle", bundle, "--preserve-fds", "2",
                        "term-closed"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "fd 3 is not open" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert os.listdir(state_root) == []


# -- session keyring ----------------------------------------------------------------------

def _keys_visible(cfg: dict[str, Any]) -> None:
    cfg["linux"]["maskedPaths"] = [p for p in cfg["linux"]["maskedPaths"] if p != "/proc/keys"]


@pytest.mark.parametrize("new_keyring", [True, False])
def test_session_keyring(make_bundle: Callable[..., str], state_root: str, tmp_path: Path,
                         new_keyring: bool) -> None:
    bundle = make_bundle(["/bin/sh", "-c", "grep ' _ses' /proc/keys"], _keys_visible)
    out_path = tmp_path / "keys.out"
    cid = f"term-keys-{uuid.uuid4().hex[:8]}"    # a collected keyring lingers a while
    config = Bundle(bundle, id=cid, root=state_root)
    with open(out_path, "w+b") as f, \
            new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.stdout = f
        c.new_keyring = new_keyring
        c.create()
        c.start()
        c.wait()
    lines = out_path.read_text().splitlines()
    mine = [line for line in lines if line.endswith(f"_ses.{cid}: empty")]
    if new_keyring:
        assert len(mine) == 1, lines
        perm = int(mine[0].split()[4], 16)
        assert perm & 0x80000                    # searchable by its uid, as runc sets it
        assert perm & 0x3f000000 == 0x3f000000   # the possessor keeps every right
    else:
        assert mine == []


@pytest.mark.parametrize("new_keyring", [True, False])
def test_exec_joins_the_inits_session_keyring(make_bundle: Callable[..., str],
                                              state_root: str, tmp_path: Path,
                                              new_keyring: bool) -> None:
    """runc's setns init joins "_ses.<id>". The exec'd process runs as uid 1000, which
    may view the init's keyring (root's, no "other" bits) only by possessing it: it lists
    it, with the init's serial, only when it joined it (and made no second one)."""
    cid = f"term-keys-{uuid.uuid4().hex[:8]}"
    bundle = make_bundle(["/bin/sh", "-c", "grep ' _ses' /proc/keys > /dev/shm/init; "
                          "while :; do sleep 0.05; done"], _keys_visible)
    config = Bundle(bundle, id=cid, root=state_root)
    out = tmp_path / "exec.out"
    with open(out, "w+b") as f, new_container(config, config.graph_driver(),
                                              NativeDriver()) as c:
        c.new_keyring = new_keyring
        c.create()
        c.start()
        init_keys = Path(f"/proc/{c.pid}/root/dev/shm/init")
        for _ in range(200):
            if init_keys.exists():
                break
            time.sleep(0.05)
        p = c.new_process(_exec_process(["/bin/sh", "-c", "grep ' _ses' /proc/keys; true"],
                                        user={"uid": 1000, "gid": 1000}), stdout=f)
        assert p.wait() == 0
        seen_by_init = init_keys.read_text().splitlines()
    # /proc/keys: serial flags usage timeout perm uid gid type description
    mine = [line.split()[:1] for line in out.read_text().splitlines()
            if line.endswith(f"_ses.{cid}: empty")]
    inits = [line.split()[:1] for line in seen_by_init if line.endswith(f"_ses.{cid}: empty")]
    if new_keyring:
        assert len(inits) == 1 and len(mine) == 1, (seen_by_init, mine)
        assert mine[0][0] == inits[0][0], (inits, mine)
    else:
        assert mine == [] and inits == []


# -- exec ---------------------------------------------------------------------------------

SLEEPER = ["/bin/sh", "-c", "while :; do sleep 0.05; done"]


def _exec_process(args: list[str], **fields: Any) -> Any:
    from containerkit import spec as oci

    return oci.Process.from_dict({"args": args, "cwd": "/", "env": ["PATH=/bin:/usr/bin"],
                                  **fields}, source="test")


def test_exec_with_a_terminal(make_bundle: Callable[..., str], state_root: str) -> None:
    config = Bundle(make_bundle(SLEEPER), id="term-exec", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        p = c.new_process(_exec_process(
            ["/bin/sh", "-c", "tty; stty size; cat /proc/self/stat; echo $$"],
            terminal=True, consoleSize={"height": 20, "width": 60}))
        assert p.terminal is not None
        out = read_until_hangup(p.terminal.fileno()).decode()
        assert p.wait() == 0
        assert c.status == "running"
    lines = out.replace("\r", "").splitlines()
    assert lines[0].startswith("/dev/pts/")
    assert lines[1] == "20 60"
    stat = lines[2].rsplit(")", 1)[1].split()
    assert stat[3] == lines[3]              # the shell leads its session (cat's parent)
    assert int(stat[4]) >> 8 == 136         # ... and cat has the pty as its terminal


def test_exec_leads_its_own_session(make_bundle: Callable[..., str], state_root: str,
                                    tmp_path: Path) -> None:
    config = Bundle(make_bundle(SLEEPER), id="term-exec-sid", root=state_root)
    out = tmp_path / "stat"
    with open(out, "wb") as f, new_container(config, config.graph_driver(),
                                             NativeDriver()) as c:
        c.create()
        c.start()
        p = c.new_process(_exec_process(["cat", "/proc/self/stat"]), stdout=f)
        assert p.wait() == 0
    fields = out.read_text().split()
    stat = out.read_text().rsplit(")", 1)[1].split()
    assert stat[2] == stat[3] == fields[0]      # its own process group and session (runc)


def test_cli_exec_tty_with_a_console_socket(make_bundle: Callable[..., str], state_root: str,
                                            tmp_path: Path) -> None:
    config = Bundle(make_bundle(SLEEPER), id="term-exec-sock", root=state_root)
    server = ConsoleServer(str(tmp_path / "exec.sock"))
    try:
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()
            c.start()
            r = cli(state_root, "exec", "-d", "-t", "--console-socket", server.path,
                    "term-exec-sock", "sh")
            assert r.returncode == 0, r.stderr
            server.thread.join()
            assert server.payload == b"/dev/ptmx" and len(server.fds) == 1
            master = server.fds[0]
            os.write(master, b"echo hi-$((6*7))\n")
            assert b"hi-42" in read_until_hangup(master, b"hi-42")
            os.write(master, b"exit\n")
            read_until_hangup(master)
    finally:
        server.close()


def test_cli_exec_tty_in_the_foreground(make_bundle: Callable[..., str], state_root: str) -> None:
    config = Bundle(make_bundle(SLEEPER), id="term-exec-fg", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        r = cli(state_root, "exec", "-t", "term-exec-fg", "sh", "-c", "tty; read x; exit $x",
                input="4\n")
        assert r.returncode == 4, r.stderr
        assert any(line.startswith("/dev/pts/")
                   for line in r.stdout.replace("\r", "").splitlines()), r.stdout


def test_cli_exec_preserve_fds(make_bundle: Callable[..., str], state_root: str,
                               tmp_path: Path) -> None:
    (tmp_path / "a").write_text("passed\n")
    config = Bundle(make_bundle(SLEEPER), id="term-exec-fds", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        shell = f'exec 3<{tmp_path}/a 4</etc/hostname; exec "$@"'
        # the last command lists its own fds: 0-3 and its directory's (4: the host's 4
        # stayed out)
        r = subprocess.run(["bash", "-c", shell, "bash", *CLI, "--root", state_root, "exec",
                            "--preserve-fds", "1", "term-exec-fds", "sh", "-c",
                            "read a <&3; echo $a; exec ls /proc/self/fd"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        first, *fds = r.stdout.splitlines()
        assert first == "passed"
        assert " ".join(fds).split() == ["0", "1", "2", "3", "4"]
