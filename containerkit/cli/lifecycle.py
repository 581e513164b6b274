"""Verbs that change a container: create, start, run, kill, delete."""

from __future__ import annotations

import _signal as signal  # not signal: its enums import enum (~3 ms for `kill`)
import posix

from .. import pathnames
from ..errors import ConfigError, ContainerExists, ContainerkitError, InvalidState
from .main import CLIError, Context, UsageError

TYPE_CHECKING = False  # typing is not imported at run time: it costs ~2 ms of start-up
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

    from ..container import Container
    from ..process import Process

# what `run` passes on to the container (runc forwards every signal it can catch)
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH)
# what makes `create` / `run` give up and clean up before the user's program started
ABORTING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class Interrupted(CLIError):
    """A signal asked `create`/`run` to stop before the container started: 128+N."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.status = 128 + signum
        super().__init__(f"interrupted by {signal_name(signum)}: "
                         "the container was removed")


class SignalGuard:
    """Signals that reach `create`/`run`/`exec`.

    Until ``forward_to`` they are only recorded: the library is never interrupted in the
    middle of a step (its clean-up paths stay simple), and the caller checks ``pending``
    at safe points. After ``forward_to`` each one is passed to the process (the
    container's init, or an exec'd process).
    """

    def __init__(self, signums: tuple[int, ...]) -> None:
        self.pending: list[int] = []
        self._target: Process | None = None
        self._old = {s: signal.signal(s, self._handler) for s in signums}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self._target is None:
            self.pending.append(signum)
            return
        try:
            self._target.signal(signum)
        except OSError:               # already gone: nothing to pass it to
            pass

    def check(self) -> None:
        """Raise Interrupted if a signal that means "stop" came (SIGWINCH does not)."""
        for signum in self.pending:
            if signum in ABORTING:
                raise Interrupted(signum)

    def forward_to(self, process: Process | None) -> None:
        self._target = process
        pending, self.pending = self.pending, []
        for signum in pending:
            self._handler(signum, None)

    def restore(self) -> None:
        for signum, old in self._old.items():
            signal.signal(signum, old)


# -- helpers ------------------------------------------------------------------------------

def _load(ctx: Context, container_id: str, *, native: bool = True) -> Container:
    from .load import load

    return load(ctx.root, container_id, native=native)


def _discard(container: Container, ctx: Context) -> None:
    """Remove a half-made container; the caller reports the original error."""
    try:
        container.delete(force=True)
    except Exception as e:        # noqa: BLE001 - the first error is the one to report
        from .main import error_message

        ctx.log.error(f"cleaning up container {container.id!r}: {error_message(e)}")


def _add_create_flags(parser: Any) -> None:
    parser.add_argument("-b", "--bundle", default="",
                        help="path to the root of the bundle directory (default: current)")
    parser.add_argument("--console-socket", default="", metavar="PATH",
                        help="AF_UNIX socket that receives the pty master (process.terminal)")
    parser.add_argument("--pid-file", default="", help="file to write the init's process id to")
    parser.add_argument("--no-pivot", action="store_true",
                        help="MS_MOVE the rootfs onto / and chroot instead of pivot_root")
    parser.add_argument("--no-new-keyring", action="store_true",
                        help="keep the caller's session keyring (default: a new one)")
    parser.add_argument("--preserve-fds", type=_count, default=0, metavar="N",
                        help="pass N additional file descriptors (3..3+N-1) to the container")
    parser.add_argument("id", metavar="container-id")


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def check_terminal(terminal: bool, detach: bool, console_socket: str) -> None:
    """runc's rules (and words) for a terminal and a console socket."""
    if detach and terminal and not console_socket:
        raise UsageError("cannot allocate tty if containerkit will detach without setting "
                         "console socket")
    if (not detach or not terminal) and console_socket:
        raise UsageError("cannot use console socket if containerkit will not detach or "
                         "allocate tty")


def listen_fds() -> int:
    """Socket activation (as runc, go-systemd's activation.Files): the fds systemd passed
    to this very process (LISTEN_PID is ours) cross into the container first."""
    try:
        if int(posix.environ.get(b"LISTEN_PID", b"")) != posix.getpid():
            return 0
        return max(int(posix.environ.get(b"LISTEN_FDS", b"")), 0)
    except ValueError:
        return 0


def passed_fds(ctx: Context, preserve: int) -> tuple[int, int]:
    """(fds passed in all, of which socket-activation fds); the --log file must not be
    among them (it would be, had the caller left one of them closed)."""
    listen = listen_fds()
    total = listen + preserve
    for fd in range(3, 3 + total):
        try:
            posix.fstat(fd)
        except OSError:
            raise UsageError(f"--preserve-fds {preserve}: fd {fd} is not open") from None
    if 3 <= ctx.log.fd < 3 + total:
        raise UsageError(f"--preserve-fds {preserve}: fd {ctx.log.fd} is not open in the "
                         "caller (this process opened its --log file there)")
    return total, listen


