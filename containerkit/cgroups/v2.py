"""The container's cgroup v2 directory: make it, hand its fd to clone3, remove it.

Works on a pure v2 host (``/sys/fs/cgroup``) and on a hybrid one (cgroup2 at
``/sys/fs/cgroup/unified``). ``linux.resources`` is applied by :meth:`Cgroup.set_resources`
(mapping in resources.py); what cgroup v2 cannot do is refused.
"""

from __future__ import annotations

import _signal as signal  # not signal: its enums import enum (CLI start-up)
import posix
import select
import time

from .. import pathnames
from ..errors import UnsupportedError

TYPE_CHECKING = False  # typing is not imported at run time: the CLI would pay ~2 ms
if TYPE_CHECKING:
    from typing import Any

    from .. import spec

CGROUP2_SUPER_MAGIC = 0x63677270
_mountpoint_cache: str | None = None


def cgroup2_mountpoint() -> str:
    """Where cgroup2 is mounted: /sys/fs/cgroup (pure v2) or /sys/fs/cgroup/unified (hybrid).

    Only a cgroup2 root has ``cgroup.controllers``: one stat each for the two usual places
    before reading mountinfo (~0.1 ms of every create/delete, for all the host's mounts)."""
    global _mountpoint_cache
    if _mountpoint_cache is None:
        for usual in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
            if pathnames.exists(f"{usual}/cgroup.controllers"):
                _mountpoint_cache = usual
                return usual
        found = ""
        with open("/proc/self/mountinfo") as f:
            for line in f:
                pre, _, post = line.partition(" - ")
                if post.startswith("cgroup2 "):
                    mp = pre.split()[4]
                    if not found or mp == "/sys/fs/cgroup":
                        found = mp
        if not found:
            raise UnsupportedError("cgroups: no cgroup2 filesystem is mounted on this host")
        _mountpoint_cache = found
    return _mountpoint_cache


def container_cgroup_path(container_id: str, cgroups_path: str | None) -> str:
    """Absolute cgroup directory for a container.

    ``linux.cgroupsPath`` absolute: relative to the cgroup2 mount. Relative: relative to
    the cgroup this runtime runs in. Empty: ``/containerkit/<id>``.
    """
    root = cgroup2_mountpoint()
    if not cgroups_path:
        rel = f"containerkit/{container_id}"
    elif cgroups_path.startswith("/"):
        rel = cgroups_path.lstrip("/")
    else:
        rel = pathnames.join(_own_cgroup().lstrip("/"), cgroups_path)
    path = pathnames.normpath(pathnames.join(root, rel))
    if path == root or not path.startswith(root + "/"):
        raise UnsupportedError(f"linux.cgroupsPath: {cgroups_path!r} is outside the cgroup tree")
    return path


def _write(path: str, data: str) -> None:
    """One write(2) on an existing cgroupfs file (never created)."""
    fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
    try:
        posix.write(fd, data.encode())
    finally:
        posix.close(fd)


def _own_cgroup() -> str:
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return "/"


