"""seccomp SCMP_ACT_NOTIFY: an agent at listenerPath gets the container process state and
the notify fd, and answers the container's notified syscall; the seccomp flags reach the
kernel (it refuses a combination it does not take)."""

from __future__ import annotations

import errno
import json
import os
import select
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ckhelpers import run_container

from containerkit import Bundle, NativeDriver, new_container

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

# <linux/seccomp.h>: _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1, ..._resp)
NOTIF_RECV = 0xC0502100
NOTIF_SEND = 0xC0182101
NOTIF = struct.Struct("=QIIiIQ6Q")          # id, pid, flags, nr, arch, ip, args[6]
RESP = struct.Struct("=QqiI")               # id, val, error, flags


class Agent(threading.Thread):
    """Accepts one connection on ``path``, keeps the state and the fd, and answers one
    notification with -``answer_errno``."""

    def __init__(self, path: str, answer_errno: int) -> None:
        super().__init__(daemon=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.answer_errno = answer_errno
        self.state: dict[str, Any] = {}
        self.syscall = -1
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn, _ = self.server.accept()
            with conn:
                data, fds, _, _ = socket.recv_fds(conn, 65536, 1)
                assert conn.recv(1) == b""              # one message, then closed
            self.state = json.loads(data)
            (fd,) = fds
            try:
                ready, _, _ = select.select([fd], [], [], 60)
                assert ready, "no notification came"
                buf = bytearray(NOTIF.size)
                import fcntl

                fcntl.ioctl(fd, NOTIF_RECV, buf, True)
                notif_id, _pid, _flags, self.syscall, *_ = NOTIF.unpack(buf)
                resp = bytearray(RESP.pack(notif_id, 0, -self.answer_errno, 0))
                fcntl.ioctl(fd, NOTIF_SEND, resp, True)
            finally:
                os.close(fd)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.server.close()


def _notify(cfg: dict[str, Any], listener: str, flags: list[str] | None = None) -> None:
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": listener,
        "listenerMetadata": "hello-agent", "flags": flags or [],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}


@pytest.mark.parametrize("nnp", [True, False])
def test_agent_answers_the_notified_syscall(make_bundle: Callable[..., str], state_root: str,
                                            tmp_path: Path, leak_check: Callable[[], None],
                                            nnp: bool) -> None:
    listener = str(tmp_path / "agent.sock")
    agent = Agent(listener, errno.EXDEV)
    agent.start()
    script = "mkdir /dev/shm/notified; echo rc=$?; [ -d /dev/shm/notified ] || echo absent"

    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["noNewPrivileges"] = nnp
        _notify(cfg, listener, ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                                "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                "SECCOMP_FILTER_FLAG_TSYNC"])

    out = tmp_path / "out"
    config = Bundle(make_bundle(["sh", "-c", script], edit), id=f"sc-notify-{nnp}",
                    root=state_root)
    with open(out, "wb") as f, new_container(config, config.graph_driver(),
                                             NativeDriver()) as c:
        c.stdout = c.stderr = f
        c.create()
        c.start()
        assert c.wait(timeout=60) == 0
        pid = c.pid
    agent.join(60)
    assert agent.error is None, agent.error
    text = out.read_text()
    assert "Invalid cross-device link" in text and "rc=1" in text and "absent" in text, text
    assert agent.syscall in (83, 258)              # mkdir or mkdirat (x86_64)
    st = agent.state
    assert st["fds"] == ["seccompFd"] and st["metadata"] == "hello-agent"
    assert st["pid"] == pid and st["state"]["pid"] == pid
    assert (st["state"]["id"], st["state"]["status"]) == (f"sc-notify-{nnp}", "creating")
    assert st["ociVersion"] == st["state"]["ociVersion"]


def test_unreachable_listener_fails_create_and_leaves_nothing(
        make_bundle: Callable[..., str], state_root: str, tmp_path: Path,
        leak_check: Callable[[], None]) -> None:
    from containerkit import ContainerkitError

    listener = str(tmp_path / "nobody.sock")
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).bind(listener)   # no listen: refused
    config = Bundle(make_bundle(["true"], lambda c: _notify(c, listener)), id="sc-refused",
                    root=state_root)
    with pytest.raises(ContainerkitError,
                       match=rf"^linux.seccomp.listenerPath: {listener}: connection refused$"):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()


def test_flags_without_notify_are_loaded(make_bundle: Callable[..., str], state_root: str,
                                         tmp_path: Path) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                      "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": errno.EXDEV}]}

    status, text = run_container(make_bundle(["sh", "-c", "grep ^Seccomp: /proc/self/status; "
                                              "mkdir /dev/shm/x"], edit),
                                 state_root, "sc-flags", timeout=60)
    assert status == 1, text
    assert "Seccomp:\t2" in text and "Invalid cross-device link" in text, text
