"""The container init's work between clone and execve, as data for the C child.

``plan.py`` builds an ordered list of steps ``(name, opcode, args, detail)`` from the
constructors below; ``OpArray`` lays them out as the C array ``struct ck_op[]`` that
``syscalls.spawn`` gives to the child. The child (``ck_spawn`` in
``_native/build_native.py``) runs the ops in C, as CPython's ``_posixsubprocess``
does: no Python, no allocation. When an op fails it sends ``ERROR name errno detail``
on the sync socket (``sync.py``) and exits, and the parent raises ``SetupError``.

Every path, flag and string is resolved here, in the parent. Each constructor says what
the child does with it.
"""

from __future__ import annotations

from ..errors import SpecError
from ..syscalls import ffi, lib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple
else:  # typing.NamedTuple's import costs every create/run ~4 ms
    from ..records import NamedTuple


class Args(NamedTuple):
    """An op's operands (the fields of ``struct ck_op``; unused ones stay NULL/0). A
    NamedTuple: importing dataclasses costs every CLI call ~4 ms."""

    s: tuple[bytes | None, ...] = ()       # up to 4 strings
    i: tuple[int, ...] = ()                # up to 4 integers (64-bit)
    ids: tuple[int, ...] = ()              # unsigned ints: fds to keep, or gids
    argv: tuple[bytes, ...] | None = None  # NULL-terminated in C
    envp: tuple[bytes, ...] | None = None


class Step(NamedTuple):
    name: str      # reported on failure, with errno and detail
    code: int      # enum ck_opcode
    args: Args
    detail: str


Op = tuple[int, Args]


def reset_signals() -> Op:
    """Default signal dispositions and an empty mask (all were blocked across the
    clone); SIGPIPE stays ignored until execve. Must be the first op."""
    return lib.CK_OP_RESET_SIGNALS, Args()


def stdio(fds: tuple[int, int, int]) -> Op:
    """``fds[i]`` onto fd ``i``, inheritable; a source already on 0..2 is first copied
    out of the way so that no swap clobbers it. A negative fd leaves ``i`` as is."""
    return lib.CK_OP_STDIO, Args(i=fds)


def wait_parent(sync_fd: int, message: bytes = b"CGROUP") -> Op:
    """Block until the parent sends ``message`` (sync.py): CGROUP (only without
    CLONE_INTO_CGROUP), IDMAPPED (a new user namespace's maps are written)."""
    return sync(sync_fd, None, message)


def become_root() -> Op:
    """setresgid(0, 0, 0), setresuid(0, 0, 0): the init becomes root of its new user
    namespace (the mapped host ids) once the parent wrote the maps."""
    return lib.CK_OP_BECOME_ROOT, Args()


def fork_init(flags: int, sync_fd: int) -> Op:
    """clone3(flags | CLONE_PARENT): the child (the container's init, a child of the
    spawning process) goes on with the next op; this process sends "INIT <pid>" and
    exits (sync.py). For plans that join a user namespace or namespaces by path."""
    return lib.CK_OP_FORK_INIT, Args(i=(flags, sync_fd))


def setns(fd: int, nstype: int) -> Op:
    return lib.CK_OP_SETNS, Args(i=(fd, nstype))


def close_fds_except(keep: tuple[int, ...]) -> Op:
    """Close every fd >= 3 except ``keep``: nothing of the caller's crosses over."""
    return lib.CK_OP_CLOSE_FDS, Args(ids=tuple(sorted(set(keep))))


def reexec(image_fd: int, keep: tuple[int, ...]) -> Op:
    """execveat(image_fd): the rest of the plan runs in ck-init, a sealed memfd copy of
    a small static program (syscalls.init_image), so that neither the init nor anything
    it executes has the caller's executable as /proc/self/exe (CVE-2019-5736: see
    ck_reexec in _native/child.c). ``keep``: the fds the rest of the plan uses (they
    cross this execve; CLOEXEC_FROM marks them close-on-exec again before the last)."""
    return lib.CK_OP_REEXEC, Args(i=(image_fd,), ids=tuple(sorted(set(keep))))


