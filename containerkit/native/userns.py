"""A new user namespace's id maps: checked in the parent before the clone, written by the
parent to ``/proc/<pid>/{setgroups,uid_map,gid_map}`` while the init waits (sync.py's
IDMAPPED), as runc's nsexec does.

The kernel's rules (``kernel/user_namespace.c``), checked here so that a bad map is a
one-line error before anything exists: at most 340 lines, no empty or wrapping range, no
two ranges that overlap on either side, every host id mapped in this process's own
namespace, and, for a writer without CAP_SETUID/CAP_SETGID, one line of size 1 that maps
its own euid/egid, with setgroups denied first (the only case where runc writes "deny";
a privileged writer leaves "allow").
"""

from __future__ import annotations

import posix

from .. import spec as oci
from ..errors import ContainerkitError, SpecError, UnsupportedError
from . import ops

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple

    from .plan import Plan
else:  # typing.NamedTuple's import costs every create/run ~4 ms
    from ..records import NamedTuple

MAX_LINES = 340          # UID_GID_MAP_MAX_EXTENTS
ID_LIMIT = 1 << 32       # ids are u32 and (u32)-1 is never valid
CAP_SETGID = 6
CAP_SETUID = 7
CAP_SYS_ADMIN = 21


class IdMaps(NamedTuple):
    """What the parent writes for a new user namespace."""

    uid_map: bytes
    gid_map: bytes
    deny_setgroups: bool   # an unprivileged writer: the kernel requires it for gid_map


_effective_caps: int | None = None


def effective_caps() -> int:
    """This process's effective capability set (read once: a runtime does not change it)."""
    global _effective_caps
    if _effective_caps is None:
        with open("/proc/self/status") as f:
            _effective_caps = next(int(line.split()[1], 16) for line in f
                                   if line.startswith("CapEff:"))
    return _effective_caps


# the CLI's --rootless true/false (None: auto)
FORCE_ROOTLESS: bool | None = None


def rootless() -> bool:
    """Whether this process is unprivileged on the host: not root, or root of a user
    namespace that does not map every id (as runc's ``--rootless auto`` decides)."""
    if FORCE_ROOTLESS is not None:
        return FORCE_ROOTLESS
    if posix.geteuid() != 0:
        return True
    try:
        with open("/proc/self/uid_map") as f:
            lines = f.read().split()
    except OSError:
        return False
    return lines != ["0", "0", "4294967295"]


def _own_ranges(kind: str) -> list[tuple[int, int]]:
    """The host ids this process's user namespace maps, as merged [first, end) ranges."""
    ranges = []
    try:
        with open(f"/proc/self/{kind}_map") as f:
            for line in f:
                _, lower, count = (int(x) for x in line.split())
                ranges.append((lower, lower + count))
    except OSError:
        return [(0, ID_LIMIT - 1)]
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for first, end in ranges:
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((first, end))
    return merged


def _check(maps: list[oci.IDMapping], field: str, kind: str, privileged: bool,
           own_id: int) -> bytes:
    """The map file's text for ``maps``, or a SpecError/UnsupportedError naming the line."""
    if not maps:
        raise SpecError(f"config.json: {field}: a new user namespace needs at least one "
                        "mapping")
    if len(maps) > MAX_LINES:
        raise SpecError(f"config.json: {field}: {len(maps)} mappings, the kernel takes at "
                        f"most {MAX_LINES}")
    for i, m in enumerate(maps):
        if m.size == 0:
            raise SpecError(f"config.json: {field}[{i}].size: must not be 0")
        for name, first in (("containerID", m.container_id), ("hostID", m.host_id)):
            if first + m.size >= ID_LIMIT:
                raise SpecError(f"config.json: {field}[{i}]: {name} {first} + size {m.size} "
                                f"goes past the last id {ID_LIMIT - 2}")
        for j, other in enumerate(maps[:i]):
            for name, a, b in (("containerID", m.container_id, other.container_id),
                               ("hostID", m.host_id, other.host_id)):
                if a < b + other.size and b < a + m.size:
                    raise SpecError(f"config.json: {field}[{i}]: {name} range {a}-"
                                    f"{a + m.size - 1} overlaps {field}[{j}]")
    if not privileged:
        m = maps[0]
        if len(maps) != 1 or m.size != 1 or m.host_id != own_id:
            raise UnsupportedError(
                f"{field}: an unprivileged user can map only its own {kind} ({own_id}, "
                f"one line of size 1); larger maps need newuidmap/newgidmap, which "
                "containerkit does not use yet")
    else:
        own = _own_ranges(kind)
        for i, m in enumerate(maps):
            if not any(lo <= m.host_id and m.host_id + m.size <= hi for lo, hi in own):
                raise UnsupportedError(
                    f"{field}[{i}]: host {kind}s {m.host_id}-{m.host_id + m.size - 1} are "
                    "not all mapped in this process's own user namespace")
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps).encode()