def _create(args: Any, ctx: Context, guard: SignalGuard, detach: bool) -> Container:
    """Claim the id and create the init; with ``--pid-file``, write its host pid.
    Nothing is left behind when this fails."""
    from ..bundle import Bundle
    from ..container import new_container
    from ..native.driver import NativeDriver

    guard.check()
    config = Bundle(args.bundle or posix.getcwd(), id=args.id, root=ctx.root)
    process = config.load().process
    check_terminal(bool(process and process.terminal), detach, args.console_socket)
    total, listen = passed_fds(ctx, args.preserve_fds)
    graph = config.graph_driver()
    try:
        container = new_container(config, graph, NativeDriver(no_pivot=args.no_pivot))
    except ContainerExists:
        # runc's words (clients match on them)
        raise CLIError(f"container with given ID already exists: {args.id!r}") from None
    container.console_socket = pathnames.abspath(args.console_socket) \
        if args.console_socket else None
    container.preserve_fds = total
    container.statedir.companion = True     # for the native front end (state.py)
    container.listen_fds = listen
    container.new_keyring = not args.no_new_keyring
    try:
        container.create()
        ctx.log.debug(f"created {args.id}: pid {container.pid}")
        if args.pid_file:
            write_pid_file(args.pid_file, container.pid)
        guard.check()
    except BaseException:
        _discard(container, ctx)
        raise
    return container


# -- verbs ----------------------------------------------------------------------------------

def add_create(parser: Any) -> None:
    _add_create_flags(parser)


def do_create(args: Any, ctx: Context) -> int:
    guard = SignalGuard(ABORTING)
    try:
        _create(args, ctx, guard, detach=True)
    finally:
        guard.restore()
    return 0


def add_start(parser: Any) -> None:
    parser.add_argument("id", metavar="container-id")


def do_start(args: Any, ctx: Context) -> int:
    _load(ctx, args.id).start()
    return 0


def add_run(parser: Any) -> None:
    _add_create_flags(parser)
    parser.add_argument("-d", "--detach", action="store_true",
                        help="start the container and exit, leaving it running")
    parser.add_argument("--keep", action="store_true",
                        help="do not delete the container after it exits")
    parser.add_argument("--no-subreaper", action="store_true",
                        help="accepted: the init is a child of this process anyway")


def do_run(args: Any, ctx: Context) -> int:
    guard = SignalGuard(FORWARDED)
    try:
        container = _create(args, ctx, guard, detach=args.detach)
        try:
            container.start()
            ctx.log.debug(f"started {args.id}")
            if args.detach:
                guard.check()
                return 0
            guard.forward_to(container.init)
            if container.terminal is not None:      # run -t: this process is the terminal
                from ..native.console import relay

                init = container.init
                relay(container.terminal.fileno(), 0, 1, init.pidfd if init else -1)
            code = container.wait()
        except BaseException:
            _discard(container, ctx)
            raise
        ctx.log.debug(f"{args.id} exited: {code}")
        if not args.keep:
            container.delete(force=True)
    finally:
        guard.restore()
    return code if code is not None and code >= 0 else 255


def add_kill(parser: Any) -> None:
    parser.add_argument("-a", "--all", action="store_true",
                        help="send the signal to all processes inside the container")
    parser.add_argument("id", metavar="container-id")
    parser.add_argument("signal", nargs="?", default="SIGTERM",
                        help="name (KILL, SIGKILL) or number (9); default SIGTERM")


def parse_signal(text: str) -> int:
    """KILL, SIGKILL, kill, 9, RTMIN+3 -> the signal number (moby's ParseSignal rules);
    0 (like runc) only checks that the init is alive."""
    raw = text.strip()
    if raw.isdigit():
        number = int(raw)
        if 0 <= number <= signal.SIGRTMAX:
            return number
        raise ConfigError(f"invalid signal {text!r}: numbers go from 0 to {int(signal.SIGRTMAX)}")
    name = raw.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base in ("SIGRTMIN+", "SIGRTMAX-"):
        if name.startswith(base) and name[len(base):].isdigit():
            offset = int(name[len(base):])
            number = signal.SIGRTMIN + offset if base[-1] == "+" else signal.SIGRTMAX - offset
            if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                return int(number)
    number = _signal_numbers().get(name)
    if number is None:
        raise ConfigError(f"invalid signal {text!r}")
    return number


def _signal_numbers() -> dict[str, int]:
    """SIGKILL -> 9...: the names signal.Signals has (signal.py builds it from _signal)."""
    return {name: value for name, value in vars(signal).items()
            if name.startswith("SIG") and not name.startswith("SIG_") and name.isupper()
            and isinstance(value, int)}


def signal_name(signum: int) -> str:
    for name, value in _signal_numbers().items():
        if value == signum and not name.startswith(("SIGRTM", "SIGIOT", "SIGPOLL", "SIGCLD")):
            return name
    return f"signal {signum}"


def do_kill(args: Any, ctx: Context) -> int:
    signum = parse_signal(args.signal)
    container = _load(ctx, args.id, native=False)
    try:
        container.signal(signum, all=args.all)
    except InvalidState as e:
        # runc's words: containerd's shim takes "container not running" as "already gone"
        raise CLIError(f"container not running: {e}") from None
    return 0


def add_delete(parser: Any) -> None:
    parser.add_argument("-f", "--force", action="store_true",
                        help="delete the container even if it is running (SIGKILL)")
    parser.add_argument("id", metavar="container-id")


def do_delete(args: Any, ctx: Context) -> int:
    try:
        container = _load(ctx, args.id)
    except ContainerkitError:          # no such id, or a state that cannot be read
        if not args.force:
            raise
        from ..container import remove_abandoned

        if not remove_abandoned(ctx.root, args.id):
            return 0
        container = _load(ctx, args.id)          # it was being created meanwhile
    container.delete(force=args.force)
    return 0


def write_pid_file(path: str, pid: int) -> None:
    """``--pid-file``: the decimal pid, no newline (runc's format), written atomically."""
    from ..state import write_atomic

    path = pathnames.abspath(path)
    try:
        write_atomic(path, str(pid).encode())
    except OSError as e:
        raise ConfigError(f"--pid-file {path}: {(e.strerror or str(e)).lower()}") from None
