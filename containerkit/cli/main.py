"""``containerkit``: the runc-compatible command line.

Argument parsing only: every verb calls the library. Start-up time matters (podman and
containerd call ``state``, ``kill`` and ``delete`` often), so this module imports little:
the global flags are parsed by hand, only the chosen verb's parser is built (``args.py``,
not argparse), and each verb imports the library modules it needs inside its own function.

Every failure is one line on stderr (``containerkit: <message>``), the same message goes
to the ``--log`` file (text or JSON lines, like runc's logrus output), and the exit status
is 1. No traceback reaches the user; ``--debug`` writes it to the log instead.
"""

from __future__ import annotations

import errno
import posix
import sys

from .. import __version__, pathnames
from ..errors import ContainerkitError, ContainerNotFound
from ..state import DEFAULT_ROOT

TYPE_CHECKING = False  # typing is not imported at run time: it costs ~2 ms of start-up
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

PROG = "containerkit"

# verb -> (module under containerkit.cli, one-line description); the module has
# ``add_<verb>(parser)`` and ``do_<verb>(args, ctx) -> int``.
VERBS: dict[str, tuple[str, str]] = {
    "checkpoint": ("unsupported", "checkpoint a running container"),
    "create": ("lifecycle", "create a container"),
    "delete": ("lifecycle", "delete any resources held by the container"),
    "events": ("cgroupverbs", "display container events and statistics"),
    "exec": ("execverbs", "execute new process inside the container"),
    "features": ("query", "show the enabled features"),
    "kill": ("lifecycle", "send a signal (default: SIGTERM) to the container's init process"),
    "list": ("query", "list the containers under the state root"),
    "pause": ("cgroupverbs", "suspend all processes inside the container"),
    "ps": ("execverbs", "display the processes running inside a container"),
    "restore": ("unsupported", "restore a container from a previous checkpoint"),
    "resume": ("cgroupverbs", "resume all processes that have been previously paused"),
    "run": ("lifecycle", "create and run a container"),
    "spec": ("specgen", "create a new specification file"),
    "start": ("lifecycle", "execute the user defined process in a created container"),
    "state": ("query", "output the state of a container"),
    "update": ("cgroupverbs", "update container resource constraints"),
}

_GLOBAL_VALUE = ("--root", "--log", "--log-format", "--rootless", "--criu")
_GLOBAL_BOOL = ("--debug", "--systemd-cgroup", "--help", "-h", "--version", "-v")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")       # Go's strconv.ParseBool
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class CLIError(Exception):
    """A failure found by the command line itself; ``status`` is the exit status."""

    status = 1


class UsageError(CLIError):
    """Bad command line: one line, exit status 1 (like runc's "Incorrect Usage")."""


class Log:
    """Error and debug lines: stderr, plus the ``--log`` file in runc's text or JSON format."""

    def __init__(self) -> None:
        self.fd = -1
        self.format = "text"
        self.debug_enabled = False

    def _record(self, level: str, msg: str) -> str:
        import time

        from .. import jsonfast as json

        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.format == "json":
            return json.dumps({"level": level, "msg": msg, "time": now})
        return f'time="{now}" level={level} msg={json.dumps(msg, ensure_ascii=False)}'

    def open(self, path: str) -> None:
        """Open the --log file (append, like runc); failing to open it is an error."""
        try:
            self.fd = posix.open(path, posix.O_WRONLY | posix.O_CREAT | posix.O_APPEND
                                 | posix.O_CLOEXEC, 0o644)
        except OSError as e:
            raise UsageError(f"--log {path}: {error_message(e)}") from None

    def _to_file(self, level: str, msg: str) -> bool:
        if self.fd < 0:
            return False
        try:
            posix.write(self.fd, pathnames.fsencode(self._record(level, msg) + "\n"))
        except OSError:
            return False
        return True

    def error(self, msg: str) -> None:
        msg = " ".join(msg.split("\n")) or "unknown error"
        self._to_file("error", msg)
        _write_stderr(f"{PROG}: {msg}\n")

    def debug(self, msg: str) -> None:
        if self.debug_enabled and not self._to_file("debug", msg):
            _write_stderr(self._record("debug", msg) + "\n")


def _write_stderr(text: str) -> None:
    """A path that is not valid in the filesystem encoding goes out as the bytes it was
    (surrogateescape, as the --log file gets it and the native front end writes it),
    not as the text ``\\udcff`` of stderr's backslashreplace."""
    try:
        stream = sys.stderr
        stream.flush()
        buffer = getattr(stream, "buffer", None)
        if buffer is None:          # replaced by a text-only stream
            stream.write(text)
            stream.flush()
        else:
            buffer.write(pathnames.fsencode(text))
            buffer.flush()
    except (OSError, ValueError):
        pass


