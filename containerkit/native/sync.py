"""The parent <-> init protocol: one table, framed messages on a SOCK_SEQPACKET pair.

| dir    | message                        | meaning                                        |
|--------|--------------------------------|------------------------------------------------|
| P -> C | CGROUP                         | only without clone3: the parent wrote the pid  |
|        |                                | to cgroup.procs; the child may go on           |
| C -> P | USERNS                         | only with a new user namespace: it exists; the |
|        |                                | child waits for its maps                       |
| P -> C | IDMAPPED                       | the parent wrote /proc/<pid>/uid_map and       |
|        |                                | gid_map (and setgroups "deny" when             |
|        |                                | unprivileged); the child becomes root in it    |
| C -> P | HOOKS                          | mounts done, before pivot_root (only with      |
|        |                                | prestart/createRuntime/createContainer hooks): |
|        |                                | the init waits; the parent fills the hook      |
|        |                                | state files, runs prestart + createRuntime     |
| P -> C | CONTINUE                       | the init goes on (createContainer, pivot_root) |
| C -> P | CONSOLE + SCM_RIGHTS(pty master)| process.terminal: the pty made in the          |
|        |                                | container's devpts (after pivot_root)          |
| C -> P | SECCOMP + SCM_RIGHTS fd         | only with an SCMP_ACT_NOTIFY rule: the filter  |
|        |                                | is loaded, the fd is its notify listener       |
| P -> C | CONTINUE                       | the agent at listenerPath has the fd           |
| C -> P | INIT <pid>                     | only for plans that fork the init (joining a   |
|        |                                | user namespace, or namespaces by path with a   |
|        |                                | new one): the first child forked the init      |
|        |                                | (CLONE_PARENT: the parent's child) and exits;  |
|        |                                | the rest of the table is the init's            |
| C -> P | CREATED                        | setup done; the init blocks on exec.fifo       |
| C -> P | ERROR\0step\0errno\0detail      | a step failed; the child _exits right after    |
| C -> P | end of file                    | after CREATED: execve ran (the socket is       |
|        |                                | close-on-exec), the container has started      |

``start`` (possibly in another process) releases the init by writing one byte to the
FIFO ``<state>/exec.fifo`` that the init holds open O_RDWR; it opens the FIFO with
O_WRONLY|O_NONBLOCK, so a dead init shows as ENXIO instead of a hang. With
startContainer hooks, a failing hook's ERROR message also goes into the FIFO, and a
``start`` that did not create the init reads it there (``release(report=True)``).

An ERROR whose step is a hook (``hooks.<stage>[i]``) carries errno 1000 when its detail
is the whole message ("path: exited with status 1: last line of output").
"""

from __future__ import annotations

import posix
import sys
from _socket import (
    AF_UNIX,
    CMSG_SPACE,
    MSG_CMSG_CLOEXEC,
    MSG_DONTWAIT,
    SCM_RIGHTS,
    SOCK_SEQPACKET,
    SOL_SOCKET,
    socket,
    socketpair,
)

from ..errors import ContainerkitError, SetupError

CREATED = b"CREATED"
HOOKS = b"HOOKS"
CONTINUE = b"CONTINUE"
SECCOMP = b"SECCOMP"
HOOK_FAILED = 1000
CONSOLE = b"CONSOLE"
CGROUP = b"CGROUP"
USERNS = b"USERNS"
IDMAPPED = b"IDMAPPED"
INIT = b"INIT"
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


def send(sock: socket, msg: bytes) -> None:
    """One parent -> child message; a child that already exited (EPIPE) is left to
    ``expect_created``, which reads its ERROR report."""
    try:
        sock.send(msg)
    except (BrokenPipeError, ConnectionResetError):
        pass


