"""NativeDriver: the in-process ExecutionDriver (parent side).

create: plan -> cgroup dir -> exec FIFO + sync socket -> clone3 into the cgroup with
the new namespaces, the child running the plan in C (``syscalls.spawn``) -> wait for
CREATED. start: release the FIFO; when this process created the init, wait until
execve closed the sync socket. delete: kill what is left in the cgroup, reap, remove
the cgroup.

An init that shares this address space until its execve (``syscalls.ChildMemory``)
runs on a region of it that is unmapped only once the init can no longer run there:
at EOF on the sync socket in ``start``, or once reaped (a failed ``create``,
``delete``). A container dropped without either leaves the region mapped (harmless);
a process that exits after ``create`` (the CLI) leaves it to the init.
"""

from __future__ import annotations

import _signal as signal  # not signal: its enums import enum (CLI start-up)
import posix

from .. import pathnames
from ..cgroups import Cgroup, container_cgroup_path
from ..errors import ContainerkitError, InvalidState, SetupError, UnsupportedError
from ..process import Process
from ..state import keyring_name
from . import sync

TYPE_CHECKING = False  # typing is not imported at run time: the CLI would pay ~2 ms
if TYPE_CHECKING:
    import _socket
    from _socket import socket
    from collections.abc import Callable
    from typing import IO

    from .. import spec as oci
    from ..container import Container
    from .plan import Plan

    Stdio = IO[bytes] | IO[str] | int | None

def _release_memory(container: Container) -> None:
    """Unmap the region the init ran on until its execve (see the module docstring)."""
    memory = container._child_memory
    if memory is not None:
        container._child_memory = None
        memory.release()


def _fd(stream: Stdio, default: int) -> int:
    if stream is None:
        return default
    if isinstance(stream, int):
        return stream
    return stream.fileno()