class Context:
    """What every verb gets besides its own arguments."""

    def __init__(self, root: str, log: Log) -> None:
        self.root = root
        self.log = log


# -- global flags (hand-parsed: they come before the verb, like urfave/cli) ---------------

def _parse_global(argv: Sequence[str]) -> tuple[dict[str, Any], str | None, list[str]]:
    opts: dict[str, Any] = {"root": DEFAULT_ROOT, "log": None, "log_format": "text",
                            "debug": False, "systemd_cgroup": False, "rootless": "auto",
                            "help": False, "version": False}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.partition("=")
        if name in _GLOBAL_VALUE:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: {name}")
                value = argv[i]
            opts[name[2:].replace("-", "_")] = value
        elif name in _GLOBAL_BOOL and not eq:
            key = {"-h": "help", "-v": "version"}.get(name, name[2:].replace("-", "_"))
            opts[key] = True
        else:
            raise UsageError(f"flag provided but not defined: {name}")
        i += 1
    verb = argv[i] if i < len(argv) else None
    return opts, verb, list(argv[i + 1:])


def _check_global(opts: dict[str, Any], log: Log) -> None:
    if opts["log_format"] not in ("text", "json"):
        raise UsageError(f"invalid --log-format {opts['log_format']!r}: use text or json")
    log.format = opts["log_format"]
    log.debug_enabled = bool(opts["debug"])
    if opts["log"]:
        log.open(opts["log"])
    if not opts["root"]:
        raise UsageError("--root: empty path")
    rootless = opts["rootless"]
    if rootless != "auto":
        if rootless not in _TRUE and rootless not in _FALSE:
            raise UsageError(f"invalid --rootless value {rootless!r}: use true, false or auto")
        from ..native import userns

        # runc's meaning: true = behave as unprivileged (run without a cgroup where
        # none can be made), false = never; auto = decide from the uid and uid_map
        userns.FORCE_ROOTLESS = rootless in _TRUE


def _systemd_refusal() -> str:
    """Why --systemd-cgroup is refused: no systemd here, or no systemd driver yet."""
    if not pathnames.isdir("/run/systemd/system"):
        return ("--systemd-cgroup: no systemd cgroup manager on this host "
                "(/run/systemd/system is missing); drop the flag: containerkit manages "
                "cgroup v2 directly")
    return ("--systemd-cgroup: the systemd cgroup driver is not supported yet; drop the "
            "flag: containerkit manages cgroup v2 directly")


def _usage() -> str:
    lines = [
        f"usage: {PROG} [global options] command [command options] [arguments...]",
        "",
        "A Linux container runtime in Python (runc-compatible command line).",
        "",
        "commands:",
    ]
    for verb, (_, text) in sorted(VERBS.items()):
        lines.append(f"  {verb:<11} {text}")
    lines.append("  help, h     show a list of commands or help for one command")
    lines += [
        "",
        "global options:",
        "  --debug             enable debug logging",
        "  --log FILE          also write the log (errors, debug lines) to FILE",
        "  --log-format FMT    log format: text (default) or json",
        f"  --root DIR          root directory of the container state (default {DEFAULT_ROOT})",
        "  --criu PATH         accepted for compatibility, unused (no checkpoint/restore)",
        "  --systemd-cgroup    refused: no systemd cgroup driver",
        "  --rootless VALUE    auto (default), true or false",
        "  --help, -h          show help",
        "  --version, -v       print the version",
    ]
    return "\n".join(lines) + "\n"


def _version() -> str:
    """runc's layout: name and version, commit, spec, the language runtime, and crun's
    +FEATURE/-FEATURE line for what is built in."""
    from ..features import builtin_summary
    from ..spec import OCI_VERSION

    return (f"{PROG} version {__version__}\n"
            f"commit: {_commit()}\n"
            f"spec: {OCI_VERSION}\n"
            f"python: {sys.version.split()[0]}\n"
            f"features: {builtin_summary()}\n")


def _commit() -> str:
    """The git commit of the source tree this package runs from, if it is a checkout."""
    top = pathnames.dirname(pathnames.dirname(pathnames.dirname(pathnames.abspath(__file__))))
    git = pathnames.join(top, ".git")
    try:
        if pathnames.isfile(git):              # a worktree: "gitdir: <path>"
            with open(git) as f:
                git = f.read().split(":", 1)[1].strip()
        with open(pathnames.join(git, "HEAD")) as f:
            head = f.read().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        common = git
        if pathnames.isfile(pathnames.join(git, "commondir")):
            with open(pathnames.join(git, "commondir")) as f:
                common = pathnames.join(git, f.read().strip())
        for base in (git, common):
            path = pathnames.join(base, ref)
            if pathnames.isfile(path):
                with open(path) as f:
                    return f.read().strip()
        with open(pathnames.join(common, "packed-refs")) as f:
            for line in f:
                if line.rstrip().endswith(" " + ref):
                    return line.split()[0]
    except (OSError, IndexError):
        pass
    return "unknown"


