"""``exec`` and ``ps``: another process in a running container, and its process list.

Flags and behaviour are runc's: ``exec`` takes the process from ``--process FILE`` (the
other process flags are then ignored, as runc ignores them, but for ``--tty``) or builds
it from the container's own ``process`` with the command line's args and overrides. In
the foreground it waits and exits with the process's status (128+N for signal N),
forwarding the signals ``run`` forwards; ``--detach`` returns once the process exec'd,
leaving it to the caller's subreaper (conmon and containerd-shim are subreapers).
"""

from __future__ import annotations

import _signal as signal  # not signal: its enums import enum (~3 ms of every exec)

from .. import pathnames
from ..errors import ConfigError, UnsupportedError
from .args import REMAINDER
from .main import Context, UsageError

TYPE_CHECKING = False  # typing is not imported at run time: it costs ~2 ms of start-up
if TYPE_CHECKING:
    from typing import Any

    from .. import spec as oci
    from ..container import Container
    from ..process import Process


# -- exec ---------------------------------------------------------------------------------

def add_exec(parser: Any) -> None:
    parser.add_argument("--console-socket", default="", metavar="PATH",
                        help="AF_UNIX socket that receives the pty master (with --tty)")
    parser.add_argument("--cwd", default="", help="current working directory in the container")
    parser.add_argument("-e", "--env", action="append", default=[],
                        help="set an environment variable (KEY=VALUE; repeatable)")
    parser.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    parser.add_argument("-u", "--user", default="", help="UID[:GID] (numbers)")
    parser.add_argument("-g", "--additional-gids", action="append", default=[],
                        help="an additional gid (repeatable)")
    parser.add_argument("-p", "--process", default="", help="path to a process.json")
    parser.add_argument("-d", "--detach", action="store_true",
                        help="return once the process started")
    parser.add_argument("--pid-file", default="", help="file to write the process's pid to")
    parser.add_argument("--process-label", default="", help="SELinux label (refused: no LSM)")
    parser.add_argument("--apparmor", default="", help="AppArmor profile (refused: no LSM)")
    parser.add_argument("--no-new-privs", action="store_true",
                        help="set no_new_privs for the process")
    parser.add_argument("-c", "--cap", action="append", default=[],
                        help="add a capability to the process's sets (repeatable)")
    parser.add_argument("--preserve-fds", type=_count, default=0, metavar="N",
                        help="pass N additional file descriptors (3..3+N-1; after the "
                        "socket-activation ones when LISTEN_FDS is for this process)")
    parser.add_argument("--cgroup", action="append", default=[],
                        help="run in a sub-cgroup (not supported yet)")
    parser.add_argument("--ignore-paused", action="store_true",
                        help="exec in a paused container (not supported)")
    parser.add_argument("id", metavar="container-id")
    parser.add_argument("command", nargs=REMAINDER)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _refuse_unsupported(args: Any) -> None:
    if args.cgroup:
        raise UnsupportedError("exec --cgroup: sub-cgroups are not supported yet")
    if args.ignore_paused:
        raise UnsupportedError("exec --ignore-paused: exec in a paused container is not "
                               "supported (the process would freeze before its execve)")
    if args.apparmor or args.process_label:
        from ..native.plan import _lsm_refusal

        if args.apparmor:
            raise UnsupportedError(_lsm_refusal("exec --apparmor", "apparmor"))
        raise UnsupportedError(_lsm_refusal("exec --process-label", "selinux"))


def _from_file(path: str) -> oci.Process:
    from .. import spec as oci

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"--process {path}: {(e.strerror or str(e)).lower()}") from None
    return oci.loads_process(raw, source=path)


def _user(text: str) -> tuple[int, int | None]:
    uid, _, gid = text.partition(":")
    try:
        return int(uid), (int(gid) if gid else None)
    except ValueError:
        raise ConfigError(f"--user {text!r}: expected UID[:GID] (numbers)") from None