class NativeDriver:
    """Runs containers from this Python process: no runtime binary involved.

    ``share_memory``: let the init run in this process's address space until its
    execve (clone with CLONE_VM; ~2 ms less per container on x86_64). Never done for a
    container with a memory limit: an OOM kill of a process kills every process that
    shares its mm, and the container's own cgroup could OOM during setup.

    ``no_pivot``: enter the rootfs with MS_MOVE onto / and chroot instead of pivot_root
    (runc's ``--no-pivot``), for a rootfs that pivot_root refuses (an initramfs).
    """

    def __init__(self, share_memory: bool = True, no_pivot: bool = False) -> None:
        self.share_memory = share_memory
        self.no_pivot = no_pivot

    def cgroup_for(self, container: Container) -> Cgroup:
        linux = container.spec.linux
        return Cgroup(container_cgroup_path(container.id,
                                            linux.cgroups_path if linux else None))

    def create(self, container: Container,
               meanwhile: Callable[[], None] | None = None) -> Process:
        # only create builds a plan: start and delete (podman calls them as separate
        # processes) skip importing the planner and the spec model
        terminal = bool(container.spec.process and container.spec.process.terminal)
        console_sock = None
        if terminal and container.console_socket:
            from .console import connect

            console_sock = connect(container.console_socket)   # before anything is made
        try:
            process = self._create(container, terminal, console_sock, meanwhile)
        finally:
            if console_sock is not None:
                console_sock.close()
        return process

    def _create(self, container: Container, terminal: bool,
                console_sock: _socket.socket | None,
                meanwhile: Callable[[], None] | None) -> Process:
        # syscalls (the cffi module) here: `start` and `delete` need neither (~0.8 ms)
        from .. import syscalls
        from .ops import OpArray
        from .plan import build

        cgroup: Cgroup | None = self.cgroup_for(container)
        if not _may_create(cgroup):
            asked = _asked_resources(container.spec.linux)
            if asked:
                raise UnsupportedError(
                    f"linux.resources.{asked}: this unprivileged user cannot create a "
                    f"cgroup under {pathnames.dirname(cgroup.path)} (no cgroup delegation); "
                    "remove linux.resources or delegate a cgroup")
            cgroup = None       # rootless without delegation, as runc's rootless mode
        fifo = container.statedir.fifo_path
        posix.mkfifo(fifo, 0o600)
        fifo_fd = posix.open(fifo, posix.O_RDWR | posix.O_CLOEXEC)  # a reader+writer: reads block
        parent_sock, child_sock = sync.channel()
        cgroup_fd = -1
        plan = None
        pid = None
        try:
            stdio = (_fd(container.stdin, 0), _fd(container.stdout, 1), _fd(container.stderr, 2))
            into_cgroup = cgroup is not None and syscalls.clone3_into_cgroup()
            plan = build(container.spec, rootfs=container.rootfs, bundle=container.bundle,
                         cgroup_dir=cgroup.path if cgroup is not None else "",
                         sync_fd=child_sock.fileno(), fifo_fd=fifo_fd,
                         stdio=stdio, placed_in_cgroup=into_cgroup or cgroup is None,
                         no_pivot=self.no_pivot,
                         preserve_fds=container.preserve_fds, listen_fds=container.listen_fds,
                         keyring=keyring_name(container.id) if container.new_keyring else None)
            ops = OpArray(plan.steps)
            linux = container.spec.linux
            if cgroup is not None:
                cgroup_fd = cgroup.create()
                # recorded before anything runs in it: a create killed half-way is cleaned
                # up by remove_abandoned (delete --force) through this link
                posix.symlink(cgroup.path, pathnames.join(container.statedir.path, "cgroup"))
                if linux is not None and linux.resources is not None:
                    cgroup.set_resources(linux.resources)   # limits hold from the start
            pid, pidfd, placed, memory = syscalls.spawn(
                plan.clone_flags, cgroup_fd if into_cgroup else -1, ops.ops,
                child_sock.fileno(), share_mm=self.share_memory and not _memory_limited(linux),
                pidns_fd=plan.pidns_fd)
        except BaseException:
            parent_sock.close()
            if cgroup is not None and cgroup_fd >= 0:
                cgroup.remove()
            raise
        finally:
            child_sock.close()
            posix.close(fifo_fd)
            if plan is not None:
                plan.close(keep_states=pid is not None)
            if cgroup_fd >= 0:
                posix.close(cgroup_fd)
        process = Process(pid, pidfd, is_child=True)
        container._child_memory = memory
        master = -1
        try:
            if placed != into_cgroup:   # clone3 vanished since the probe: the plan is wrong
                raise ContainerkitError("clone3: CLONE_INTO_CGROUP was probed but not "
                                        "available at the clone")
            if cgroup is not None:
                # while the init sets up its root (~0.7 ms on the other CPU): it runs
                # nothing of the container's before the CREATED/HOOKS messages waited for
                # below, only the plan's own mounts and device nodes, as in runc (which
                # applies the device rules at procHooks, after those)
                _set_devices(cgroup, linux)
            if cgroup is not None and not placed:   # the child waits in "wait for cgroup"
                cgroup.add(pid)
                sync.send(parent_sock, sync.CGROUP)
            if plan.id_maps is not None:            # the child waits in "user namespace"
                _map_user_namespace(pid, plan, parent_sock)
            if plan.forks_init:                     # the child forks the init and exits
                process = _take_forked(parent_sock, process)
                pid = process.pid
            if meanwhile is not None:               # while the init makes its mounts
                meanwhile()
            _fill_hook_states(container, plan, pid)
            if plan.hook_sync:
                sync.expect(parent_sock, sync.HOOKS)
                _runtime_hooks(container, pid)
                sync.send(parent_sock, sync.CONTINUE)
            if terminal:
                master = sync.expect_console(parent_sock)
            if plan.seccomp_listener is not None:
                _hand_over_listener(container, plan.seccomp_listener, parent_sock, pid)
            sync.expect_created(parent_sock)
            if console_sock is not None:
                from .console import send_master

                send_master(console_sock, master)
                posix.close(master)
                master = -1
        except BaseException:
            # while the init (waiting on the sync socket) still holds its namespace
            _move_devices_back(container, failed_create=True)
            if master >= 0:
                posix.close(master)
            parent_sock.close()
            process.signal(signal.SIGKILL)
            process.wait()
            _release_memory(container)
            if cgroup is not None:
                cgroup.remove()
            raise
        finally:
            plan.close_states()
        container.cgroup_path = cgroup.path if cgroup is not None else ""
        container._sync = parent_sock
        if master >= 0:
            container.terminal = open(master, "r+b", buffering=0)  # noqa: SIM115
        return process

    def start(self, container: Container) -> None:
        sock = container._sync
        # another process created the init: a failing startContainer hook reports in the FIFO
        report = sock is None and "startContainer" in container._state.hooks
        sync.release(container.statedir.fifo_path, report=report)
        if sock is not None:  # we created the init: learn whether execve worked
            container._sync = None
            try:
                msg = sync.read_message(sock)
                if not msg:             # EOF: the init exec'd (or exited)
                    _release_memory(container)
                sync.raise_if_error(msg)
            finally:
                sock.close()

    def exec(self, container: Container, proc: oci.Process,
             stdio: tuple[Stdio, Stdio, Stdio] = (None, None, None), *,
             console_socket: str | None = None, preserve_fds: int = 0,
             listen_fds: int = 0, hold_fd: int = -1) -> Process:
        """Run ``proc`` inside the running container: its namespaces, cgroup and root
        (``exec_plan.py`` says how and in which order). Returns once the child exec'd;
        raises (with nothing left behind) when a step failed.

        With ``proc.terminal`` the pty master goes to ``console_socket``, or else to the
        returned process's ``terminal``. ``preserve_fds``/``listen_fds``: see
        ``exec_plan.build_exec``; ``hold_fd`` too (tests only): returns while the child
        waits on it."""
        from .. import syscalls
        from .exec_plan import NAMESPACE_FILES, build_exec
        from .ops import OpArray

        init = container.init
        if init is None or not init.alive():
            raise InvalidState(f"cannot exec in container {container.id!r}: its init is gone")
        pid = init.pid
        ns_flags = 0
        for name, flag in NAMESPACE_FILES.items():
            if not _same_namespace(pid, name):
                ns_flags |= flag
        # a rootless container may have no cgroup of its own: then nor does the process
        cgroup = Cgroup(_init_cgroup(pid, container.cgroup_path)) \
            if container.cgroup_path else None
        console_sock = None
        if proc.terminal and console_socket:
            from .console import connect

            console_sock = connect(console_socket)      # fails before anything is made
        fds: list[int] = []
        plan = None
        parent_sock, child_sock = sync.channel()
        try:
            cgroup_fd = -1
            fork = False
            # the child is born outside the container's pid namespace, re-executes into
            # ck-init, then joins it with the others and forks the process (exec_plan)
            fork = not _same_namespace(pid, "pid")
            if cgroup is not None:
                cgroup_fd = posix.open(cgroup.path,
                                       posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
                fds.append(cgroup_fd)
            if not init.alive():    # the /proc files opened above may be of a recycled pid
                raise InvalidState(f"cannot exec in container {container.id!r}: its init "
                                   "exited")
            into_cgroup = cgroup is not None and syscalls.clone3_into_cgroup()
            plan = build_exec(container.spec, proc, init_pidfd=init.pidfd, ns_flags=ns_flags,
                              sync_fd=child_sock.fileno(),
                              stdio=(_fd(stdio[0], 0), _fd(stdio[1], 1), _fd(stdio[2], 2)),
                              placed_in_cgroup=into_cgroup or cgroup is None,
                              preserve_fds=preserve_fds, listen_fds=listen_fds,
                              hold_fd=hold_fd, fork_into_pidns=fork,
                              keyring=container._state.keyring or None)
            ops = OpArray(plan.steps)
            child, pidfd, placed, _ = syscalls.spawn(
                0, cgroup_fd if into_cgroup else -1, ops.ops, child_sock.fileno(),
                share_mm=False)
        except BaseException:
            parent_sock.close()
            if console_sock is not None:
                console_sock.close()
            raise
        finally:
            child_sock.close()
            for fd in fds:
                posix.close(fd)
            if plan is not None:
                plan.close()
        process = Process(child, pidfd, is_child=True)
        master = -1
        try:
            if cgroup is not None and not placed:
                cgroup.add(child)
                sync.send(parent_sock, sync.CGROUP)
            try:
                if plan.forks_init:     # the child forked the process (INIT) and exits
                    process = _take_forked(parent_sock, process)
                    child = process.pid
                if proc.terminal:
                    master = sync.expect_console(parent_sock)
                if plan.seccomp_listener is not None:
                    _hand_over_listener(container, plan.seccomp_listener, parent_sock,
                                        child, "running")
                msg = sync.read_message(parent_sock)
                sync.raise_if_error(msg)
            except SetupError as e:
                raise _exec_error(container, e) from None
            if msg not in (b"", sync.CREATED) or (msg == sync.CREATED and hold_fd < 0):
                raise ContainerkitError(f"exec in container {container.id!r}: unexpected "
                                        f"message {msg[:40]!r} from the child")
            if console_sock is not None:
                from .console import send_master

                send_master(console_sock, master)
                posix.close(master)
                master = -1
        except BaseException:
            if master >= 0:
                posix.close(master)
            if process.alive():
                process.signal(signal.SIGKILL)
            process.wait()
            raise
        finally:
            parent_sock.close()
            if console_sock is not None:
                console_sock.close()
        if master >= 0:
            process.terminal = open(master, "r+b", buffering=0)  # noqa: SIM115
        return process

    def delete(self, container: Container) -> None:
        if container.terminal is not None:
            container.terminal.close()
            container.terminal = None
        if container._sync is not None:
            container._sync.close()
            container._sync = None
        init = container.init
        if init is not None and init.alive():
            try:
                init.signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        if container._execs:
            # our exec'd children: an init of a pid namespace does not finish exiting
            # while a process of its namespace is unreaped, so reap them first
            if container.cgroup_path:
                Cgroup(container.cgroup_path).kill_all()
            for process in container._execs:
                if process.alive():
                    process.signal(signal.SIGKILL)
                process.wait()
            container._execs.clear()
        if container.cgroup_path:
            Cgroup(container.cgroup_path).remove()
        if init is not None and init.is_child:
            init.wait()
            _release_memory(container)
        _move_devices_back(container)


def _move_devices_back(container: Container, failed_create: bool = False) -> None:
    """linux.netDevices go back out of a namespace joined by path (delete), or out of any
    (a failed create, while the init still holds its namespace): netdev.py."""
    path = pathnames.join(container.statedir.path, "netdevices.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return
    import logging

    from .netdev import move_back

    try:
        move_back(data, failed_create)
    except Exception as e:  # noqa: BLE001 - delete goes on; say what stays where
        logging.getLogger("containerkit").warning(
            "linux.netDevices: could not move the devices back: %s", e)


def _hook_state(container: Container, status: str, pid: int) -> dict[str, object]:
    """The state document hooks read on stdin; the pid is the host's (runtime-spec)."""
    doc = container._state.to_oci(status)
    doc["pid"] = pid
    return doc


def _fill_hook_states(container: Container, plan: Plan, pid: int) -> None:
    """Write the state documents the init's own hooks read (createContainer:
    "creating", startContainer: "created")."""
    from .. import jsonfast as json  # json imports re, enum...: ~5 ms of every run

    for status, fd in plan.state_fds.items():
        posix.write(fd, json.dumps(_hook_state(container, status, pid)).encode())


def _runtime_hooks(container: Container, pid: int) -> None:
    """netDevices moved in, then the prestart (deprecated) and createRuntime hooks: here,
    in the runtime's namespaces, while the init waits before pivot_root (runc's order)."""
    from .. import hooks as runner

    linux = container.spec.linux
    if linux is not None and linux.net_devices:
        from .netdev import RECORD, move_in, record

        moved = move_in(linux.net_devices, pid)
        joined = next((ns.path for ns in linux.namespaces
                       if ns.type == "network" and ns.path), None)
        # a failed create moves them back out (before the init dies and a new namespace
        # with it); delete does when the namespace was joined, as it outlives the container
        container.statedir.write_file(RECORD, record(moved, joined or f"/proc/{pid}/ns/net",
                                                     bool(joined)))
    hooks = container.spec.hooks
    if hooks is None:
        return
    state = _hook_state(container, "creating", pid)
    runner.run("prestart", hooks.prestart, state)
    runner.run("createRuntime", hooks.create_runtime, state)


def _map_user_namespace(pid: int, plan: Plan, sock: socket) -> None:
    """Write the new user namespace's maps (and the init's oom_score_adj, which needs
    host capabilities), then let the init go on. A child that already failed (an
    earlier step) is reported as such, not as a failed write."""
    from . import userns

    assert plan.id_maps is not None
    sync.expect(sock, sync.USERNS)
    try:
        userns.write(pid, plan.id_maps)
        if plan.oom_score_adj is not None:
            with open(f"/proc/{pid}/oom_score_adj", "w") as f:
                f.write(str(plan.oom_score_adj))
    except (OSError, ContainerkitError):
        sync.raise_if_pending_error(sock)
        raise
    sync.send(sock, sync.IDMAPPED)


def _take_forked(sock: socket, first: Process) -> Process:
    """The process the spawned child forked (its INIT message; CLONE_PARENT makes it our
    child too), once the first child, which exits then, is reaped."""
    pid = sync.expect_init(sock)
    forked = Process(pid, posix.pidfd_open(pid), is_child=True)
    first.wait()
    return forked


def _asked_resources(linux: object) -> str:
    """The first linux.resources field that needs a cgroup ('' when none does). Device
    rules count unless they are only the default deny-all: in a user namespace no node
    can be made, the container has just the bound defaults and linux.devices."""
    from ..cgroups.v2 import limits_asked

    res = getattr(linux, "resources", None)
    if res is None:
        return ""
    if any(r.allow or r.type not in (None, "a") or r.major is not None
           or r.minor is not None or (r.access or "rwm") != "rwm" for r in res.devices):
        return "devices"
    return limits_asked(res)


def _set_devices(cgroup: Cgroup, linux: oci.Linux | None) -> None:
    """The device program (runc's default list even without rules). Rootless, bpf(2) is
    not allowed: as runc's rootless mode, go on without it, with a warning (an unprivileged
    user can neither mknod a device nor open one its host permissions do not already
    allow, so the rules would add nothing)."""
    from .userns import rootless

    try:
        cgroup.set_devices(linux)
    except UnsupportedError as e:
        if not rootless():
            raise
        import logging

        logging.getLogger(__name__).warning("%s (rootless: going on without it)", e)


def _may_create(cgroup: Cgroup) -> bool:
    """False when an unprivileged (rootless) caller cannot create the container's cgroup
    (no delegation): like runc's rootless mode it then runs without one, but only when no
    resources are asked (the caller checks)."""
    from .userns import rootless

    if not rootless():
        return True
    path = cgroup.path
    while not pathnames.exists(path):
        path = pathnames.dirname(path)
    return posix.access(path, posix.W_OK | posix.X_OK)


def _hand_over_listener(container: Container, sec: oci.Seccomp, sock: _socket.socket,
                        pid: int, status: str = "creating") -> None:
    """The init sends its seccomp notify fd (SECCOMP + SCM_RIGHTS): give it to the agent
    at listenerPath with the container process state, then let the init go on."""
    from .seccomp import send_to_listener

    msg, fd = sync.read_message_fd(sock)
    try:
        sync.raise_if_error(msg)
        if msg != sync.SECCOMP or fd < 0:
            raise ContainerkitError(f"container init: expected SECCOMP and a listener fd on "
                                    f"the sync socket, got {msg[:40]!r}")
        send_to_listener(sec, _hook_state(container, status, pid), fd)
    finally:
        if fd >= 0:
            posix.close(fd)
    sync.send(sock, sync.CONTINUE)


def _same_namespace(pid: int, name: str) -> bool:
    """Whether the init's namespace ``name`` (a /proc/<pid>/ns file) is this process's."""
    try:
        theirs = posix.stat(f"/proc/{pid}/ns/{name}")
    except FileNotFoundError:
        if not pathnames.exists(f"/proc/self/ns/{name}"):
            return True                 # a namespace type this kernel does not have
        raise ContainerkitError(f"the container's init (pid {pid}) is gone") from None
    ours = posix.stat(f"/proc/self/ns/{name}")
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


def _init_cgroup(pid: int, container_cgroup: str) -> str:
    """The cgroup v2 directory the init is in when it is the container's or below it
    (a container may make sub-cgroups and move its init), else the container's."""
    from ..cgroups.v2 import cgroup2_mountpoint

    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    path = pathnames.normpath(cgroup2_mountpoint() + line[3:].strip())
                    if path == container_cgroup or path.startswith(container_cgroup + "/"):
                        return path
    except OSError:
        pass
    return container_cgroup


def _exec_error(container: Container, err: SetupError) -> SetupError:
    """The child's report, phrased for exec (runc's "no such file or directory" wording
    stays in it: podman maps that text to 127)."""
    where = f" {err.detail}" if err.detail else ""
    err.args = (f"cannot exec in container {container.id!r}: {err.step}{where}: "
                f"{posix.strerror(err.errno)}",)
    return err


def _memory_limited(linux: object) -> bool:
    """Whether the spec limits the container's memory (then the init gets its own mm)."""
    res = getattr(linux, "resources", None)
    mem = getattr(res, "memory", None)
    unified = getattr(res, "unified", None) or {}
    return bool(mem is not None and (mem.limit or mem.swap or mem.reservation)) or any(
        k.startswith("memory.") for k in unified)