def raise_if_pending_error(sock: socket) -> None:
    """Raise the child's ERROR report if one is already queued (never blocks)."""
    try:
        msg = sock.recv(MAX_MESSAGE, MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return
    raise_if_error(msg)
    if not msg:
        raise ContainerkitError("container init exited during setup without a report")


def read_message_fd(sock: socket) -> tuple[bytes, int]:
    """One message and the fd it carries (SCM_RIGHTS, close-on-exec here), -1 if none."""
    while True:
        try:
            msg, ancillary, _, _ = sock.recvmsg(MAX_MESSAGE, CMSG_SPACE(4), MSG_CMSG_CLOEXEC)
            break
        except InterruptedError:
            continue
    fds = [int.from_bytes(data[k:k + 4], sys.byteorder, signed=True)
           for level, kind, data in ancillary if level == SOL_SOCKET and kind == SCM_RIGHTS
           for k in range(0, len(data) - len(data) % 4, 4)]
    for extra in fds[1:]:
        posix.close(extra)
    return msg, fds[0] if fds else -1


def expect_console(sock: socket) -> int:
    """The pty master the init sends before CREATED (``process.terminal``)."""
    msg, fd = read_message_fd(sock)
    if fd >= 0 and msg != CONSOLE:
        posix.close(fd)
        fd = -1
    raise_if_error(msg)
    if fd < 0:
        raise ContainerkitError("container init sent no terminal: "
                                f"{msg.decode(errors='replace') or 'end of file'}")
    return fd


def raise_if_error(msg: bytes) -> None:
    if msg.startswith(ERROR + b"\0"):
        _, bstep, berr, bdetail = msg.split(b"\0", 3)
        step, err, detail = bstep.decode(), int(berr), bdetail.decode(errors="replace")
        if step.startswith("hooks."):
            why = "" if err == HOOK_FAILED else f": {posix.strerror(err).lower()}"
            raise ContainerkitError(f"{step}: {detail}{why}")
        raise SetupError(step, err, detail)


def expect(sock: socket, wanted: bytes) -> None:
    """The next message must be ``wanted`` (or an ERROR, raised)."""
    msg = read_message(sock)
    raise_if_error(msg)
    if msg != wanted:
        raise ContainerkitError(f"container init: expected {wanted.decode()} on the sync "
                                f"socket, got {msg[:40]!r}")


def expect_init(sock: socket) -> int:
    """The pid of the init that the first child forked."""
    msg = read_message(sock)
    raise_if_error(msg)
    head, _, pid = msg.partition(b" ")
    if head != INIT or not pid.isdigit():
        raise ContainerkitError("container init exited during setup without a report")
    return int(pid)


def expect_created(sock: socket) -> None:
    msg = read_message(sock)
    raise_if_error(msg)
    if msg != CREATED:
        raise ContainerkitError("container init exited during setup without a report")


def release(fifo_path: str, report: bool = False) -> None:
    """Let a created init go on to execve (the OCI ``start``). With ``report``, wait
    until the init exec'd or exited and raise the ERROR it left in the FIFO (a failing
    startContainer hook)."""
    try:
        fd = posix.open(fifo_path, posix.O_WRONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
    except FileNotFoundError:
        raise ContainerkitError(
            f"{fifo_path}: missing: the container was already started") from None
    except OSError as e:
        if e.errno == 6:  # ENXIO: no reader, the init is gone
            raise ContainerkitError("container init is no longer running") from None
        raise
    rfd = -1
    try:
        if report:
            # a reader that sees POLLHUP once the init's O_RDWR end is gone (execve closes
            # it, or exit); the kernel reports that hang-up only to a reader opened before
            # a writer: hence the second writer, opened after it
            rfd = posix.open(fifo_path, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
            posix.close(fd)
            fd = posix.open(fifo_path, posix.O_WRONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
        posix.write(fd, b"0")
    except BaseException:
        if rfd >= 0:
            posix.close(rfd)
        raise
    finally:
        posix.close(fd)
    posix.unlink(fifo_path)
    if rfd >= 0:
        try:
            _wait_hangup(rfd)
            data = posix.read(rfd, MAX_MESSAGE)
        finally:
            posix.close(rfd)
        raise_if_error(data)


def _wait_hangup(fd: int) -> None:
    import select

    poller = select.poll()
    poller.register(fd, 0)          # POLLHUP only: the "0" byte must stay for the init
    while not poller.poll():
        pass
