"""Container: the lifecycle and its state machine; the work is done by an ExecutionDriver.

    creating --create()--> created --start()--> running --(exit)--> stopped
                                               running --pause()--> paused --resume()--> running
    any --delete()--> (gone)

State-changing calls hold the state directory's lock and check the transition against
the state on disk (another process may have changed it). The state file is written once,
at create; "running" is read off the world as runc does: the init is alive and the
exec FIFO is gone (``start`` removes it); "paused" when, besides, the container's cgroup
is frozen (``cgroup.freeze`` reads 1).
"""

from __future__ import annotations

import _signal  # not signal: its enums import enum (~3 ms for `state`/`kill`)
import posix
import time

from . import jsonfast as json
from . import pathnames
from .errors import ContainerkitError, ContainerNotFound, InvalidState, UnsupportedError
from .process import Process
from .state import State, StateDir, keyring_name

# typing and the graph drivers are not imported at run time: `state` and `kill` load a
# container on every call podman and the containerd shim make (~3 ms)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    from typing import IO, Any

    from . import spec as oci
    from . import syscalls
    from .graph import GraphDriver
    from .protocols import ExecutionDriver

    Stdio = IO[bytes] | IO[str] | int | None


def __getattr__(name: str) -> object:
    if name == "ExecutionDriver":       # kept importable from here (moved to protocols)
        from .protocols import ExecutionDriver

        return ExecutionDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Container:
    """One container. Build it with ``new_container`` or ``load_container``."""

    def __init__(self, statedir: StateDir, spec: oci.Spec | None, state: State,
                 driver: ExecutionDriver, graph: GraphDriver | None) -> None:
        self.statedir = statedir
        self._spec = spec
        self.driver = driver
        self.graph = graph
        self._state = state
        self.init: Process | None = None
        self.stdin: Stdio = None
        self.stdout: Stdio = None
        self.stderr: Stdio = None
        self._sync: _socket.socket | None = None   # NativeDriver: open from create to start
        # NativeDriver: the region a shared-memory init runs on until its execve
        self._child_memory: syscalls.ChildMemory | None = None
        # process.terminal: the pty master, unless console_socket (a unix socket path)
        # gets it as runc's --console-socket does
        self.terminal: IO[bytes] | None = None
        self.console_socket: str | None = None
        self.preserve_fds = 0       # fds 3..3+N-1 of this process cross into the container
        self.listen_fds = 0         # the first of them are socket-activation fds (LISTEN_FDS)
        self.new_keyring = True     # a session keyring of its own (runc's default)
        self._execs: list[Process] = []   # new_process children: reaped by delete

    @property
    def spec(self) -> oci.Spec:
        """The spec the container was created with (read from the state directory on first
        use by a loaded container: ``state`` or ``kill`` never pay for decoding it)."""
        if self._spec is None:
            from . import spec as oci

            try:
                with open(self.statedir.spec_path, "rb") as f:
                    self._spec = oci.loads(f.read(), source=self.statedir.spec_path)
            except FileNotFoundError:
                raise ContainerkitError(f"{self.statedir.spec_path}: missing") from None
        return self._spec

    # -- identity ------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.statedir.id

    @property
    def path(self) -> str:
        """The container's state directory."""
        return self.statedir.path

    @property
    def bundle(self) -> str:
        return self._state.bundle

    @property
    def rootfs(self) -> str:
        return self._state.rootfs

    @property
    def cgroup_path(self) -> str:
        return self._state.cgroup

    @cgroup_path.setter
    def cgroup_path(self, value: str) -> None:
        self._state.cgroup = value

    @property
    def created(self) -> str:
        """When ``new_container`` claimed the id (RFC 3339, UTC)."""
        return self._state.created

    @property
    def pid(self) -> int:
        """Host pid of the init (as the seed's Pid), -1 when there is none (before create,
        or loaded after the init was gone)."""
        return self.init.pid if self.init is not None else -1

    # -- state ---------------------------------------------------------------------
    @property
    def status(self) -> str:
        """creating, created, running, paused or stopped, as of now (reads the state file)."""
        return self._live_status(self._reload())

    def _reload(self) -> State:
        if self.statedir.exists():
            self._state = self.statedir.load()
        return self._state

    def _live_status(self, state: State) -> str:
        if state.status in ("created", "running"):
            if self.init is None or not self.init.alive():
                return "stopped"
            if state.cgroup and _frozen(state.cgroup):
                return "paused"
            if not pathnames.exists(self.statedir.fifo_path):
                return "running"
        return state.status

    def state(self) -> dict[str, Any]:
        """The OCI state document with the live status."""
        state = self._reload()
        return state.to_oci(self._live_status(state))

    def _expect(self, wanted: tuple[str, ...], action: str) -> str:
        status = self._live_status(self._reload())
        if status not in wanted:
            raise InvalidState(f"cannot {action} container {self.id!r}: it is {status}, "
                               f"not {' or '.join(wanted)}")
        return status

    # -- lifecycle -----------------------------------------------------------------
    def create(self) -> None:
        """Make the init in all its namespaces; it waits for ``start``."""
        _check_preserved(self.preserve_fds)     # before this opens anything of its own
        with self.statedir:
            self._expect(("creating",), "create")
            # config.json is written while the init sets up its root (~1 ms of kernel work)
            saved: list[bool] = []

            def save_spec() -> None:
                self._save_spec(self.spec)
                saved.append(True)

            self.init = self.driver.create(self, meanwhile=save_spec)
            if not saved:       # a driver that does not call it
                self._save_spec(self.spec)
            self._state.pid = self.init.pid
            self._state.start_time = self.init.start_time
            self._state.status = "created"
            self._state.keyring = keyring_name(self.id) if self.new_keyring else ""
            hooks = self.spec.hooks
            self._state.hooks = [h for h, name in (("startContainer", "start_container"),
                                                   ("poststart", "poststart"),
                                                   ("poststop", "poststop"))
                                 if hooks is not None and getattr(hooks, name)]
            self.statedir.save(self._state)

    def start(self) -> None:
        """Run the user's program in the created container (the OCI ``start``)."""
        with self.statedir:
            self._expect(("created",), "start")
            self.driver.start(self)
            hooks = self.spec.hooks if "poststart" in self._state.hooks else None
            if hooks is not None and hooks.poststart:
                from . import hooks as runner

                try:
                    runner.run("poststart", hooks.poststart, self.state())
                except ContainerkitError:
                    # runtime-spec 1.3: a failed poststart hook stops the container
                    if self.init is not None and self.init.alive():
                        self.init.signal(_signal.SIGKILL)
                    raise

    def new_process(self, process_spec: oci.Process, stdin: Stdio = None,
                    stdout: Stdio = None, stderr: Stdio = None, *,
                    console_socket: str | None = None, preserve_fds: int = 0,
                    listen_fds: int = 0, _hold_fd: int = -1) -> Process:
        """Run another process in the running container (the seed's NewProcess, runc
        ``exec``): all of its namespaces, its cgroup and root, with ``process_spec``'s
        own user, capabilities, rlimits, env and cwd, and the container's seccomp filter.
        Returns once it exec'd (a failed step raises, leaving nothing). When this Python
        process created it, ``wait()`` gives its status; ``delete`` kills and reaps it.

        ``process_spec.terminal``: the pty master goes to ``console_socket`` (a unix
        socket path, as runc's), else it is the returned process's ``terminal``.
        ``preserve_fds``: this process's fds 3..3+N-1 cross over, the first
        ``listen_fds`` of them as socket activation (LISTEN_FDS).
        ``_hold_fd`` is for tests only: see ``native.exec_plan.build_exec``."""
        with self.statedir:
            self._expect(("running",), "exec in")
            process = self.driver.exec(self, process_spec, (stdin, stdout, stderr),
                                       console_socket=console_socket,
                                       preserve_fds=preserve_fds, listen_fds=listen_fds,
                                       hold_fd=_hold_fd)
        self._execs.append(process)
        return process

    def processes(self) -> list[int]:
        """Host pids of every process in the container's cgroup and the cgroups the
        container made below it (runc ``ps``)."""
        from .cgroups import Cgroup

        self._expect(("created", "running", "paused"), "list the processes of")
        if not self.cgroup_path:
            return _pid_namespace_members(self.pid)     # rootless, no cgroup of its own
        return Cgroup(self.cgroup_path).all_pids()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the init to exit: its exit code, or 128+N for signal N.

        None when this Python process did not create the container (only the parent
        can read an exit status)."""
        if self.init is None:
            raise InvalidState(f"container {self.id!r} has no process to wait for")
        return self.init.wait(timeout)

    # -- cgroup verbs ---------------------------------------------------------------
    def pause(self, timeout: float = 10.0) -> None:
        """Freeze every process of a running container (runc ``pause``)."""
        self._freeze(True, "running", "pause", timeout)

    def resume(self, timeout: float = 10.0) -> None:
        """Thaw a paused container (runc ``resume``)."""
        self._freeze(False, "paused", "resume", timeout)

    def _freeze(self, frozen: bool, wanted: str, action: str, timeout: float) -> None:
        from .cgroups import Cgroup

        with self.statedir:
            self._expect((wanted,), action)
            try:
                Cgroup(self._need_cgroup(action)).freeze(frozen, timeout)
            except TimeoutError as e:
                raise ContainerkitError(f"cannot {action} container {self.id!r}: {e}") from None

    def update(self, resources: oci.Resources) -> None:
        """Change the cgroup limits of a live container (runc ``update``): the given fields
        are merged into the container's ``linux.resources``, the merged set is applied, and
        the merged spec is saved in the state directory."""
        from . import spec as oci_spec
        from .cgroups import Cgroup

        with self.statedir:
            self._expect(("created", "running", "paused"), "update")
            self._spec = None       # the saved spec: another process may have updated it
            spec = self.spec
            if spec.linux is None:
                spec.linux = oci_spec.Linux()
            old = spec.linux.resources
            merged_doc = _merge(old.to_dict() if old is not None else {}, resources.to_dict())
            merged = oci_spec.Resources.from_dict(merged_doc, source="resources",
                                                  path="linux.resources")
            cgroup = Cgroup(self._need_cgroup("update"))
            cgroup.set_resources(merged, update=True)
            if resources.devices:               # a new device list replaces the program
                cgroup.set_devices(spec.linux, merged.devices, replace=True)
            spec.linux.resources = merged
            self._save_spec(spec)

    def _save_spec(self, spec: oci.Spec) -> None:
        """The state dir's config.json, for load_container (compact: `containerkit spec`
        prints runc's form)."""
        self.statedir.write_file("config.json", json.dumps(
            spec.to_dict(), separators=(",", ":")).encode())

    def stats(self) -> dict[str, Any]:
        """runc's ``events --stats`` data for the container's cgroup."""
        from .cgroups import Cgroup

        self._expect(("created", "running", "paused"), "read the stats of")
        return Cgroup(self._need_cgroup("read the stats of")).stats()

    def _need_cgroup(self, action: str) -> str:
        if not self.cgroup_path:
            raise UnsupportedError(f"cannot {action} container {self.id!r}: it has no cgroup "
                                   "(made by an unprivileged user without cgroup delegation)")
        return self.cgroup_path

    def signal(self, sig: int = _signal.SIGTERM, all: bool = False) -> None:
        """Signal the init; with ``all``, every process ``processes`` lists (runc's
        ``kill --all``: not an error once the container has stopped and its cgroup is
        empty)."""
        if all and self.cgroup_path:
            from .cgroups import Cgroup

            Cgroup(self.cgroup_path).kill_all(sig)
            return
        if all:         # no cgroup of its own (rootless): its pid namespace's processes
            if self.init is None or not self.init.alive():
                return      # (its pid may be another process's by now)
            for pid in _pid_namespace_members(self.pid):
                try:
                    if pid == self.pid:
                        self.init.signal(sig)
                    else:
                        posix.kill(pid, sig)
                except ProcessLookupError:
                    pass
            return
        status = self._expect(("created", "running", "paused"), "signal")
        assert self.init is not None
        try:
            self.init.signal(sig)
        except ProcessLookupError:
            raise InvalidState(f"container {self.id!r} is not running ({status})") from None

    def delete(self, force: bool = False) -> None:
        """Remove the container: processes (with ``force``), cgroup, rootfs mount, state."""
        with self.statedir:
            status = self._live_status(self._reload())
            if status in ("running", "paused") and not force:
                raise InvalidState(f"cannot delete container {self.id!r}: it is {status}; "
                                   "stop it first or use force")
            stopped = self._state.to_oci("stopped")
            poststop = self._poststop_hooks() if status != "creating" else []
            self.driver.delete(self)
            if self.graph is not None:
                self.graph.unmount(self.id)
            self.statedir.remove()
        if poststop:
            from . import hooks as runner

            runner.run_logged("poststop", poststop, stopped)

    def _poststop_hooks(self) -> list[oci.Hook]:
        """Read before the state directory (and its config.json) goes."""
        if "poststop" not in self._state.hooks:
            return []
        try:
            hooks = self.spec.hooks
        except ContainerkitError:
            return []
        return list(hooks.poststop) if hooks is not None else []

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        if pathnames.isdir(self.statedir.path):
            self.delete(force=True)

    def __repr__(self) -> str:
        return f"<Container {self.id} {self._state.status}>"


