"""Resolve a container path against the rootfs without leaving it (like securejoin).

Symlinks are followed as the container would see them: an absolute target restarts at
the rootfs, ``..`` never climbs above it. This runs in the parent while the plan is
built; the child mounts onto the result.
"""

from __future__ import annotations

import os

from ..errors import ConfigError

MAX_SYMLINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            target = os.readlink(candidate)
        except OSError:          # not a symlink, or does not exist (yet): take it as is
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise ConfigError(f"{unsafe}: too many levels of symbolic links in the rootfs")
        if target.startswith("/"):
            resolved = []
        parts[:0] = [p for p in target.split("/") if p not in ("", ".")]
    return os.path.join(root, *resolved)
