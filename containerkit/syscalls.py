"""Typed wrappers over the compiled cffi module (the only module that imports it).

Each wrapper turns ``-1/errno`` into ``OSError`` whose message names the syscall and
its main arguments. Paths are ``bytes`` so that the child side (between clone and
execve) passes precomputed values without encoding anything.
"""

from __future__ import annotations

import os

from ._ck_native import ffi, lib

# clone / unshare / setns flags (linux/sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# mount(2) flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2


def _fail(call: str) -> OSError:
    err = ffi.errno
    return OSError(err, f"{call}: {os.strerror(err)}")


def clone(flags: int, cgroup_fd: int = -1) -> tuple[int, int, bool]:
    """clone3 with CLONE_PIDFD (and CLONE_INTO_CGROUP when ``cgroup_fd`` >= 0).

    Returns ``(pid, pidfd, placed_in_cgroup)`` in the parent, ``(0, -1, ...)`` in the
    child. ``placed_in_cgroup`` is False when the kernel had no clone3 and the
    caller must move the child itself.
    """
    pidfd = ffi.new("int *", -1)
    into = ffi.new("int *", 0)
    pid = lib.ck_clone(flags, cgroup_fd, pidfd, into)
    if pid < 0:
        raise _fail(f"clone3(flags={flags:#x}, cgroup_fd={cgroup_fd})")
    return pid, (pidfd[0] if pid else -1), bool(into[0])


def unshare(flags: int) -> None:
    if lib.unshare(flags) < 0:
        raise _fail(f"unshare({flags:#x})")


def setns(fd: int, nstype: int) -> None:
    if lib.setns(fd, nstype) < 0:
        raise _fail(f"setns({fd}, {nstype:#x})")


def pivot_root(new_root: bytes, put_old: bytes) -> None:
    if lib.ck_pivot_root(new_root, put_old) < 0:
        raise _fail(f"pivot_root({new_root!r}, {put_old!r})")


def mount(source: bytes | None, target: bytes, fstype: bytes | None, flags: int,
          data: bytes | None = None) -> None:
    if lib.mount(source or ffi.NULL, target, fstype or ffi.NULL, flags, data or ffi.NULL) < 0:
        raise _fail(f"mount({source!r}, {target!r}, {fstype!r}, {flags:#x}, {data!r})")


def umount2(target: bytes, flags: int = 0) -> None:
    if lib.umount2(target, flags) < 0:
        raise _fail(f"umount2({target!r}, {flags})")


def sethostname(name: bytes) -> None:
    if lib.sethostname(name, len(name)) < 0:
        raise _fail(f"sethostname({name!r})")


def setdomainname(name: bytes) -> None:
    if lib.setdomainname(name, len(name)) < 0:
        raise _fail(f"setdomainname({name!r})")


CLOSE_RANGE_CLOEXEC = 1 << 2
FD_MAX = 0xFFFFFFFF


def close_range(first: int, last: int = FD_MAX, flags: int = 0) -> None:
    """close_range(2) (Linux 5.9; CLOSE_RANGE_CLOEXEC 5.11)."""
    if lib.ck_close_range(first, last, flags) < 0:
        raise _fail(f"close_range({first}, {last}, {flags:#x})")


def close_fds_except(keep: tuple[int, ...]) -> None:
    """Close every fd >= 3 that is not in ``keep`` (which must be sorted)."""
    first = 3
    for fd in keep:
        if fd >= first:
            if fd > first:
                close_range(first, fd - 1)
            first = fd + 1
    close_range(first)


def reset_signals() -> None:
    """Default dispositions and an empty mask, as a fresh execve should see them."""
    if lib.ck_reset_signals() < 0:
        raise _fail("sigprocmask(SIG_SETMASK, {})")


def default_signal(sig: int) -> None:
    if lib.ck_sigdefault(sig) < 0:
        raise _fail(f"signal({sig}, SIG_DFL)")


def loopback_up() -> None:
    if lib.ck_loopback_up() < 0:
        raise _fail("ioctl(SIOCSIFFLAGS, lo, IFF_UP)")


def setgroups(gids: list[int]) -> None:
    arr = ffi.new("unsigned int[]", gids or [0])
    if lib.ck_setgroups(len(gids), arr) < 0:
        raise _fail(f"setgroups({gids})")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the three capability sets exactly (bit masks)."""
    if lib.ck_capset(effective, permitted, inheritable) < 0:
        raise _fail(f"capset(eff={effective:#x}, perm={permitted:#x}, inh={inheritable:#x})")


def ambient_raise(cap: int) -> None:
    if lib.ck_ambient_raise(cap) < 0:
        raise _fail(f"prctl(PR_CAP_AMBIENT_RAISE, {cap})")