def _check_preserved(count: int) -> None:
    """Every fd to pass must be open here: a closed one could be taken by one of the
    runtime's own files (lock, FIFO, sync socket) and leak that into the container."""
    for fd in range(3, 3 + count):
        try:
            posix.fstat(fd)
        except OSError:
            raise ContainerkitError(f"preserve fds: fd {fd} is not open (fds 3.."
                                    f"{2 + count} must be)") from None


def _pid_namespace_members(init_pid: int) -> list[int]:
    """The host pids in the init's pid namespace (the init alone if it shares ours)."""
    if init_pid <= 0:
        return []
    try:
        ns = posix.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return []
    if ns == posix.readlink("/proc/self/ns/pid"):
        return [init_pid]
    found = []
    for name in posix.listdir("/proc"):
        if name.isdigit():
            try:
                if posix.readlink(f"/proc/{name}/ns/pid") == ns:
                    found.append(int(name))
            except OSError:
                continue
    return sorted(found)


def _frozen(cgroup: str) -> bool:
    try:
        with open(pathnames.join(cgroup, "cgroup.freeze"), "rb") as f:
            return f.read(1) == b"1"
    except OSError:
        return False


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` over ``old``: objects merged key by key, anything else replaced."""
    out = dict(old)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _now() -> str:
    """RFC 3339 in UTC with nanoseconds, as runc's state shows ``created``."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def new_container(config: Any, graph: GraphDriver, driver: ExecutionDriver) -> Container:
    """Claim the id (the state directory), mount the rootfs and resolve the spec.

    Nothing is left behind when this fails; the state files are written by ``create``."""
    statedir = StateDir(config.root, config.id)
    statedir.make()
    mounted = False
    try:
        mount = graph.mount(config.id)
        mounted = True
        spec = config.spec(mount)
        state = State(id=config.id, bundle=config.bundle, created=_now(), rootfs=mount.path,
                      graph=graph.describe(), annotations=dict(spec.annotations or {}))
    except BaseException:
        if mounted:
            graph.unmount(config.id)
        statedir.remove()
        raise
    return Container(statedir, spec, state, driver, graph)


def load_container(config: Any, driver: ExecutionDriver) -> Container:
    """Attach to a container created earlier, possibly by another process.

    The init is found by pid and checked by its start time, so a recycled pid is never
    taken for the container."""
    statedir = StateDir(config.root, config.id)
    state = statedir.load()
    from .graph import from_description

    container = Container(statedir, None, state, driver, from_description(state.graph))
    if state.pid:
        container.init = Process.attach(state.pid, state.start_time)
    return container


def remove_abandoned(root: str, container_id: str) -> bool:
    """Remove a state directory that has no usable state (a create killed half-way, or
    a state.json that cannot be read), as runc's ``delete --force`` does: kill what runs
    in the cgroup it may have made, remove that cgroup and the directory. Under the state
    lock, so a create still in progress is waited for. True when a loadable container
    exists after all (the caller then deletes it normally)."""
    statedir = StateDir(root, container_id)
    try:
        with statedir:
            if statedir.exists():
                try:
                    statedir.load()
                    return True
                except ContainerkitError:
                    pass        # unreadable: remove what it would have pointed at
            from .cgroups import Cgroup
            from .cgroups.v2 import cgroup2_mountpoint

            link = pathnames.join(statedir.path, "cgroup")
            path = posix.readlink(link) if pathnames.islink(link) else pathnames.join(
                cgroup2_mountpoint(), "containerkit", container_id)
            Cgroup(path).remove()
            statedir.remove()
    except ContainerNotFound:
        pass
    return False