def unshare(flags: int) -> Op:
    return lib.CK_OP_UNSHARE, Args(i=(flags,))


def write_proc(proc_fd: int, path: bytes, text: bytes) -> Op:
    """One write of ``text`` to ``path`` (e.g. ``self/oom_score_adj``, ``sys/net/...``)
    in ``proc_fd``, the host's /proc (``Plan.proc_fd``), never the container's: openat2
    beneath it without symlinks, magic links or mount crossings, the file checked to be
    on procfs (ck_write_proc; CVE-2025-52881)."""
    return lib.CK_OP_WRITE_FILE, Args(s=(path, text), i=(proc_fd,))


def sethostname(name: bytes) -> Op:
    return lib.CK_OP_SETHOSTNAME, Args(s=(name,))


def setdomainname(name: bytes) -> Op:
    return lib.CK_OP_SETDOMAINNAME, Args(s=(name,))


def loopback_up() -> Op:
    """Set IFF_UP on "lo" in the new network namespace (two ioctls, no netlink)."""
    return lib.CK_OP_LOOPBACK_UP, Args()


def mount(source: bytes | None, target: bytes, fstype: bytes | None, flags: int,
          data: bytes | None = None, propagation: int = 0) -> Op:
    """mount(2), then a second call for the propagation flags when there are any."""
    return lib.CK_OP_MOUNT, Args(s=(source, target, fstype, data), i=(flags, propagation))


def pivot_root(rootfs: bytes) -> Op:
    """chdir(rootfs), pivot_root(".", "."), umount2(".", MNT_DETACH), chdir("/")."""
    return lib.CK_OP_PIVOT_ROOT, Args(s=(rootfs,))


# CK_OP_MOUNT_AT's kind bits (build_native.py)
MNT_REC = 1         # rbind: the whole tree under the source
MNT_FILE = 2        # the destination is a file
MNT_TMPCOPYUP = 4   # copy the destination's content into the new mount
MNT_ON_PROC = 16    # may go onto procfs (else refused: a symlink may lead into /proc)
MNT_REMOUNT = 32    # only change the attributes of the mount already on the destination


def open_root(path: bytes) -> Op:
    """Open the container's root (O_PATH): every later ``*_at`` op resolves its
    container path inside it (openat2 RESOLVE_IN_ROOT), and pivot_root reopens it."""
    return lib.CK_OP_OPEN_ROOT, Args(s=(path,))


def mount_at(source: bytes | None, dest: bytes, fstype: bytes | None, data: bytes | None,
             kind: int, attrs: tuple[int, int, int, int], propagation: tuple[int, ...] = (),
             tree_fd: int = -1) -> Op:
    """A mount on ``dest`` resolved inside the root (missing directories, or the file
    with MNT_FILE, are made there): a bind of the host's ``source`` (``fstype`` None,
    open_tree), a new filesystem (fsopen + one fsconfig per ``data`` option), or the
    detached ``tree_fd`` the parent made; set up detached (tmpcopyup, ``attrs`` =
    MOUNT_ATTR_* set, clear, recursive set, recursive clear), attached on the fd
    (move_mount), then each ``propagation`` (MS_SHARED... [| MS_REC]) applied."""
    return lib.CK_OP_MOUNT_AT, Args(s=(source, dest, fstype, data), i=(kind, tree_fd),
                                    ids=(*attrs, *propagation))


def make_device_at(directory: bytes, name: bytes, mode: int, dev: int, uid: int,
                   gid: int) -> Op:
    """In ``directory`` (inside the root, made if missing): replace ``name`` (never
    followed) by a node with exactly ``mode`` and this owner."""
    return lib.CK_OP_MKNOD_AT, Args(s=(directory, name), i=(mode, dev, uid, gid))


def symlink_at(target: bytes, directory: bytes, name: bytes) -> Op:
    """symlinkat in ``directory`` (inside the root); an existing ``name`` is fine."""
    return lib.CK_OP_SYMLINK_AT, Args(s=(target, directory, name))


