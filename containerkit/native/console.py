"""The container's terminal (``process.terminal``): the init's steps and the parent's side.

As runc does it: the pty is made *inside* the container, after its mounts and
pivot_root, from the container's own devpts (``/dev/ptmx``); its peer is bound on
``/dev/console``, becomes the controlling terminal of the init's new session and its
fds 0, 1 and 2; the master goes to the parent over the sync socket (CONSOLE with
SCM_RIGHTS, ``sync.py``). The parent then hands it to a console socket
(``--console-socket``: one message whose payload is the name ``/dev/ptmx`` and whose
SCM_RIGHTS carries the fd, as runc's ``utils.SendFd``), or keeps it as
``Container.terminal``; ``relay`` copies between the caller's stdio and the master
(``run -t`` in the foreground).
"""

from __future__ import annotations

import os
import sys
from _socket import AF_UNIX, SCM_RIGHTS, SOCK_STREAM, SOL_SOCKET, socket

from ..errors import ConfigError, connect_error
from . import ops

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .. import spec as oci

MASTER_NAME = b"/dev/ptmx"   # what runc sends with the fd (the master's file name)


def console_steps(proc: oci.Process, sync_fd: int, console: bool = True) -> list[ops.Step]:
    """The init's terminal steps; they go right after pivot_root (runc's place: after
    the spec's mounts, before the read-only and masked paths). ``console``: bind the pty
    on /dev/console (the init's; not for an exec'd process)."""
    size = proc.console_size
    rows, cols = (size.height or 0, size.width or 0) if size is not None else (0, 0)
    if not (0 <= rows < 1 << 16 and 0 <= cols < 1 << 16):
        from ..errors import SpecError

        raise SpecError(f"config.json: process.consoleSize: {rows}x{cols} does not fit "
                        "a terminal's 16-bit rows and columns")
    owner = proc.user.uid if proc.user.uid else -1
    steps = [ops.Step("terminal", *ops.open_pty(b"/dev/ptmx", rows, cols, owner), "/dev/ptmx")]
    if console:
        steps.append(ops.Step("terminal", *ops.mount_console(b"/dev/console"), "/dev/console"))
    return steps + [
        ops.Step("terminal", *ops.send_pty(sync_fd), "send the pty master"),
        ops.Step("terminal", *ops.set_ctty(), "controlling terminal, stdio"),
    ]


def connect(path: str) -> socket:
    """The caller's console socket, connected before anything is made: a path that is
    not a listening unix socket fails here, leaving nothing behind."""
    sock = socket(AF_UNIX, SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise ConfigError(f"--console-socket {path}: {connect_error(path, e)}") from None
    return sock


def send_master(sock: socket, fd: int) -> None:
    """The pty master to the console socket, as runc sends it (name + SCM_RIGHTS)."""
    try:
        # (an int[1], not array("i"): array imports collections, ~1.4 ms)
        sock.sendmsg([MASTER_NAME], [(SOL_SOCKET, SCM_RIGHTS,
                                      fd.to_bytes(4, sys.byteorder, signed=True))])
    except OSError as e:
        raise ConfigError(f"console socket: sending the terminal: "
                          f"{(e.strerror or str(e)).lower()}") from None


def relay(master: int, stdin: int, stdout: int, pidfd: int = -1) -> None:
    """Copy ``stdin`` to the pty and the pty to ``stdout`` until the pty hangs up (every
    copy of its peer closed: the container's processes are gone) or the process of
    ``pidfd`` exited (then what the pty still holds is copied). End of file on
    ``stdin`` only stops that direction, as in runc. A terminal on ``stdin`` is put in
    raw mode meanwhile (the container's pty does the line discipline) and resized with
    the pty on SIGWINCH."""
    import select
    import signal

    restore = _raw(stdin)
    old_winch = None
    if restore is not None:
        _copy_size(stdin, master)
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: _copy_size(stdin, master))
    try:
        poll = select.poll()
        poll.register(master, select.POLLIN)
        if stdin >= 0:
            poll.register(stdin, select.POLLIN)
        if pidfd >= 0:
            poll.register(pidfd, select.POLLIN)
        while True:
            for fd, _events in poll.poll():
                if fd == pidfd:
                    _drain(master, stdout)
                    return
                if fd == master:
                    try:
                        data = os.read(master, 65536)
                    except OSError:         # EIO: hung up
                        return
                    if not data:
                        return
                    _write_all(stdout, data)
                else:
                    data = os.read(stdin, 65536)
                    if not data:
                        poll.unregister(stdin)
                        continue
                    _write_all(master, data)
    finally:
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        if restore is not None:
            restore()


def _drain(master: int, stdout: int) -> None:
    """What the pty holds once the process is gone (someone else may keep it open)."""
    os.set_blocking(master, False)
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:             # EAGAIN: empty; EIO: hung up
                return
            if not data:
                return
            _write_all(stdout, data)
    finally:
        os.set_blocking(master, True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _raw(fd: int):  # noqa: ANN202 - a restore callable, or None
    if fd < 0 or not os.isatty(fd):
        return None
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    return lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _copy_size(src: int, dst: int) -> None:
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass
