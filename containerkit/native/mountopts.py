"""OCI mount options -> mount(2) flags, propagation flags and the data string.

The same table runc uses. Options that need machinery this version lacks (idmapped
mounts, tmpcopyup, recursive mount attributes) are refused, not dropped.
"""

from __future__ import annotations

from typing import NamedTuple

from .. import syscalls as s
from ..errors import UnsupportedError

# option -> (clear?, flag)
FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, s.MS_RDONLY), "rw": (True, s.MS_RDONLY),
    "nosuid": (False, s.MS_NOSUID), "suid": (True, s.MS_NOSUID),
    "nodev": (False, s.MS_NODEV), "dev": (True, s.MS_NODEV),
    "noexec": (False, s.MS_NOEXEC), "exec": (True, s.MS_NOEXEC),
    "sync": (False, s.MS_SYNCHRONOUS), "async": (True, s.MS_SYNCHRONOUS),
    "dirsync": (False, s.MS_DIRSYNC),
    "remount": (False, s.MS_REMOUNT),
    "mand": (False, s.MS_MANDLOCK), "nomand": (True, s.MS_MANDLOCK),
    "noatime": (False, s.MS_NOATIME), "atime": (True, s.MS_NOATIME),
    "nodiratime": (False, s.MS_NODIRATIME), "diratime": (True, s.MS_NODIRATIME),
    "relatime": (False, s.MS_RELATIME), "norelatime": (True, s.MS_RELATIME),
    "strictatime": (False, s.MS_STRICTATIME), "nostrictatime": (True, s.MS_STRICTATIME),
    "lazytime": (False, s.MS_LAZYTIME), "nolazytime": (True, s.MS_LAZYTIME),
    "nosymfollow": (False, s.MS_NOSYMFOLLOW), "symfollow": (True, s.MS_NOSYMFOLLOW),
    "bind": (False, s.MS_BIND), "rbind": (False, s.MS_BIND | s.MS_REC),
}
PROPAGATION: dict[str, int] = {
    "private": s.MS_PRIVATE, "rprivate": s.MS_PRIVATE | s.MS_REC,
    "shared": s.MS_SHARED, "rshared": s.MS_SHARED | s.MS_REC,
    "slave": s.MS_SLAVE, "rslave": s.MS_SLAVE | s.MS_REC,
    "unbindable": s.MS_UNBINDABLE, "runbindable": s.MS_UNBINDABLE | s.MS_REC,
}
NOT_YET = {"tmpcopyup", "idmap", "ridmap", "rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev",
           "rnoexec", "rexec", "rnodiratime", "rdiratime", "rrelatime", "rnorelatime",
           "rnoatime", "ratime", "rstrictatime", "rnostrictatime", "rnosymfollow",
           "rsymfollow"}


class MountOptions(NamedTuple):
    flags: int
    propagation: int
    data: str

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & s.MS_BIND)


def parse(options: list[str], field: str) -> MountOptions:
    flags = 0
    propagation = 0
    data: list[str] = []
    for opt in options:
        if opt in FLAGS:
            clear, bit = FLAGS[opt]
            flags = flags & ~bit if clear else flags | bit
        elif opt in PROPAGATION:
            propagation |= PROPAGATION[opt]
        elif opt in NOT_YET:
            raise UnsupportedError(f"{field}: mount option {opt!r} is not supported yet")
        else:
            data.append(opt)
    return MountOptions(flags, propagation, ",".join(data))
