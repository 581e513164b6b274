"""Typed wrappers over the compiled cffi module (the only module that imports it).

Each wrapper turns ``-1/errno`` into ``OSError`` whose message names the syscall and
its main arguments. Paths are ``bytes``. ``ffi`` and ``lib`` are re-exported for
``native/ops.py``, which lays out the container init's op array (``struct ck_op``).
"""

from __future__ import annotations

import posix

from ._ck_native import ffi, lib

TYPE_CHECKING = False  # typing is not imported at run time: the CLI would pay ~2 ms
if TYPE_CHECKING:
    from typing import Any

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

# open_tree / mount_setattr (linux/mount.h, fcntl.h)
OPEN_TREE_CLONE = 1
AT_RECURSIVE = 0x8000
MOUNT_ATTR_IDMAP = 0x100000


def _fail(call: str) -> OSError:
    err = ffi.errno
    return OSError(err, f"{call}: {posix.strerror(err)}")


_clone3_into_cgroup: list[bool] = []  # the probe's answer (not functools: ~1 ms import)


def clone3_into_cgroup() -> bool:
    """Whether clone3 can place the child in a cgroup (CLONE_INTO_CGROUP, Linux 5.7).

    Probed once, without making a process. When False the child must wait until the
    parent has written its pid to ``cgroup.procs``.
    """
    if not _clone3_into_cgroup:
        _clone3_into_cgroup.append(bool(lib.ck_clone3_into_cgroup()))
    return _clone3_into_cgroup[0]


class ChildMemory:
    """The region of this address space that a shared-memory child of ``spawn`` runs in
    (its stack and its copy of the op array): unmap it with ``release`` only once the
    child exec'd or exited, i.e. after EOF on the sync socket or after reaping it.

    Never unmapped implicitly (no finalizer): a region nobody released stays mapped
    until this process exits, which is harmless (the child holds its own reference to
    the address space until its execve), whereas unmapping it under a child that still
    runs would crash that child.
    """

    __slots__ = ("_base", "_size")

    def __init__(self, base: Any, size: int) -> None:
        self._base = base
        self._size = size

    def release(self) -> None:
        if self._base is not None:
            lib.ck_region_free(self._base, self._size)
            self._base = None


