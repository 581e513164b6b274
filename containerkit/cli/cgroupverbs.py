"""Verbs that act on a container's cgroup: pause, resume, update, events (runc's)."""

from __future__ import annotations

import os
import sys

from .. import jsonfast as json
from ..errors import ConfigError
from .main import Context, UsageError

TYPE_CHECKING = False  # typing is not imported at run time: it costs ~2 ms of start-up
if TYPE_CHECKING:
    from typing import Any

    from ..container import Container


def _load(ctx: Context, container_id: str) -> Container:
    from .load import load

    # the driver is never used by these verbs: no cffi import
    return load(ctx.root, container_id, native=False)


# -- pause / resume -------------------------------------------------------------------------

def add_pause(parser: Any) -> None:
    parser.add_argument("id", metavar="container-id")


def do_pause(args: Any, ctx: Context) -> int:
    _load(ctx, args.id).pause()
    return 0


def add_resume(parser: Any) -> None:
    parser.add_argument("id", metavar="container-id")


def do_resume(args: Any, ctx: Context) -> int:
    _load(ctx, args.id).resume()
    return 0


# -- update ---------------------------------------------------------------------------------

# flag -> (section of linux.resources, key, type); runc's `update` flags
_UPDATE_FLAGS: dict[str, tuple[str, str, type]] = {
    "--blkio-weight": ("blockIO", "weight", int),
    "--cpu-period": ("cpu", "period", int),
    "--cpu-quota": ("cpu", "quota", int),
    "--cpu-share": ("cpu", "shares", int),
    "--cpu-rt-period": ("cpu", "realtimePeriod", int),
    "--cpu-rt-runtime": ("cpu", "realtimeRuntime", int),
    "--cpu-idle": ("cpu", "idle", int),
    "--cpuset-cpus": ("cpu", "cpus", str),
    "--cpuset-mems": ("cpu", "mems", str),
    "--memory": ("memory", "limit", int),
    "--memory-reservation": ("memory", "reservation", int),
    "--memory-swap": ("memory", "swap", int),
    "--pids-limit": ("pids", "limit", int),
}
_REFUSED_FLAGS = ("--l3-cache-schema", "--mem-bw-schema", "--kernel-memory",
                  "--kernel-memory-tcp")


def add_update(parser: Any) -> None:
    parser.add_argument("-r", "--resources", default="",
                        help="file with the resources JSON object, or - for stdin "
                             "(the other flags are then ignored)")
    for flag in _UPDATE_FLAGS:
        names = (flag, "--cpu-shares") if flag == "--cpu-share" else (flag,)
        parser.add_argument(*names, default=None)
    for flag in _REFUSED_FLAGS:
        parser.add_argument(flag, default=None, help="not supported")
    parser.add_argument("id", metavar="container-id")


def _flag_value(flag: str, text: str, kind: type) -> Any:
    if kind is str:
        return text
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"update: invalid value {text!r} for {flag}: "
                         "expected an integer") from None


def _resources_doc(args: Any) -> tuple[dict[str, Any], str]:
    if args.resources:
        name = "standard input" if args.resources == "-" else args.resources
        try:
            if args.resources == "-":
                raw = sys.stdin.buffer.read()
            else:
                with open(args.resources, "rb") as f:
                    raw = f.read()
            doc = json.loads(raw)
        except OSError as e:
            raise ConfigError(f"--resources {name}: "
                              f"{(e.strerror or str(e)).lower()}") from None
        except ValueError as e:
            raise ConfigError(f"--resources {name}: malformed JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"--resources {name}: expected a JSON object")
        return doc, name
    for flag in _REFUSED_FLAGS:
        if getattr(args, flag[2:].replace("-", "_")) is not None:
            raise ConfigError(f"update: {flag} is not supported (cgroup v2 / no Intel RDT)")
    doc: dict[str, Any] = {}
    for flag, (section, key, kind) in _UPDATE_FLAGS.items():
        text = getattr(args, flag[2:].replace("-", "_"))
        if text is not None:
            doc.setdefault(section, {})[key] = _flag_value(flag, text, kind)
    return doc, "the command line"


def do_update(args: Any, ctx: Context) -> int:
    from .. import spec as oci

    container = _load(ctx, args.id)
    doc, source = _resources_doc(args)
    resources = oci.Resources.from_dict(doc, source=source)
    container.update(resources)
    return 0


# -- events ---------------------------------------------------------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration for what a user types: "5s", "250ms", "1m30s", "1.5s"."""
    import re

    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"events: invalid --interval {text!r} (e.g. 5s, 500ms, 1m)")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError(f"events: --interval must be positive, not {text!r}")
    return seconds


def add_events(parser: Any) -> None:
    parser.add_argument("--interval", default="5s",
                        help="stats collection interval (default: 5s)")
    parser.add_argument("--stats", action="store_true",
                        help="display the container's stats then exit")
    parser.add_argument("id", metavar="container-id")


def _emit(kind: str, cid: str, data: dict[str, Any] | None = None) -> None:
    event: dict[str, Any] = {"type": kind, "id": cid}
    if data is not None:
        event["data"] = data
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _oom_kills(cgroup: str) -> int:
    try:
        with open(os.path.join(cgroup, "memory.events")) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def do_events(args: Any, ctx: Context) -> int:
    import select
    import time

    interval = parse_duration(args.interval)
    container = _load(ctx, args.id)
    if args.stats:
        _emit("stats", container.id, container.stats())
        return 0
    cgroup = container.cgroup_path
    _emit("stats", container.id, container.stats())   # refuses a stopped one, as runc
    ooms = _oom_kills(cgroup)
    events_fd = -1
    poller = select.poll()
    try:
        events_fd = os.open(os.path.join(cgroup, "memory.events"), os.O_RDONLY | os.O_CLOEXEC)
        poller.register(events_fd, select.POLLPRI | select.POLLERR)
    except OSError:
        pass                               # no memory controller: stats only
    try:
        next_stats = time.monotonic() + interval
        while True:
            now = time.monotonic()
            if now >= next_stats:
                try:
                    data = container.stats()
                except Exception:          # noqa: BLE001 - stopped meanwhile
                    break
                _emit("stats", container.id, data)
                next_stats = now + interval
            if events_fd >= 0:
                poller.poll(min(next_stats - time.monotonic(), 0.25) * 1000)
                os.pread(events_fd, 4096, 0)   # re-arm the notification
            else:
                time.sleep(max(0.0, min(next_stats - time.monotonic(), 0.25)))
            count = _oom_kills(cgroup)
            if count > ooms:
                ooms = count
                _emit("oom", container.id)
            if container.init is None or not container.init.alive():
                break
        count = _oom_kills(cgroup)         # an OOM kill that stopped the container
        if count > ooms:
            _emit("oom", container.id)
    finally:
        if events_fd >= 0:
            os.close(events_fd)
    return 0
