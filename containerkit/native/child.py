"""The container's init between clone and execve: it only runs a precomputed plan.

Everything here was resolved by the parent (paths as bytes, flags as ints). The child
imports nothing, logs nothing and starts no thread; each step is
``(name, function, args, detail)``. When a step raises, the child sends
``ERROR step errno detail`` on the sync socket and ``_exit``s; the parent turns that
into a ``SetupError``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .. import syscalls
from .sync import CGROUP, CREATED, encode_error

Step = tuple[str, Callable[..., Any], tuple[Any, ...], str]

ST_TO_MS = (  # statvfs f_flag bits -> mount flags that a bind remount must keep
    (os.ST_NOSUID, syscalls.MS_NOSUID), (os.ST_NODEV, syscalls.MS_NODEV),
    (os.ST_NOEXEC, syscalls.MS_NOEXEC), (os.ST_NOATIME, syscalls.MS_NOATIME),
    (os.ST_NODIRATIME, syscalls.MS_NODIRATIME), (os.ST_RELATIME, syscalls.MS_RELATIME),
)


def run(steps: Sequence[Step], sync_fd: int) -> NoReturn:
    """Execute ``steps`` in order; never returns (the last step is execve)."""
    current: Step = ("start", run, (), "")
    try:
        for current in steps:
            current[1](*current[2])
        os.write(sync_fd, encode_error("exec", 8, "plan ended without execve"))
    except OSError as e:
        try:
            os.write(sync_fd, encode_error(current[0], e.errno or 5, current[3]))
        except BaseException:
            pass
    except BaseException as e:  # a bug, not a syscall: still report, never return
        try:
            os.write(sync_fd, encode_error(current[0], 5,
                                                 f"{current[3]} ({type(e).__name__}: {e})"))
        except BaseException:
            pass
    os._exit(1)


# -- step functions (called in the child only) --------------------------------------

def dup_stdio(fds: tuple[int, int, int]) -> None:
    """Put the caller's fds on 0, 1, 2 without clobbering one that is still needed."""
    moved = list(fds)
    for i, fd in enumerate(moved):
        if 0 <= fd < 3 and fd != i:
            moved[i] = os.dup(fd)
    for i, fd in enumerate(moved):
        if fd == i:
            os.set_inheritable(fd, True)
        elif fd >= 0:
            os.dup2(fd, i)


def wait_parent(sync_fd: int) -> None:
    if os.read(sync_fd, 64) != CGROUP:
        raise OSError(71, "unexpected message from the parent")  # EPROTO


def write_file(path: bytes, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def mkdirs(path: bytes, mode: int = 0o755) -> None:
    try:
        os.makedirs(path, mode, exist_ok=True)
    except FileExistsError:  # exists as a file: the mount call will say what is wrong
        pass


def make_file(path: bytes) -> None:
    """A bind mount of a file needs a file to mount onto."""
    parent = os.path.dirname(path)
    if parent:
        mkdirs(parent)
    if not os.path.lexists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def mount_bind(source: bytes, target: bytes, flags: int, remount_flags: int,
               propagation: int) -> None:
    """A bind mount; flags such as ro need a second, remount call (one call cannot)."""
    syscalls.mount(source, target, None, flags)
    if remount_flags:
        syscalls.mount(None, target, None,
                       syscalls.MS_BIND | syscalls.MS_REMOUNT | remount_flags | kept_flags(target))
    if propagation:
        syscalls.mount(None, target, None, propagation)


def mount_fs(source: bytes, target: bytes, fstype: bytes, flags: int, data: bytes | None,
             propagation: int) -> None:
    syscalls.mount(source, target, fstype, flags, data)
    if propagation:
        syscalls.mount(None, target, None, propagation)


def kept_flags(path: bytes) -> int:
    """Flags of the mount under ``path`` that a bind remount would otherwise clear."""
    have = os.statvfs(path).f_flag
    return sum(ms for st, ms in ST_TO_MS if have & st)


def remount_readonly(path: bytes, recursive_bind: bool) -> None:
    """Bind ``path`` onto itself and make that read-only (readonlyPaths, root.readonly)."""
    if recursive_bind:
        try:
            syscalls.mount(path, path, None, syscalls.MS_BIND | syscalls.MS_REC)
        except FileNotFoundError:
            return
    syscalls.mount(None, path, None,
                   syscalls.MS_BIND | syscalls.MS_REMOUNT | syscalls.MS_RDONLY | kept_flags(path))


def mask_path(path: bytes) -> None:
    """Hide a file under /dev/null, a directory under an empty read-only tmpfs."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        syscalls.mount(b"tmpfs", path, b"tmpfs", syscalls.MS_RDONLY)
    else:
        syscalls.mount(b"/dev/null", path, None, syscalls.MS_BIND)


def make_device(path: bytes, mode: int, dev: int, uid: int, gid: int) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.mknod(path, mode, dev)
    os.chown(path, uid, gid)
    os.chmod(path, mode & 0o7777)


def symlink(target: bytes, path: bytes) -> None:
    try:
        os.symlink(target, path)
    except FileExistsError:
        pass


def pivot(rootfs: bytes) -> None:
    """pivot_root(".", ".") then detach the old root: no put_old directory needed."""
    os.chdir(rootfs)
    syscalls.pivot_root(b".", b".")
    syscalls.umount2(b".", syscalls.MNT_DETACH)
    os.chdir(b"/")


def set_rlimits(limits: tuple[tuple[int, int, int], ...], setrlimit: Callable[..., None]) -> None:
    for res, soft, hard in limits:
        setrlimit(res, (soft, hard))


def set_user(uid: int, gid: int, groups: list[int], keep_caps: Callable[[], None] | None) -> None:
    syscalls.setgroups(groups)
    os.setgid(gid)
    if keep_caps is not None:
        keep_caps()
    os.setuid(uid)


def set_caps(effective: int, permitted: int, inheritable: int, ambient: tuple[int, ...]) -> None:
    """The three sets exactly, then ambient caps (which need permitted and inheritable)."""
    syscalls.capset(effective, permitted, inheritable)
    for cap in ambient:
        if permitted >> cap & 1 and inheritable >> cap & 1:
            syscalls.ambient_raise(cap)


def find_executable(candidates: tuple[bytes, ...], found: list[bytes]) -> None:
    """First candidate that is an executable file; ENOENT/EACCES like execvp would say."""
    err = 2
    for path in candidates:
        try:
            st = os.stat(path)
        except OSError as e:
            if e.errno != 2 and e.errno != 20:
                err = e.errno
            continue
        if stat.S_ISREG(st.st_mode) and os.access(path, os.X_OK):
            found.append(path)
            return
        err = 13
    raise OSError(err, "")


def report_created_and_wait(sync_fd: int, fifo_fd: int) -> None:
    os.write(sync_fd, CREATED)
    os.read(fifo_fd, 1)


def execve(found: list[bytes], args: list[bytes], env: dict[bytes, bytes], umask: int) -> None:
    os.umask(umask)
    syscalls.default_signal(13)  # SIGPIPE: ignored while the sync socket was in use
    os.execve(found[0], args, env)