class Cgroup:
    """One cgroup v2 directory that containerkit created (and so may remove)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def create(self) -> int:
        """mkdir -p; returns an O_DIRECTORY fd for CLONE_INTO_CGROUP (caller closes it)."""
        pathnames.makedirs(self.path, mode=0o755, exist_ok=True)
        return posix.open(self.path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)

    def add(self, pid: int) -> None:
        with open(pathnames.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def pids(self) -> list[int]:
        try:
            with open(pathnames.join(self.path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def all_pids(self) -> list[int]:
        """The pids of this cgroup and of every cgroup below it (a container may make
        its own): what ``ps`` lists and ``kill --all`` signals."""
        from os import walk  # ps and kill --all only (see pathnames.py)

        pids: list[int] = []
        for top, _, _ in walk(self.path):
            pids += Cgroup(top).pids()
        return pids

    def populated(self) -> bool:
        try:
            with open(pathnames.join(self.path, "cgroup.events")) as f:
                for line in f:
                    if line.startswith("populated "):
                        return line.split()[1] == "1"
        except FileNotFoundError:
            return False
        return bool(self.pids())

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """cgroup.kill where the kernel has it (5.14+), else signal each pid, in the
        cgroups below too (as cgroup.kill does)."""
        if sig == signal.SIGKILL:
            try:
                with open(pathnames.join(self.path, "cgroup.kill"), "w") as f:
                    f.write("1")
                return
            except FileNotFoundError:
                pass
        for pid in self.all_pids():
            try:
                posix.kill(pid, sig)
            except ProcessLookupError:
                pass

    # -- freezer (cgroup.freeze / cgroup.events "frozen": core cgroup v2, no controller) ---

    def frozen(self) -> bool:
        """Whether the cgroup is asked to be frozen (``cgroup.freeze`` reads 1)."""
        try:
            with open(pathnames.join(self.path, "cgroup.freeze"), "rb") as f:
                return f.read().strip() == b"1"
        except OSError:
            return False

    def freeze(self, frozen: bool = True, timeout: float = 10.0) -> None:
        """Write ``cgroup.freeze`` and wait (POLLPRI on ``cgroup.events``) until the kernel
        reports ``frozen 1`` (or ``frozen 0``). A freeze that does not complete in time is
        undone (thawed) and raises TimeoutError."""
        want = b"frozen 1" if frozen else b"frozen 0"
        events = pathnames.join(self.path, "cgroup.events")
        with open(events, "rb") as f:       # opened first: no change can be missed
            _write(pathnames.join(self.path, "cgroup.freeze"), "1" if frozen else "0")
            deadline = time.monotonic() + timeout
            poller = select.poll()
            poller.register(f.fileno(), select.POLLPRI | select.POLLERR)
            while True:
                f.seek(0)
                if want in f.read().splitlines():
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    if frozen:
                        _write(pathnames.join(self.path, "cgroup.freeze"), "0")
                    state = "frozen" if frozen else "thawed"
                    raise TimeoutError(f"{self.path}: not {state} after {timeout}s")
                poller.poll(min(left, 0.1) * 1000)

    def remove(self, timeout: float = 10.0) -> None:
        """Kill what is left, wait until the cgroup is empty, rmdir it (and empty parents
        that containerkit made, up to ``containerkit/``). A frozen cgroup is thawed once
        its processes are killed (SIGKILL reaches frozen tasks; thawing makes sure)."""
        if not pathnames.isdir(self.path):
            return
        if self.populated():
            self.kill_all()
            if self.frozen():
                try:
                    _write(pathnames.join(self.path, "cgroup.freeze"), "0")
                except OSError:
                    pass
            try:
                self._wait_empty(timeout)
            except OSError as e:
                # removed by another process (a concurrent delete) while we waited:
                # cgroupfs answers ENODEV on the open file of a removed cgroup
                if isinstance(e, TimeoutError) or pathnames.isdir(self.path):
                    raise
                return
        try:
            posix.rmdir(self.path)
        except FileNotFoundError:
            return
        parent = pathnames.dirname(self.path)
        if pathnames.basename(parent) == "containerkit":
            try:
                posix.rmdir(parent)
            except OSError:
                pass                     # another container still lives there

    def _wait_empty(self, timeout: float) -> None:
        """Until cgroup.events says "populated 0". The kernel delays a notification that
        comes within 10 ms of the one before (CGROUP_FILE_NOTIFY_MIN_INTV), e.g. a kill
        soon after the start: the file is read again after 1, 2, 4... ms meanwhile."""
        events = pathnames.join(self.path, "cgroup.events")
        deadline = time.monotonic() + timeout
        pause = 0.001
        with open(events, "rb") as f:
            poller = select.poll()
            poller.register(f.fileno(), select.POLLPRI | select.POLLERR)
            while True:
                f.seek(0)
                if b"populated 0" in f.read():
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.path}: processes still present after {timeout}s")
                poller.poll(min(left, pause) * 1000)
                pause = min(pause * 2, 0.1)

    # -- linux.resources (see resources.py) ------------------------------------------------

    def set_resources(
        self,
        resources: spec.Resources | None,
        *,
        root: str | None = None,
        update: bool = False,
        shares_formula: str = "linear",
    ) -> list[tuple[str, str, str]]:
        """Apply ``linux.resources``: plan the writes, enable the controllers they need from
        the cgroup2 root down to the parent, plan again (the controllers' files now exist, so
        ``io.bfq.weight`` vs ``io.weight`` and ``hugetlb.*.rsvd.max`` are decided on what the
        kernel offers), write. The directory must exist (:meth:`create`).

        ``update=True`` honours ``memory.checkBeforeUpdate``. Returns the writes made.
        ``linux.resources.devices`` is not handled here (eBPF device program).
        """
        if resources is None or not limits_asked(resources):
            return []                    # the planner module costs a CLI create ~0.6 ms
        from . import resources as res

        writes = res.plan_writes(resources, self.path, shares_formula=shares_formula)
        if not writes:
            return writes
        if update:
            res.check_memory_update(self.path, resources)
        res.enable_controllers(
            root or cgroup2_mountpoint(), self.path, res.controllers_by_field(writes)
        )
        writes = res.plan_writes(resources, self.path, shares_formula=shares_formula)
        res.apply(self.path, writes)
        return writes

    def set_devices(self, linux: spec.Linux | None,
                    devices: list[spec.DeviceCgroup] | None = None, *,
                    replace: bool = False) -> None:
        """Enforce the device allow/deny list (``linux.resources.devices``, or ``devices``
        for an update) plus runc's built-in allow list with a BPF_CGROUP_DEVICE program;
        ``replace`` detaches the programs attached before (see devices.py)."""
        from . import devices as dev

        dev.apply(self.path, dev.rules_from_spec(linux, devices), replace=replace)

    def stats(self) -> dict[str, Any]:
        """runc ``events --stats`` data for this cgroup (best effort)."""
        from . import resources as res

        return res.stats(self.path)


def limits_asked(r: spec.Resources) -> str:
    """The first field of ``linux.resources`` (its JSON key) that asks for anything but
    device rules (those are the eBPF program's, :meth:`Cgroup.set_devices`; runc's default
    config has only those); '' when none does. Every field of the model counts: one added
    to ``spec.Resources`` is never skipped without a word."""
    from ..records import fields

    for f in fields(r):
        key = f.metadata.get("key")
        if key is not None and key != "devices" and getattr(r, f.name) not in (None, [], {}):
            return str(key)
    return ""
