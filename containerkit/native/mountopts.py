"""OCI mount options -> mount attributes (mount_setattr), propagation and fs options.

Mounts are made with the new mount API (open_tree/fsopen, mount_setattr, move_mount),
so the per-mount flags are MOUNT_ATTR_* values that name only what changes: a bind
keeps whatever its source has (locked flags included) unless an option says otherwise.
The r* forms (rro, rnosuid, ...) apply to every mount of the tree (AT_RECURSIVE).
Superblock options (sync, dirsync, lazytime, mand...) and unknown ones go to the new
filesystem as fsconfig parameters, as runc passes them in mount(2)'s data; a bind has
no filesystem of its own to give them to, so there they are refused.
"""

from __future__ import annotations

from .. import syscalls as s
from ..errors import SpecError, UnsupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple
else:  # typing.NamedTuple's import costs every create/run ~4 ms
    from ..records import NamedTuple

# linux/mount.h
ATTR_RDONLY = 0x01
ATTR_NOSUID = 0x02
ATTR_NODEV = 0x04
ATTR_NOEXEC = 0x08
ATTR__ATIME = 0x70
ATTR_RELATIME = 0x00
ATTR_NOATIME = 0x10
ATTR_STRICTATIME = 0x20
ATTR_NODIRATIME = 0x80
ATTR_NOSYMFOLLOW = 0x200000

# option -> (clear?, attribute bit)
FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, ATTR_RDONLY), "rw": (True, ATTR_RDONLY),
    "nosuid": (False, ATTR_NOSUID), "suid": (True, ATTR_NOSUID),
    "nodev": (False, ATTR_NODEV), "dev": (True, ATTR_NODEV),
    "noexec": (False, ATTR_NOEXEC), "exec": (True, ATTR_NOEXEC),
    "nodiratime": (False, ATTR_NODIRATIME), "diratime": (True, ATTR_NODIRATIME),
    "nosymfollow": (False, ATTR_NOSYMFOLLOW), "symfollow": (True, ATTR_NOSYMFOLLOW),
}
# option -> atime mode; without noatime/strictatime mount(2) gives relatime, so the
# options that only clear one of those mean relatime too
ATIME: dict[str, int] = {
    "noatime": ATTR_NOATIME, "strictatime": ATTR_STRICTATIME,
    "relatime": ATTR_RELATIME, "norelatime": ATTR_RELATIME, "atime": ATTR_RELATIME,
    "nostrictatime": ATTR_RELATIME,
}
PROPAGATION: dict[str, int] = {
    "private": s.MS_PRIVATE, "rprivate": s.MS_PRIVATE | s.MS_REC,
    "shared": s.MS_SHARED, "rshared": s.MS_SHARED | s.MS_REC,
    "slave": s.MS_SLAVE, "rslave": s.MS_SLAVE | s.MS_REC,
    "unbindable": s.MS_UNBINDABLE, "runbindable": s.MS_UNBINDABLE | s.MS_REC,
}
# superblock flags, passed to a new filesystem's fsconfig: the VFS knows these for every
# filesystem (vfs_parse_sb_flag)...
VFS_SUPERBLOCK = frozenset({"sync", "async", "dirsync", "mand", "nomand", "lazytime",
                            "nolazytime"})
# ...and only some filesystems these (ext4's acl, iversion; tmpfs refuses them, with its
# reason). runc sets them as MS_POSIXACL/MS_I_VERSION through mount(2), which the new
# mount API has no parameter for: not listed by features.py
SUPERBLOCK = VFS_SUPERBLOCK | {"acl", "noacl", "iversion", "noiversion"}
# nothing to do: mount(8)'s default set, and how loudly the kernel logs a failed mount
NOOP = frozenset({"defaults", "silent", "loud"})
# what parse() does itself besides the tables: binds, runc's and the spec's extensions
EXTENSIONS = ("bind", "rbind", "tmpcopyup", "idmap", "ridmap", "remount")