def mask_at(path: bytes) -> Op:
    """maskedPaths entry, resolved inside the root: a directory under an empty read-only
    tmpfs, anything else under the container's /dev/null; missing: nothing to do."""
    return lib.CK_OP_MASK_AT, Args(s=(path,))


def readonly_at(path: bytes, bind_first: bool) -> Op:
    """Inside the root: a recursive read-only bind of ``path`` onto itself (a missing
    path is skipped), or (``bind_first`` False) make its own mount read-only."""
    return lib.CK_OP_READONLY_AT, Args(s=(path,), i=(int(bind_first),))


def move_root(rootfs: bytes, hide: tuple[bytes, ...]) -> Op:
    """--no-pivot: detach each ``hide`` mount (made a slave first, so that nothing
    propagates to the host; a tmpfs over it where detaching is refused), then
    chdir(rootfs), mount(rootfs, "/", MS_MOVE), chroot("."), chdir("/")."""
    return lib.CK_OP_MOVE_ROOT, Args(s=(rootfs,), argv=hide)


def chdir(path: bytes) -> Op:
    """chdir, resolved inside the container's root once ``open_root`` ran."""
    return lib.CK_OP_CHDIR, Args(s=(path,))


def setrlimit(resource: int, soft: int, hard: int) -> Op:
    """setrlimit(2); 2**64-1 is RLIM_INFINITY."""
    return lib.CK_OP_RLIMIT, Args(i=(resource, soft, hard))


def capbset_drop(caps: int) -> Op:
    """PR_CAPBSET_DROP for every capability whose bit is set in ``caps``."""
    return lib.CK_OP_CAPBSET_DROP, Args(i=(caps,))


def set_user(uid: int, gid: int, groups: list[int], change_ids: bool,
             keep_groups: bool = False) -> Op:
    """setgroups(groups) (not with ``keep_groups``: a user namespace whose setgroups is
    "deny" refuses it); when ``change_ids``: setgid, PR_SET_KEEPCAPS (for a non-root
    uid, so that the capabilities op still finds a permitted set), setuid."""
    return lib.CK_OP_SET_USER, Args(i=(uid, gid, int(change_ids), int(keep_groups)),
                                    ids=tuple(groups))


def set_caps(effective: int, permitted: int, inheritable: int, ambient: int) -> Op:
    """capset with exactly these sets, then raise the ambient caps that are also
    permitted and inheritable (the kernel refuses the others)."""
    return lib.CK_OP_CAPS, Args(i=(effective, permitted, inheritable, ambient))


def no_new_privs() -> Op:
    return lib.CK_OP_NO_NEW_PRIVS, Args()


def cloexec_from(first: int) -> Op:
    """close_range(first, ~0, CLOSE_RANGE_CLOEXEC): the sync socket and the exec FIFO
    stay usable until execve closes them."""
    return lib.CK_OP_CLOEXEC_FROM, Args(i=(first,))


def find_executable(candidates: tuple[bytes, ...]) -> Op:
    """The first candidate that is an executable regular file (stat + access X_OK),
    remembered for the execve op; else ENOENT, or EACCES when one was found but not
    executable (other stat errors win over ENOENT), as execvp would say."""
    return lib.CK_OP_FIND_EXEC, Args(argv=candidates)


def report_created_and_wait(sync_fd: int, fifo_fd: int) -> Op:
    """Send CREATED, then block reading one byte from exec.fifo (``start`` writes it)."""
    return lib.CK_OP_CREATED, Args(i=(sync_fd, fifo_fd))


def execve(argv: tuple[bytes, ...], envp: tuple[bytes, ...], umask: int) -> Op:
    """umask, SIGPIPE back to default, execve of what the lookup found."""
    return lib.CK_OP_EXECVE, Args(argv=argv, envp=envp, i=(umask,))


