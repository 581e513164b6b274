"""Idmapped bind mounts, made in the parent before the container's clone.

The kernel takes the mapping of an idmapped mount from a user namespace fd. Such a
namespace is made here: a short-lived helper is cloned into a new user namespace (it
runs three ops of C and blocks), its uid_map and gid_map are written, its namespace is
opened, and it is killed and reaped at once; the fd keeps the namespace alive. The
mapping is written as the spec gives it (``containerID hostID size``, as runc). The
mount itself is a detached tree (open_tree + mount_setattr) that the init attaches:
an init in a user namespace of its own could not set the idmap.
"""

from __future__ import annotations

import _signal as signal  # not signal/socket: their enums import enum (CLI start-up)
import _socket
import os

from .. import spec as oci
from .. import syscalls as s
from ..errors import ConfigError, SpecError, UnsupportedError
from . import ops
from .mountopts import MountOptions
from .userns import write_proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

Mapping = tuple[tuple[int, int, int], ...]


def mapping(ids: list[oci.IDMapping], field: str) -> Mapping:
    if not ids:
        raise SpecError(f"config.json: {field}: required for an idmapped mount")
    out = []
    for i, m in enumerate(ids):
        if m.size == 0:
            raise SpecError(f"config.json: {field}[{i}].size: must not be 0")
        out.append((m.container_id, m.host_id, m.size))
    return tuple(out)


def _map_text(maps: Mapping) -> bytes:
    return "".join(f"{c} {h} {n}\n" for c, h, n in maps).encode()


def userns_fd(uids: Mapping, gids: Mapping, field: str) -> int:
    """An fd (O_CLOEXEC) of a new user namespace with these mappings; no process is
    left behind, whether this succeeds or not."""
    parent, child = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    plan = [ops.Step("reset signals", *ops.reset_signals(), ""),
            ops.Step("fds", *ops.close_fds_except((child.fileno(),)), ""),
            ops.Step("wait", *ops.wait_parent(child.fileno()), "")]
    array = ops.OpArray(plan)
    try:
        pid, pidfd, _, _ = s.spawn(s.CLONE_NEWUSER, -1, array.ops, child.fileno(),
                                   share_mm=False)
    except OSError as e:
        parent.close()
        child.close()
        raise UnsupportedError(f"{field}: an idmapped mount needs a user namespace, which "
                               f"this host refuses: {e.strerror}") from None
    child.close()
    try:
        write_proc(pid, "uid_map", _map_text(uids), f"{field} uidMappings")
        write_proc(pid, "gid_map", _map_text(gids), f"{field} gidMappings")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(pidfd)
        parent.close()


def idmapped_tree(source: str, opts: MountOptions, userns: int, field: str,
                  keep: Callable[[int], None]) -> int:
    """A detached clone of ``source`` (its whole tree for rbind) with the idmap (on every
    mount of it for ridmap) and the mount's attributes; ``keep`` takes the fd at once
    so that the caller closes it whatever happens next."""
    rec = s.AT_RECURSIVE if opts.recursive else 0
    try:
        tree = s.open_tree(source.encode(), s.OPEN_TREE_CLONE | rec)
    except OSError as e:
        raise ConfigError(f"{field}: cannot clone {source}: {e.strerror}") from None
    keep(tree)
    set_, clr, rset, rclr = opts.attrs
    try:
        s.mount_setattr(tree, s.AT_RECURSIVE if opts.ridmap else 0, s.MOUNT_ATTR_IDMAP,
                        userns_fd=userns)
        if rset or rclr:
            s.mount_setattr(tree, s.AT_RECURSIVE, rset, rclr)
        if set_ or clr:
            s.mount_setattr(tree, 0, set_, clr)
    except OSError as e:
        raise UnsupportedError(f"{field}: idmapped mount of {source}: {e.strerror} (the "
                               "filesystem may not support idmapped mounts)") from None
    return tree