def build_process(args: Any, base: oci.Process | None) -> oci.Process:
    """The process to exec: ``--process FILE``, or the container's own process with the
    command line's args and overrides (runc's rules)."""
    from .. import spec as oci

    if args.process:
        return _from_file(args.process)
    if not args.command:
        raise UsageError("exec: a command is required unless --process is given")
    doc: dict[str, Any] = base.to_dict() if base is not None else {"cwd": "/"}
    doc["args"] = list(args.command)
    doc["terminal"] = bool(args.tty)
    doc["env"] = list(doc.get("env") or []) + list(args.env)
    if args.cwd:
        doc["cwd"] = args.cwd
    user = doc.setdefault("user", {"uid": 0, "gid": 0})
    if args.user:
        uid, gid = _user(args.user)
        user["uid"] = uid
        if gid is not None:
            user["gid"] = gid
    if args.additional_gids:
        try:
            user["additionalGids"] = [int(g) for g in args.additional_gids]
        except ValueError:
            raise ConfigError(f"--additional-gids {args.additional_gids}: expected "
                              "numbers") from None
    if args.no_new_privs:
        doc["noNewPrivileges"] = True
    if args.cap:
        from ..native.capabilities import NUMBERS

        caps = doc.setdefault("capabilities", {})
        for name in args.cap:
            if name not in NUMBERS:
                raise ConfigError(f"--cap {name}: unknown capability")
            for field in ("bounding", "effective", "permitted"):
                caps.setdefault(field, [])
                if name not in caps[field]:
                    caps[field].append(name)
            # ambient needs inheritable, which --cap does not add: only where the
            # process already has inheritable capabilities (runc's rule)
            if caps.get("inheritable"):
                for field in ("inheritable", "ambient"):
                    caps.setdefault(field, [])
                    if name not in caps[field]:
                        caps[field].append(name)
    return oci.Process.from_dict(doc, source="exec")


def _kill(process: Process) -> None:
    if process.alive():
        process.signal(signal.SIGKILL)
    process.wait()


def do_exec(args: Any, ctx: Context) -> int:
    from .lifecycle import FORWARDED, SignalGuard, _load, check_terminal, passed_fds, write_pid_file

    _refuse_unsupported(args)
    # before this process opens anything (the init's pidfd would take a closed fd 3)
    total, listen = passed_fds(ctx, args.preserve_fds)
    container: Container = _load(ctx, args.id)
    if args.process:
        proc = build_process(args, None)
    else:
        proc = build_process(args, container.spec.process)
    if args.tty:
        proc.terminal = True
    check_terminal(proc.terminal, args.detach, args.console_socket)
    forwarder = None if args.detach else SignalGuard(FORWARDED)
    try:
        process = container.new_process(
            proc, console_socket=pathnames.abspath(args.console_socket)
            if args.console_socket else None, preserve_fds=total, listen_fds=listen)
        try:
            if args.pid_file:
                write_pid_file(args.pid_file, process.pid)
        except BaseException:
            _kill(process)
            raise
        ctx.log.debug(f"exec in {args.id}: pid {process.pid}")
        if forwarder is None:
            return 0
        forwarder.forward_to(process)
        if process.terminal is not None:    # exec -t: this process is the terminal
            from ..native.console import relay

            relay(process.terminal.fileno(), 0, 1, process.pidfd)
            process.terminal.close()
        code = process.wait()
    finally:
        if forwarder is not None:
            forwarder.restore()
    return code if code is not None and code >= 0 else 255


# -- ps -----------------------------------------------------------------------------------

def add_ps(parser: Any) -> None:
    parser.add_argument("-f", "--format", choices=("table", "json"), default="table",
                        help="table (ps output, default) or json (the pids)")
    parser.add_argument("id", metavar="container-id")
    parser.add_argument("ps_args", nargs=REMAINDER,
                        help="options for ps(1) with --format table (default: -ef)")


def do_ps(args: Any, ctx: Context) -> int:
    import sys

    from .lifecycle import _load

    container = _load(ctx, args.id, native=False)
    pids = container.processes()
    if args.format == "json":
        import json

        sys.stdout.write(json.dumps(pids, separators=(",", ":")) + "\n")
        return 0
    sys.stdout.write(ps_table(pids, args.ps_args or ["-ef"]))
    return 0


def ps_table(pids: list[int], ps_args: list[str]) -> str:
    """``ps ps_args`` filtered to ``pids``: the header and the lines whose PID column is
    one of them (runc's way: the column named PID in the header)."""
    import subprocess

    try:
        out = subprocess.run(["ps", *ps_args], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
    except FileNotFoundError:
        raise ConfigError("ps: the ps command is not installed on this host") from None
    lines = out.decode(errors="replace").split("\n")
    header = lines[0]
    try:
        index = header.split().index("PID")
    except ValueError:
        raise ConfigError(f"ps {' '.join(ps_args)}: couldn't find PID field in ps output: "
                          f"{header.strip()!r}") from None
    wanted = set(pids)
    kept = [header]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > index and fields[index].isdigit() and int(fields[index]) in wanted:
            kept.append(line)
    return "\n".join(kept) + "\n"