def known() -> list[str]:
    """Every option parse() gives a meaning (features.py lists those it accepts)."""
    recursive = [f"r{name}" for name in (*FLAGS, *ATIME)]
    return sorted({*FLAGS, *ATIME, *recursive, *PROPAGATION, *SUPERBLOCK, *NOOP,
                   *EXTENSIONS})


class MountOptions(NamedTuple):
    bind: bool               # bind or rbind
    recursive: bool          # rbind
    attrs: tuple[int, int, int, int]    # set, clear, recursive set, recursive clear
    propagation: tuple[int, ...]
    data: str                # for a new filesystem's fsconfig
    tmpcopyup: bool
    idmap: bool
    ridmap: bool
    remount: bool            # change the mount already there (mount_setattr)


def parse(options: list[str], field: str) -> MountOptions:
    """Options in order (a later one wins over an earlier one)."""
    attrs = [0, 0, 0, 0]
    bind = recursive = tmpcopyup = idmap = ridmap = remount = False
    propagation: list[int] = []
    data: list[str] = []
    for opt in options:
        rec = opt.startswith("r") and (opt[1:] in FLAGS or opt[1:] in ATIME)
        name = opt[1:] if rec else opt
        base = 2 if rec else 0
        if name in FLAGS:
            clear, bit = FLAGS[name]
            attrs[base + (0 if clear else 1)] &= ~bit
            attrs[base + (1 if clear else 0)] |= bit
        elif name in ATIME:
            attrs[base] = attrs[base] & ~ATTR__ATIME | ATIME[name]
            attrs[base + 1] |= ATTR__ATIME
        elif opt in ("bind", "rbind"):
            bind = True
            recursive = recursive or opt == "rbind"
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in NOOP:
            continue
        elif opt == "tmpcopyup":
            tmpcopyup = True
        elif opt == "idmap":
            idmap = True
        elif opt == "ridmap":
            idmap = ridmap = True
        elif opt == "remount":
            remount = True
        elif not opt:
            raise SpecError(f"config.json: {field}.options: empty option")
        else:
            data.append(opt)
    return MountOptions(bind, recursive, (attrs[0], attrs[1], attrs[2], attrs[3]),
                        tuple(propagation), ",".join(data), tmpcopyup, idmap, ridmap, remount)


def check_bind_data(opts: MountOptions, field: str) -> None:
    """A bind has no new filesystem to take parameters: what is left is a mistake."""
    for opt in opts.data.split(",") if opts.data else ():
        if opt.split("=", 1)[0] in SUPERBLOCK:
            raise UnsupportedError(f"{field}.options: {opt!r} is a filesystem flag; a bind "
                                   "mount cannot change it")
        raise SpecError(f"config.json: {field}.options: unknown mount option {opt!r}")


# hand-written checks, not re: importing re (and enum) costs every create/run ~3 ms
_DIGITS = frozenset("0123456789")
_OCTAL = frozenset("01234567")


def _number(value: str, suffixes: str = "") -> bool:
    """``[0-9]+`` and at most one of ``suffixes`` after it."""
    if value and value[-1] in suffixes:
        value = value[:-1]
    return bool(value) and _DIGITS.issuperset(value)


def _mode(value: str) -> bool:
    """``0?[0-7]{1,4}``."""
    if len(value) == 5 and value[0] == "0":
        value = value[1:]
    return 1 <= len(value) <= 4 and _OCTAL.issuperset(value)


TMPFS_VALUES = {"size": lambda v: _number(v, "kKmMgGtTpPeE%"),
                "nr_blocks": lambda v: _number(v, "kKmMgGtTpPeE"),
                "nr_inodes": lambda v: _number(v, "kKmMgGtTpPeE"),
                "mode": _mode, "uid": _number, "gid": _number}


def check_tmpfs_data(data: str, field: str) -> None:
    """tmpfs values the kernel would refuse only at mount time, named here instead."""
    for opt in data.split(",") if data else ():
        key, eq, value = opt.partition("=")
        valid = TMPFS_VALUES.get(key)
        if valid is not None and (not eq or not valid(value)):
            raise SpecError(f"config.json: {field}.options: {opt!r}: not a valid tmpfs "
                            f"{key}")