def spawn(flags: int, cgroup_fd: int, ops: Any, sync_fd: int,
          share_mm: bool = True, pidns_fd: int = -1) -> tuple[int, int, bool, ChildMemory | None]:
    """clone3 a child that runs ``ops`` (a cdata ``struct ck_op[]``) up to execve.

    The child runs C only (never returns here) and reports a failing op on ``sync_fd``
    as the sync ERROR message. Returns ``(pid, pidfd, placed_in_cgroup, memory)``; the
    caller keeps ``ops`` and everything it points to alive until this returns (the C
    copies them). ``memory`` is None for a fork-like child; for a child that shares
    this address space (x86_64, ``share_mm``, a plan without user or time namespaces)
    it is the region the child runs in: see ``ChildMemory`` for when it may be released.

    ``pidns_fd`` >= 0 (an ``ns/pid`` file): the child is made in that pid namespace (an
    existing one: exec into a container, or a pid namespace joined by path), through
    this thread's pid_for_children for the length of the clone (``ck_spawn_pidns``).
    """
    pidfd = ffi.new("int *", -1)
    into = ffi.new("int *", 0)
    region = ffi.new("void **")
    size = ffi.new("size_t *")
    if pidns_fd >= 0:
        restore = posix.open("/proc/thread-self/ns/pid", posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            pid = lib.ck_spawn_pidns(pidns_fd, restore, flags, cgroup_fd, pidfd, into, ops,
                                     len(ops), sync_fd, int(share_mm), region, size)
        finally:
            posix.close(restore)
    else:
        pid = lib.ck_spawn(flags, cgroup_fd, pidfd, into, ops, len(ops), sync_fd,
                           int(share_mm), region, size)
    if pid < 0:
        if into[0] < 0:         # ck_spawn_pidns: the setns itself failed
            raise _fail(f"setns(pid namespace fd {pidns_fd}, CLONE_NEWPID)")
        if pidns_fd >= 0 and ffi.errno == 12:   # ENOMEM: that namespace's init is gone
            raise OSError(12, f"clone3 into pid namespace fd {pidns_fd}: its init has "
                              "exited, the namespace takes no new process")
        raise _fail(f"clone3(flags={flags:#x}, cgroup_fd={cgroup_fd}"
                    + (f", pid namespace fd {pidns_fd})" if pidns_fd >= 0 else ")"))
    memory = ChildMemory(region[0], size[0]) if region[0] != ffi.NULL else None
    return pid, pidfd[0], bool(into[0]), memory


def init_image() -> int:
    """A new sealed memfd holding ck-init (``_native/init.c``), close-on-exec, for the
    plan's REEXEC op (ops.reexec). One per plan, closed with it: ~15 us, and no fd of
    the library's lives on in the caller's process where a dup2 could replace it."""
    fd = lib.ck_init_image()
    if fd < 0:
        raise _fail("memfd_create(containerkit-init, MFD_EXEC | MFD_ALLOW_SEALING)")
    return fd


def clone(flags: int, cgroup_fd: int = -1) -> tuple[int, int, bool]:
    """clone3 with CLONE_PIDFD (and CLONE_INTO_CGROUP when ``cgroup_fd`` >= 0), returning
    in both processes like os.fork (the child runs Python: the GIL and the fork hooks
    are taken around the clone).

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


def getrlimit(resource: int) -> tuple[int, int]:
    """(soft, hard) of this process; RLIM_INFINITY is 2**64 - 1. Here, not the resource
    module: create would load that extension for this one call."""
    rl = ffi.new("struct rlimit *")
    if lib.getrlimit(resource, rl) < 0:
        raise _fail(f"getrlimit({resource})")
    return int(rl.rlim_cur), int(rl.rlim_max)


RLIM_INFINITY = (1 << 64) - 1


def mount(source: bytes | None, target: bytes, fstype: bytes | None, flags: int,
          data: bytes | None = None) -> None:
    if lib.mount(source or ffi.NULL, target, fstype or ffi.NULL, flags, data or ffi.NULL) < 0:
        raise _fail(f"mount({source!r}, {target!r}, {fstype!r}, {flags:#x}, {data!r})")


def umount2(target: bytes, flags: int = 0) -> None:
    if lib.umount2(target, flags) < 0:
        raise _fail(f"umount2({target!r}, {flags})")


# bpf(2) (linux/bpf.h): what the cgroup device program needs. The attr is a zeroed
# buffer of _BPF_ATTR_SIZE bytes (the kernel accepts a larger attr if the tail is zero).
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
_BPF_ATTR_SIZE = 128
_BPF_CMD_NAMES = {BPF_PROG_LOAD: "BPF_PROG_LOAD", BPF_PROG_ATTACH: "BPF_PROG_ATTACH",
                  BPF_PROG_DETACH: "BPF_PROG_DETACH", BPF_PROG_QUERY: "BPF_PROG_QUERY",
                  BPF_PROG_GET_FD_BY_ID: "BPF_PROG_GET_FD_BY_ID",
                  BPF_OBJ_GET_INFO_BY_FD: "BPF_OBJ_GET_INFO_BY_FD"}


def _bpf(cmd: int, attr: Any, what: str) -> int:
    r = lib.ck_bpf(cmd, attr, _BPF_ATTR_SIZE)
    if r < 0:
        raise _fail(f"bpf({_BPF_CMD_NAMES.get(cmd, cmd)}, {what})")
    return int(r)


def _attr(layout: str, *values: Any) -> Any:
    """A zeroed union bpf_attr with ``values`` laid out as ``layout`` says: struct's
    little-endian codes I (u32), Q (u64) and 16s (bytes), no padding; written here, not
    with struct, which create would import for this alone."""
    data = bytearray()
    count = ""
    it = iter(values)
    for code in layout.lstrip("<"):
        if code.isdigit():
            count += code
        elif code == "s":
            data += bytes(next(it))[:int(count)].ljust(int(count), b"\0")
            count = ""
        else:
            data += int(next(it)).to_bytes(4 if code == "I" else 8, "little")
    buf = ffi.new(f"char[{_BPF_ATTR_SIZE}]")
    ffi.memmove(buf, bytes(data), len(data))
    return buf


def _addr(cdata: Any) -> int:
    return int(ffi.cast("uintptr_t", cdata))


def bpf_prog_load(prog_type: int, insns: bytes, license: bytes = b"GPL",
                  name: bytes = b"", expected_attach_type: int = 0,
                  log_size: int = 0) -> int:
    """Load a program (``insns``: struct bpf_insn[] as bytes); returns its fd (O_CLOEXEC).

    With ``log_size`` the verifier's log is asked for and carried in the error message.
    """
    code = ffi.new("char[]", insns)
    lic = ffi.new("char[]", license)
    log = ffi.new("char[]", log_size) if log_size else ffi.NULL
    attr = _attr("<IIQQIIQII16sII", prog_type, len(insns) // 8, _addr(code), _addr(lic),
                 1 if log_size else 0, log_size, _addr(log) if log_size else 0, 0, 0,
                 name[:15], 0, expected_attach_type)
    r = lib.ck_bpf(BPF_PROG_LOAD, attr, _BPF_ATTR_SIZE)
    if r < 0:
        err = ffi.errno
        detail = ffi.string(log).decode(errors="replace").strip() if log_size else ""
        lines = [ln for ln in detail.splitlines() if ln and not ln.startswith("processed")]
        tail = f" (verifier: {lines[-1]})" if lines else ""
        raise OSError(err, f"bpf(BPF_PROG_LOAD, type={prog_type}, "
                           f"{len(insns) // 8} insns): {posix.strerror(err)}{tail}")
    return int(r)


def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int) -> None:
    """Attach ``prog_fd`` to the cgroup directory ``target_fd``."""
    _bpf(BPF_PROG_ATTACH, _attr("<IIII", target_fd, prog_fd, attach_type, flags),
         f"target_fd={target_fd}, prog_fd={prog_fd}, type={attach_type}, flags={flags}")


def bpf_prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    """Detach the program ``prog_fd`` from the cgroup directory ``target_fd``."""
    _bpf(BPF_PROG_DETACH, _attr("<III", target_fd, prog_fd, attach_type),
         f"target_fd={target_fd}, prog_fd={prog_fd}, type={attach_type}")


def bpf_prog_query(target_fd: int, attach_type: int, max_progs: int = 64) -> list[int]:
    """The ids of the programs attached to the cgroup ``target_fd`` itself (not inherited)."""
    ids = ffi.new(f"uint32_t[{max_progs}]")
    attr = _attr("<IIIIQI", target_fd, attach_type, 0, 0, _addr(ids), max_progs)
    _bpf(BPF_PROG_QUERY, attr, f"target_fd={target_fd}, type={attach_type}")
    count = int(ffi.cast("uint32_t *", attr + 24)[0])
    return [int(ids[i]) for i in range(min(count, max_progs))]


def bpf_prog_get_fd_by_id(prog_id: int) -> int:
    """An fd (O_CLOEXEC) for the loaded program ``prog_id``."""
    return _bpf(BPF_PROG_GET_FD_BY_ID, _attr("<I", prog_id), f"id={prog_id}")


def bpf_prog_id(prog_fd: int) -> int:
    """The id of the loaded program ``prog_fd`` (struct bpf_prog_info's second field)."""
    info = ffi.new("uint32_t[2]")
    _bpf(BPF_OBJ_GET_INFO_BY_FD, _attr("<IIQ", prog_fd, 8, _addr(info)), f"fd={prog_fd}")
    return int(info[1])


def open_tree(path: bytes, flags: int) -> int:
    """open_tree(AT_FDCWD, path, flags | OPEN_TREE_CLOEXEC): with OPEN_TREE_CLONE, a
    detached copy of the mount (tree, with AT_RECURSIVE) at ``path``."""
    fd = lib.ck_open_tree(-100, path, flags | posix.O_CLOEXEC)
    if fd < 0:
        raise _fail(f"open_tree({path!r}, {flags:#x})")
    return int(fd)


def mount_setattr(fd: int, flags: int, attr_set: int = 0, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = -1) -> None:
    """mount_setattr(fd, "", AT_EMPTY_PATH | flags, {attr_set, attr_clr, propagation,
    userns_fd})."""
    if lib.ck_mount_setattr(fd, flags, attr_set, attr_clr, propagation, userns_fd) < 0:
        raise _fail(f"mount_setattr(fd {fd}, {flags:#x}, set={attr_set:#x}, "
                    f"clr={attr_clr:#x})")