def seccomp(flags: int, program: bytes, listener_to: int = -1) -> Op:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, program): ``program`` is the classic BPF
    that libseccomp exported in the parent, passed as 32-bit words. With
    SECCOMP_FILTER_FLAG_NEW_LISTENER in ``flags``: send the listener fd on the sync
    socket ``listener_to`` (``SECCOMP`` + SCM_RIGHTS), close it, wait for ``CONTINUE``."""
    import array

    words = array.array("I")
    words.frombytes(program)
    return lib.CK_OP_SECCOMP, Args(i=(flags, listener_to), ids=tuple(words))


def personality(persona: int) -> Op:
    """personality(persona): the execution domain (PER_LINUX, PER_LINUX32)."""
    return lib.CK_OP_PERSONALITY, Args(i=(persona,))


def ioprio(value: int) -> Op:
    """ioprio_set(IOPRIO_WHO_PROCESS, 0, value): value = class << 13 | level."""
    return lib.CK_OP_IOPRIO, Args(i=(value,))


def scheduler(policy: int, flags: int, nice: int, priority: int, runtime: int,
              deadline: int, period: int) -> Op:
    """sched_setattr(0, attr, 0); the 64-bit deadline parameters travel as word pairs."""
    words = tuple(w for v in (runtime, deadline, period)
                  for w in (v & 0xFFFFFFFF, v >> 32 & 0xFFFFFFFF))
    return lib.CK_OP_SCHED, Args(i=(policy, flags, nice, priority), ids=words)


def mempolicy(mode: int, nodemask: tuple[int, ...]) -> Op:
    """set_mempolicy(mode | flags, nodemask, maxnode): the task's NUMA policy, which
    execve keeps. ``nodemask`` as 32-bit words, lowest first (empty: NULL)."""
    return lib.CK_OP_MEMPOLICY, Args(i=(mode,), ids=nodemask)


def sync(sync_fd: int, send: bytes | None, expect: bytes) -> Op:
    """Send ``send`` on the sync socket (unless None), then block until the parent
    answers exactly ``expect`` (a stop point of the protocol table, ``sync.py``)."""
    return lib.CK_OP_SYNC, Args(s=(send, expect), i=(sync_fd,))


def hook(path: bytes, argv: tuple[bytes, ...], envp: tuple[bytes, ...], cwd: bytes | None,
         state_fd: int, timeout_ms: int, report_fd: int = -1) -> Op:
    """Run one OCI hook from the init: fork, execve ``path`` with the state file (read
    from its start) on stdin, stdout/stderr captured, in ``cwd``; wait, SIGKILL at the
    timeout (0: none). A failure reports "path: exited with status N: last line" (also
    on ``report_fd`` when >= 0) and the init exits."""
    return lib.CK_OP_HOOK, Args(s=(path, cwd), i=(state_fd, timeout_ms, report_fd),
                                argv=argv, envp=envp)


def stdio_owner(uid: int) -> Op:
    """fchown(0/1/2, uid) unless /dev/null or already owned (runc's fixStdioPermissions)."""
    return lib.CK_OP_STDIO_OWNER, Args(i=(uid,))


def join_keyring(name: bytes, add_perm: int) -> Op:
    """keyctl(JOIN_SESSION_KEYRING, name): the session keyring of that name (made when
    there is none this process may search), not the caller's; then its permissions |
    ``add_perm`` (KEYCTL_DESCRIBE, KEYCTL_SETPERM; 0: join only, as runc's exec does).
    ENOSYS (no keyrings in the kernel) is not an error, as for runc."""
    return lib.CK_OP_KEYRING, Args(s=(name,), i=(add_perm,))


def open_pty(ptmx: bytes, rows: int, cols: int, owner: int) -> Op:
    """Open ``ptmx`` (O_RDWR|O_NOCTTY|O_CLOEXEC), unlock it (TIOCSPTLCK 0), its peer by
    TIOCGPTPEER, TIOCSWINSZ when ``rows`` and ``cols`` are both set, fchown(peer,
    ``owner``) unless -1. The fds are kept for the console ops below."""
    return lib.CK_OP_PTY, Args(s=(ptmx,), i=(rows, cols, owner))


def mount_console(path: bytes) -> Op:
    """Make ``path`` (an empty 0666 file) unless it exists, bind the pty's peer onto it."""
    return lib.CK_OP_CONSOLE, Args(s=(path,))


def send_pty(sync_fd: int) -> Op:
    """Send CONSOLE with the pty master (SCM_RIGHTS) on the sync socket, close it."""
    return lib.CK_OP_SEND_PTY, Args(i=(sync_fd,))


def set_ctty() -> Op:
    """The pty's peer onto 0, 1 and 2, TIOCSCTTY: the terminal controls the process's
    session (the setsid step's, which comes before)."""
    return lib.CK_OP_SETCTTY, Args()


def setsid() -> Op:
    """setsid(2): the init leads a session (and process group) of its own, as runc's
    does: signals from the caller's terminal reach it only through the runtime."""
    return lib.CK_OP_SETSID, Args()


def inherit_fds(first: int, count: int) -> Op:
    """Clear close-on-exec on fds ``first``..``first+count-1`` (passed to the program)."""
    return lib.CK_OP_INHERIT_FDS, Args(i=(first, count))


def affinity(words: tuple[int, ...]) -> Op:
    """sched_setaffinity(0) to the CPU mask ``words`` (32-bit words, lowest first)."""
    return lib.CK_OP_AFFINITY, Args(ids=words)


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> Op:
    """prctl(option, arg2, arg3), e.g. PR_SET_DUMPABLE 0. Rules out the shared-memory
    child (several prctls act on the mm, which would be the caller's)."""
    return lib.CK_OP_PRCTL, Args(i=(option, arg2, arg3))


# step names are few and fixed: one C string each, never replaced (an op points to it)
_NAMES: dict[str, object] = {}


class OpArray:
    """``steps`` as a cdata ``struct ck_op[]`` (``.ops``), with every buffer its
    pointers refer to: keep this object alive until ``syscalls.spawn`` returned (a
    child that shares this address space runs on a copy, made before the clone)."""

    def __init__(self, steps: list[Step]) -> None:
        self._buffers: list[object] = []
        self.ops = ffi.new("struct ck_op[]", len(steps))
        for op, step in zip(self.ops, steps, strict=True):
            name, code, args, detail = step
            op.code = code
            cname = _NAMES.get(name)
            if cname is None:   # setdefault: a racing thread's string must stay alive
                cname = _NAMES.setdefault(name, ffi.new("char[]", name.encode()))
            op.name = cname
            op.detail = self._str(detail.encode(), step)
            if len(args.s) > 4 or len(args.i) > 4:
                raise ValueError(f"{_where(step)}: more operands than struct ck_op holds")
            for k, value in enumerate(args.s):
                op.s[k] = self._str(value, step)
            for k, value in enumerate(args.i):
                op.i[k] = _int64(value, step)
            if args.ids:
                ids = ffi.new("unsigned int[]", args.ids)
                self._buffers.append(ids)
                op.ids = ids
                op.nids = len(args.ids)
            if args.argv is not None:
                op.argv = self._strv(args.argv, step)
            if args.envp is not None:
                op.envp = self._strv(args.envp, step)

    def _str(self, value: bytes | None, step: Step) -> object:
        if value is None:
            return ffi.NULL
        if b"\0" in value:  # C would silently cut the string there
            raise SpecError(f"config.json: {_where(step)}: {value!r} contains a NUL byte")
        buf = ffi.new("char[]", value)
        self._buffers.append(buf)
        return buf

    def _strv(self, values: tuple[bytes, ...], step: Step) -> object:
        vec = ffi.new("char *[]", [self._str(v, step) for v in values] + [ffi.NULL])
        self._buffers.append(vec)
        return vec


def _where(step: Step) -> str:
    return f"{step.name} {step.detail}".strip()


def _int64(value: int, step: Step) -> int:
    """As a C long long: 2**63..2**64-1 (masks, RLIM_INFINITY) wrap to negative."""
    if value >= 1 << 63:
        value -= 1 << 64
    if not -(1 << 63) <= value < 1 << 63:
        raise SpecError(f"config.json: {_where(step)}: {value} does not fit in 64 bits")
    return value