def check_ids(spec: oci.Spec, linux: oci.Linux) -> None:
    """Every id the container takes inside a new user namespace must be mapped: the
    process's user and groups, and uid=/gid= mount options (runc checks the same); the
    kernel would refuse them only half-way through the setup, with EINVAL."""
    def mapped(maps: list[oci.IDMapping], n: int) -> bool:
        return any(m.container_id <= n < m.container_id + m.size for m in maps)

    wanted: list[tuple[str, int, str]] = []
    if spec.process is not None:
        u = spec.process.user
        wanted += [("process.user.uid", u.uid, "uid"), ("process.user.gid", u.gid, "gid")]
        wanted += [(f"process.user.additionalGids[{i}]", g, "gid")
                   for i, g in enumerate(u.additional_gids)]
    for i, m in enumerate(spec.mounts):
        for opt in m.options or ():
            key, eq, value = opt.partition("=")
            if eq and key in ("uid", "gid") and value.isdigit():
                wanted.append((f"mounts[{i}].options {opt}", int(value), key))
    for field, n, kind in wanted:
        maps = linux.uid_mappings if kind == "uid" else linux.gid_mappings
        if not mapped(maps, n):
            raise SpecError(f"config.json: {field}: {kind} {n} is not mapped in "
                            f"linux.{kind}Mappings")


def _sysctl(name: str) -> str | None:
    try:
        with open(f"/proc/sys/{name}") as f:
            return f.read().strip()
    except OSError:
        return None


def check(linux: oci.Linux, new_userns: bool, in_userns: bool = False) -> IdMaps | None:
    """The maps to write for a new user namespace; refuses mappings without one, and
    says why when this host or this user cannot make the namespaces asked for.
    ``in_userns``: the init joins a user namespace by path instead."""
    caps = effective_caps()
    if not new_userns:
        if linux.uid_mappings or linux.gid_mappings:
            field = "uidMappings" if linux.uid_mappings else "gidMappings"
            raise SpecError(f"config.json: linux.{field}: set, but linux.namespaces has no "
                            "new user namespace (one joined by path keeps its own maps)")
        if not caps >> CAP_SYS_ADMIN & 1 and not in_userns:
            raise UnsupportedError(
                "linux.namespaces: this process lacks CAP_SYS_ADMIN, so the container "
                "needs a user namespace (containerkit spec --rootless writes one)")
        return None
    if _sysctl("user/max_user_namespaces") == "0":
        raise UnsupportedError("linux.namespaces: user namespaces are disabled on this host "
                               "(sysctl user.max_user_namespaces = 0)")
    if not caps >> CAP_SYS_ADMIN & 1 and _sysctl("kernel/unprivileged_userns_clone") == "0":
        raise UnsupportedError("linux.namespaces: this host forbids user namespaces to "
                               "unprivileged users (sysctl kernel.unprivileged_userns_clone "
                               "= 0)")
    uid_priv = bool(caps >> CAP_SETUID & 1)
    gid_priv = bool(caps >> CAP_SETGID & 1)
    return IdMaps(
        _check(linux.uid_mappings, "linux.uidMappings", "uid", uid_priv, posix.geteuid()),
        _check(linux.gid_mappings, "linux.gidMappings", "gid", gid_priv, posix.getegid()),
        deny_setgroups=not gid_priv)


def _proc_of(ns_path: str) -> str | None:
    """``/proc/<pid>`` for a ``/proc/<pid>/ns/user`` path (None for a bind-mounted file)."""
    parts = ns_path.split("/")
    if len(parts) == 5 and parts[:2] == ["", "proc"] and parts[3:] == ["ns", "user"]:
        return f"/proc/{parts[2]}"
    return None


def setgroups_denied(ns_path: str) -> bool:
    """Whether a user namespace joined by ``/proc/<pid>/ns/user`` refuses setgroups(2)
    (read from that process; a namespace file elsewhere: assume not). Also refuses one
    that maps no uid or gid 0: the init becomes root there (runc does too)."""
    proc = _proc_of(ns_path)
    if proc is None:
        return False
    try:
        for kind in ("uid", "gid"):
            with open(f"{proc}/{kind}_map") as f:
                rows = [[int(x) for x in line.split()] for line in f]
            if not any(first == 0 and count > 0 for first, _, count in rows):
                raise UnsupportedError(
                    f"linux.namespaces: user namespace {ns_path}: maps no {kind} 0, which "
                    "the container's init becomes")
        with open(f"{proc}/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


def enter_steps(plan: Plan, init_pidfd: int) -> None:
    """For a process exec'd into a container with a user namespace, right after its
    setns: become root of that namespace like the init (else it would keep the caller's
    host uid, unmapped there: host root's owner rights on the host's files), and skip
    setgroups where the namespace denies it."""
    plan.in_userns = True
    pid = ""
    try:
        with open(f"/proc/self/fdinfo/{init_pidfd}") as f:
            pid = next((line.split()[1] for line in f if line.startswith("Pid:")), "")
        with open(f"/proc/{pid}/setgroups") as f:
            plan.setgroups_denied = f.read().strip() == "deny"
    except OSError:
        pass
    plan.add("user namespace", ops.become_root(), detail="setresuid/setresgid 0")


def write(pid: int, maps: IdMaps) -> None:
    """Write the maps of the user namespace the (waiting) child ``pid`` created."""
    if maps.deny_setgroups:
        write_proc(pid, "setgroups", b"deny", "linux.gidMappings")
    write_proc(pid, "uid_map", maps.uid_map, "linux.uidMappings")
    write_proc(pid, "gid_map", maps.gid_map, "linux.gidMappings")


def write_proc(pid: int, name: str, data: bytes, field: str) -> None:
    """One write(2) of ``data`` to /proc/<pid>/<name> (a map is taken only whole, once);
    errors name ``field``."""
    path = f"/proc/{pid}/{name}"
    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, data)    # one write: the kernel takes a map only whole, once
        finally:
            posix.close(fd)
    except OSError as e:
        raise ContainerkitError(f"{field}: writing {path}: {e.strerror}") from None
