"""A new time namespace and ``linux.timeOffsets``.

The kernel takes a time namespace's offsets only until a task enters it. A clone with
CLONE_NEWTIME enters at once (too late), so the init instead does
``unshare(CLONE_NEWTIME)``, which only sets the namespace for its children and its next
execve (``/proc/self/ns/time_for_children``), writes ``/proc/self/timens_offsets`` (which
is that namespace's), and enters it at its execve: nothing runs in it before the offsets
are there. (runc writes them from its stage-1 child before forking the init; same rule.)
"""

from __future__ import annotations

import time

from .. import spec as oci
from ..errors import SpecError, UnsupportedError

CLOCKS = {"monotonic": time.CLOCK_MONOTONIC, "boottime": time.CLOCK_BOOTTIME}
KTIME_SEC_MAX = (1 << 63) // 1_000_000_000


def offsets_text(linux: oci.Linux, new_timens: bool, joined: bool) -> bytes | None:
    """What the init writes to timens_offsets (None: nothing to write), after the
    kernel's checks, so that a bad offset is refused before the clone."""
    offsets = linux.time_offsets
    if not offsets:
        return None
    if joined:
        raise SpecError("config.json: linux.timeOffsets: cannot be set when joining a time "
                        "namespace by path (its offsets are fixed)")
    if not new_timens:
        raise SpecError("config.json: linux.timeOffsets: set, but linux.namespaces has no "
                        "new time namespace")
    lines = []
    for clock, off in sorted(offsets.items()):
        field = f"config.json: linux.timeOffsets.{clock}"
        clock_id = CLOCKS.get(clock)
        if clock_id is None:
            raise SpecError(f"{field}: unknown clock (monotonic, boottime)")
        secs, nsecs = off.secs or 0, off.nanosecs or 0
        if not 0 <= nsecs < 1_000_000_000:
            raise SpecError(f"{field}.nanosecs: {nsecs} is not below 1000000000")
        now = time.clock_gettime(clock_id)
        if abs(secs) > KTIME_SEC_MAX // 2 or now + secs + nsecs / 1e9 < 0:
            raise UnsupportedError(f"{field}: {secs}s would put the clock out of range "
                                   f"(it reads {now:.0f}s here)")
        lines.append(f"{clock} {secs} {nsecs}\n")
    return "".join(lines).encode()
