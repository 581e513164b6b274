"""Every fd the child opens between clone and execve (sync socket, pty master and peer,
hook pipes and state memfd, the seccomp listener, the root fd, an idmapped tree handed
over by the parent, exec.fifo) is closed or close-on-exec: the container's process has
0, 1, 2 and the preserved fds, nothing else. Checked from inside with all of them used
at once, with and without a user namespace."""

from __future__ import annotations

import os
import select
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ckhelpers import is_open

from containerkit import Bundle, NativeDriver, UnsupportedError, new_container
from containerkit.busybox import make_rootfs

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.usefixtures("leak_check")]

MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]


class Listener(threading.Thread):
    """A seccomp agent that takes the notify fd and keeps it until told to stop."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.fds: list[int] = []

    def run(self) -> None:
        try:
            conn, _ = self.server.accept()
            with conn:
                _, self.fds, _, _ = socket.recv_fds(conn, 65536, 1)
        finally:
            self.server.close()

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def top() -> Iterator[str]:
    """A 0755 directory outside pytest's 0700 tmp: mapped ids must reach the rootfs."""
    path = tempfile.mkdtemp(prefix="ck-test-fds-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        assert ready, f"the terminal went silent; so far: {out!r}"
        try:
            data = os.read(fd, 4096)
        except OSError:          # EIO: the peer is closed everywhere
            return out
        if not data:
            return out
        out += data


@pytest.mark.parametrize("userns", [False, True], ids=["host-ids", "userns"])
def test_only_stdio_and_preserved_fds_cross(make_bundle: Callable[..., str], state_root: str,
                                            top: str, userns: bool) -> None:
    root = make_rootfs(os.path.join(top, "rootfs"))
    os.mkdir(os.path.join(root, "idm"))
    src = Path(top, "src")
    src.mkdir()
    (src / "f").write_text("x\n")
    listener = Listener(os.path.join(top, "agent.sock"))
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "cat >/dev/null"]}

    def edit(cfg: dict[str, Any]) -> None:
        cfg["root"]["path"] = root
        cfg["process"]["terminal"] = True
        if userns:
            cfg["linux"]["namespaces"].append({"type": "user"})
            cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = MAPPING
        cfg["mounts"].append({"destination": "/idm", "type": "bind", "source": str(src),
                              "options": ["bind", "idmap"], "uidMappings": MAPPING,
                              "gidMappings": MAPPING})
        cfg["hooks"] = {stage: [hook] for stage in
                        ("prestart", "createRuntime", "createContainer", "startContainer",
                         "poststart")}
        cfg["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": listener.server.getsockname(),
            "syscalls": [{"names": ["mknodat"], "action": "SCMP_ACT_NOTIFY"}]}

    # ls lists its own fds; its directory fd takes the lowest free number, so it is 4
    # only if nothing but 0-3 crossed
    bundle = make_bundle(["/bin/sh", "-c", "cat /idm/f; exec ls -l /proc/self/fd"], edit)
    listener.start()
    saved = os.dup(3) if is_open(3) else -1
    r, w = os.pipe()
    try:
        if r != 3:
            os.dup2(r, 3)
            os.close(r)
        os.close(w)
        config = Bundle(bundle, id=f"review-fds-{int(userns)}", root=state_root)
        try:
            with new_container(config, config.graph_driver(), NativeDriver()) as c:
                c.preserve_fds = 1
                c.create()
                assert c.terminal is not None
                c.start()
                out = _read_all(c.terminal.fileno()).decode().replace("\r", "")
                status = c.wait()
        except UnsupportedError as e:
            if "this host refuses" not in str(e):
                raise
            pytest.skip(str(e))
    finally:
        if saved >= 0:
            os.dup2(saved, 3)
            os.close(saved)
        elif is_open(3):
            os.close(3)
        listener.join(timeout=30)
        listener.close()
    assert status == 0, out
    lines = out.splitlines()
    assert lines[0] == "x", out
    fds = sorted(int(line.split()[8]) for line in lines[1:] if line.startswith(("lr", "l-")))
    assert fds == [0, 1, 2, 3, 4], out
    assert len(listener.fds) == 1                       # the agent did get the notify fd
