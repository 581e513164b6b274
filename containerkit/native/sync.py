"""The parent <-> init protocol: one table, framed messages on a SOCK_SEQPACKET pair.

| dir    | message                        | meaning                                        |
|--------|--------------------------------|------------------------------------------------|
| P -> C | CGROUP                         | only without clone3: the parent wrote the pid  |
|        |                                | to cgroup.procs; the child may go on           |
| C -> P | CREATED                        | setup done; the init blocks on exec.fifo       |
| C -> P | ERROR\0step\0errno\0detail      | a step failed; the child _exits right after    |
| C -> P | end of file                    | after CREATED: execve ran (the socket is       |
|        |                                | close-on-exec), the container has started      |

``start`` (possibly in another process) releases the init by writing one byte to the
FIFO ``<state>/exec.fifo`` that the init holds open O_RDWR; it opens the FIFO with
O_WRONLY|O_NONBLOCK, so a dead init shows as ENXIO instead of a hang.
"""

from __future__ import annotations

import os
from _socket import AF_UNIX, SOCK_SEQPACKET, socket, socketpair

from ..errors import ContainerkitError, SetupError

CREATED = b"CREATED"
CGROUP = b"CGROUP"
ERROR = b"ERROR"
MAX_MESSAGE = 4096


def channel() -> tuple[socket, socket]:
    """(parent end, child end); both close-on-exec. From ``_socket``: the ``socket``
    module's import (selectors, enum) costs every CLI call ~2 ms for nothing used here."""
    return socketpair(AF_UNIX, SOCK_SEQPACKET)


def encode_error(step: str, err: int, detail: str) -> bytes:
    return b"\0".join((ERROR, step.encode(), str(err).encode(), detail.encode()[:3000]))


def read_message(sock: socket) -> bytes:
    """One message, or b'' at end of file."""
    while True:
        try:
            return sock.recv(MAX_MESSAGE)
        except InterruptedError:
            continue


def raise_if_error(msg: bytes) -> None:
    if msg.startswith(ERROR + b"\0"):
        _, step, err, detail = msg.split(b"\0", 3)
        raise SetupError(step.decode(), int(err), detail.decode(errors="replace"))


def expect_created(sock: socket) -> None:
    msg = read_message(sock)
    raise_if_error(msg)
    if msg != CREATED:
        raise ContainerkitError("container init exited during setup without a report")


def release(fifo_path: str) -> None:
    """Let a created init go on to execve (the OCI ``start``)."""
    try:
        fd = os.open(fifo_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ContainerkitError(
            f"{fifo_path}: missing: the container was already started") from None
    except OSError as e:
        if e.errno == 6:  # ENXIO: no reader, the init is gone
            raise ContainerkitError("container init is no longer running") from None
        raise
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
    os.unlink(fifo_path)