# -- verb parsers (cli/args.py: argparse's API at a fraction of its start-up cost) --------

def build_parser(verb: str) -> Any:
    """The parser of one verb (only that one: building all of them costs time)."""
    from .args import Parser

    module_name, text = VERBS[verb]
    # __import__, not importlib: importlib (and warnings) would cost every call ~0.3 ms
    module = __import__(f"{__package__}.{module_name}", fromlist=("_",))
    parser = Parser(prog=f"{PROG} {verb}", description=text)
    getattr(module, f"add_{verb}")(parser)
    parser.set_defaults(_run=getattr(module, f"do_{verb}"))
    return parser


# -- error text ---------------------------------------------------------------------------

_LOWER = {errno.ENOENT: "no such file or directory", errno.EACCES: "permission denied"}


def error_message(exc: BaseException) -> str:
    """One line for any failure. ENOENT and EACCES read like Go's errors ("no such file or
    directory", "permission denied"): podman maps those texts to exit codes 127 and 126."""
    if isinstance(exc, ContainerNotFound):
        return "container does not exist"
    if isinstance(exc, OSError) and not isinstance(exc, ContainerkitError):
        text = exc.strerror or str(exc)
        if exc.errno in _LOWER:
            text = _LOWER[exc.errno]
        where = " ".join(pathnames.fsdecode(f) for f in (exc.filename, exc.filename2)
                         if f is not None)
        msg = f"{where}: {text}" if where else text
    elif isinstance(exc, CLIError | ContainerkitError):
        msg = str(exc)
    else:
        msg = f"internal error: {type(exc).__name__}: {exc}"
    for code, lower in _LOWER.items():
        msg = msg.replace(posix.strerror(code), lower)
    return " ".join(msg.split()) or type(exc).__name__


# -- entry point --------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    log = Log()
    try:
        return _main(argv, log)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 1
    except SystemExit as e:          # a verb's --help (status 0)
        return e.code if isinstance(e.code, int) else 0
    except BaseException as e:   # noqa: B036 - one line, never a traceback
        if log.debug_enabled:
            import traceback

            log.debug("".join(traceback.format_exception(e)).rstrip())
        log.error(error_message(e))
        return e.status if isinstance(e, CLIError) else 1


def run() -> NoReturn:
    """The command's entry point (the launcher's and ``python -m containerkit``'s):
    :func:`main`, then exit without the interpreter's finalization when nothing needs it.

    Tearing down ~60 modules and their classes costs every call ~2.5 ms of CPU. It is
    skipped only when output is flushed, no ``atexit`` handler was registered (logging
    registers one) and no other thread runs; otherwise this is ``sys.exit``."""
    status = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    import atexit

    threading = sys.modules.get("threading")
    if isinstance(status, int) and atexit._ncallbacks() == 0 and (
            threading is None or threading.active_count() == 1):
        posix._exit(status & 0xFF)
    sys.exit(status)


def _main(argv: list[str], log: Log) -> int:
    opts, verb, rest = _parse_global(argv)
    _check_global(opts, log)
    if opts["version"]:
        sys.stdout.write(_version())
        return 0
    if opts["help"] or verb is None:
        sys.stdout.write(_usage())
        return 0
    if verb in ("help", "h"):
        if rest and rest[0] in VERBS:
            build_parser(rest[0]).print_help()
        elif rest:
            raise UsageError(f"no help topic for {rest[0]!r}")
        else:
            sys.stdout.write(_usage())
        return 0
    if verb not in VERBS:
        raise UsageError(f"unknown command {verb!r} (see '{PROG} --help')")
    if opts["systemd_cgroup"]:
        raise UsageError(_systemd_refusal())
    from .args import ParseError

    try:
        args = build_parser(verb).parse_args(rest)
    except ParseError as e:
        raise UsageError(str(e)) from None
    ctx = Context(pathnames.abspath(opts["root"]), log)
    log.debug(f"{verb} {' '.join(rest)} (root {ctx.root})")
    status = args._run(args, ctx)
    sys.stdout.flush()
    return status


def _quiet_stdout() -> None:
    # stdout's reader went away (e.g. `containerkit list | head -1`): stop writing quietly
    try:
        devnull = posix.open(pathnames.DEVNULL, posix.O_WRONLY)
        posix.dup2(devnull, sys.stdout.fileno())
        posix.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
