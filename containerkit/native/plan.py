"""Build the init's plan: every syscall between clone and execve, resolved in the parent.

The order follows runc's standard init: namespaces, hostname, loopback, mount
propagation, rootfs bind, spec mounts, /dev nodes, pivot_root, masked and read-only
paths, root read-only, cwd, rlimits, bounding set, user, capabilities, no_new_privs,
fd hygiene, the executable lookup, report CREATED and wait for start, execve.
Each step is an op for the C child (``ops.py``), with a name and a detail that an
error report carries.
"""

from __future__ import annotations

import posix

from .. import pathnames
from .. import spec as oci
from .. import syscalls as s
from ..errors import ContainerkitError, SpecError, UnsupportedError
from . import ops, sync, userns
from .identity import process_steps

NAMESPACE_FLAGS = {
    "pid": s.CLONE_NEWPID, "network": s.CLONE_NEWNET, "mount": s.CLONE_NEWNS,
    "ipc": s.CLONE_NEWIPC, "uts": s.CLONE_NEWUTS, "cgroup": s.CLONE_NEWCGROUP,
    "user": s.CLONE_NEWUSER, "time": s.CLONE_NEWTIME,
}
# joined by path in this order (after the user namespace); the mount namespace last, as
# runc: the rootfs is then set up in it. A pid namespace is joined at the clone (setns
# only sets pid_for_children): by the parent thread around it (syscalls.spawn), or by
# the first child before it forks the init.
JOINABLE = ("network", "ipc", "uts", "cgroup", "time", "pid", "mount")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Plan:
    """The init's steps in order, the clone flags, and the namespace files opened for
    setns (closed by the parent after the clone)."""

    def __init__(self, clone_flags: int) -> None:
        self.clone_flags = clone_flags
        self.steps: list[ops.Step] = []
        self.join_fds: list[int] = []
        self.hook_sync = False              # the init stops at HOOKS (sync.py)
        self.state_fds: dict[str, int] = {}  # status -> memfd the hooks read the state from
        # a new user namespace: the maps the parent writes while the init waits
        # (IDMAPPED), and the oom_score_adj it writes for the init (once root of its
        # namespace the init is not dumpable: its /proc files are the host root's)
        self.id_maps: userns.IdMaps | None = None
        self.oom_score_adj: int | None = None
        self.sync_fd = -1                    # the init's end of the sync socket
        self.seccomp_listener: oci.Seccomp | None = None   # the init sends SECCOMP + fd
        self.mount_trees: dict[int, int] = {}    # mounts[i] -> its idmapped tree's fd
        self.in_userns = False          # new or joined: no mknod, sysfs rules (rootfs.py)
        self.setgroups_denied = False   # the user namespace refuses setgroups(2)
        self.forks_init = False         # the spawned child forks the init (INIT, sync.py)
        self.pidns_fd = -1                  # a pid namespace to clone the init into
        self.image_fd = -1                  # ck-init's sealed memfd, for REEXEC
        self._proc_fd = -1                  # the host's /proc (proc_fd)

    def proc_fd(self) -> int:
        """The host's /proc, for WRITE_FILE (ops.write_proc): opened here, by the parent,
        once per plan; kept by the init with the namespace files (closed with them)."""
        if self._proc_fd < 0:
            self._proc_fd = posix.open("/proc", posix.O_PATH | posix.O_DIRECTORY
                                       | posix.O_CLOEXEC)
            self.join_fds.append(self._proc_fd)
        return self._proc_fd

    def reexec_step(self, keep: tuple[int, ...]) -> ops.Step:
        """REEXEC into ck-init (ops.reexec) from ``open_image``'s memfd, keeping
        ``keep`` open across it. No CLOSE_FDS may come before it that drops the image."""
        return ops.Step("reexec", *ops.reexec(self.open_image(), keep), "ck-init")

    def open_image(self) -> int:
        """ck-init's sealed memfd for ``add_reexec``, made once per plan."""
        if self.image_fd < 0:
            try:
                self.image_fd = s.init_image()
            except OSError as e:
                raise UnsupportedError(
                    f"cannot make the container init's sealed executable ({e.strerror}); "
                    "is vm.memfd_noexec 2 on this host? containerkit refuses to run a "
                    "container whose init could reach the host's interpreter") from None
        return self.image_fd

    def add(self, name: str, op: ops.Op, detail: str = "") -> None:
        self.steps.append(ops.Step(name, op[0], op[1], detail))

    def close(self, keep_states: bool = False) -> None:
        """Close the parent's copies of the fds the init inherited; the hook state files
        stay open with ``keep_states`` (the driver fills them once the pid is known)."""
        for fd in self.join_fds:
            posix.close(fd)
        self.join_fds.clear()
        self._proc_fd = -1
        if self.image_fd >= 0:
            posix.close(self.image_fd)
            self.image_fd = -1
        if not keep_states:
            self.close_states()

    def close_states(self) -> None:
        for fd in self.state_fds.values():
            posix.close(fd)
        self.state_fds.clear()


def check_supported(spec: oci.Spec) -> None:
    """Refuse what this version cannot apply yet: never run with weaker isolation."""
    proc = spec.process
    if spec.root is None or not spec.root.path:
        raise SpecError("config.json: root.path: required")
    if proc is None:
        raise SpecError("config.json: process: required to create a container")
    check_process(proc, "config.json: process")
    if proc.exec_cpu_affinity:
        # for exec'd processes only (runtime-spec: not the init's): checked here
        from . import numa  # here: each module on the create path costs ~0.2 ms

        numa.exec_cpus(proc.exec_cpu_affinity)
    if spec.hooks is not None:
        for name in ("prestart", "create_runtime", "create_container", "start_container",
                     "poststart", "poststop"):
            stage = _camel(name)
            for i, hook in enumerate(getattr(spec.hooks, name)):
                if not hook.path.startswith("/"):
                    raise SpecError(f"config.json: hooks.{stage}[{i}].path: {hook.path!r} "
                                    "must be absolute")
                # startContainer resolves in the container's root, createContainer in its
                # mount namespace (which may mount over the host's path): not checkable here
                if name not in ("create_container", "start_container") \
                        and not posix.access(hook.path, posix.X_OK):
                    raise SpecError(f"config.json: hooks.{stage}[{i}].path: {hook.path}: "
                                    "not an executable file")
    linux = spec.linux
    if linux is None:
        return
    if linux.mount_label:
        raise UnsupportedError(_lsm_refusal("linux.mountLabel", "selinux"))
    if linux.intel_rdt:
        why = "this host has no resctrl filesystem (/sys/fs/resctrl)" \
            if not pathnames.isdir("/sys/fs/resctrl/info") else "not supported yet"
        raise UnsupportedError(f"linux.intelRdt: {why}; refusing to run without it")
    if linux.net_devices:
        from . import netdev  # lazily: its tables cost every `run` ~1 ms

        netdev.check(linux)


def check_process(proc: oci.Process, where: str = "process") -> None:
    """Refuse what a process (the init, or one exec'd) cannot have here: never run
    with less isolation."""
    if not proc.args:
        raise SpecError(f"{where}.args: must name the program to run")
    if proc.command_line:
        raise SpecError(f"{where}.commandLine: is for Windows only")
    if proc.apparmor_profile:
        raise UnsupportedError(_lsm_refusal(f"{where}.apparmorProfile", "apparmor"))
    if proc.selinux_label:
        raise UnsupportedError(_lsm_refusal(f"{where}.selinuxLabel", "selinux"))
    cwd = proc.cwd or "/"
    if not cwd.startswith("/"):
        raise SpecError(f"{where}.cwd: {cwd!r} must be an absolute path")


def _lsm_refusal(field: str, lsm: str) -> str:
    """Why an LSM label cannot be applied: absent from the host, or not built here yet."""
    try:
        with open("/sys/kernel/security/lsm") as f:
            active = f.read().strip().split(",")
    except OSError:
        active = []
    if lsm not in active:
        return f"{field}: {lsm} is not enabled on this host (active LSMs: " \
               f"{','.join(active) or 'none'}); refusing to run without it"
    return f"{field}: {lsm} labels are not supported yet"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def build(spec: oci.Spec, *, rootfs: str, bundle: str, cgroup_dir: str, sync_fd: int, fifo_fd: int,
          stdio: tuple[int, int, int], placed_in_cgroup: bool = True,
          no_pivot: bool = False, preserve_fds: int = 0, listen_fds: int = 0,
          keyring: str | None = None) -> Plan:
    """The whole child side as a list of steps. ``rootfs`` is the absolute host path.

    ``placed_in_cgroup``: the clone puts the child in its cgroup (CLONE_INTO_CGROUP);
    when False the child first waits for the parent to do it. ``no_pivot``: move the
    rootfs onto / and chroot instead of pivot_root. ``preserve_fds``: fds 3..3+N-1 of
    the caller cross into the container (the first ``listen_fds`` of them are
    socket-activation fds: LISTEN_FDS and LISTEN_PID=1 are set, as runc does).
    ``keyring``: the name of the new session keyring to join (None: keep the caller's).
    The fds a failed build opened are closed.
    """
    made: list[Plan] = []
    try:
        return _build(spec, made, rootfs=rootfs, bundle=bundle, cgroup_dir=cgroup_dir,
                      sync_fd=sync_fd, fifo_fd=fifo_fd, stdio=stdio,
                      placed_in_cgroup=placed_in_cgroup, no_pivot=no_pivot,
                      preserve_fds=preserve_fds, listen_fds=listen_fds, keyring=keyring)
    except BaseException:
        for plan in made:
            plan.close()
        raise


def _build(spec: oci.Spec, made: list[Plan], *, rootfs: str, bundle: str, cgroup_dir: str,
           sync_fd: int, fifo_fd: int, stdio: tuple[int, int, int], placed_in_cgroup: bool,
           no_pivot: bool, preserve_fds: int, listen_fds: int, keyring: str | None) -> Plan:
    check_supported(spec)
    assert spec.process is not None and spec.root is not None
    proc = spec.process
    linux = spec.linux or oci.Linux()
    ns_types = {ns.type: ns for ns in linux.namespaces}

    new = {t for t, ns in ns_types.items() if not ns.path}
    user = ns_types.get("user")
    joins_user = user is not None and bool(user.path)
    id_maps = userns.check(linux, "user" in new, in_userns=joins_user)
    if id_maps is not None:
        userns.check_ids(spec, linux)
    time_ns = ns_types.get("time")
    offsets = None
    if time_ns is not None or linux.time_offsets:
        from . import timens  # here: each module on the create path costs ~0.2 ms

        offsets = timens.offsets_text(linux, "time" in new, time_ns is not None
                                      and bool(time_ns.path))
    # Joining a user namespace, or namespaces by path that a new user namespace must not
    # own (the init would have no capability over them): a first child joins and makes
    # the user namespace, then forks the init into the other new namespaces (runc's
    # stages). Otherwise the init is cloned into all of them at once.
    # A pid namespace joined by path has processes in it already: the init is forked
    # into it from ck-init (REEXEC), never born there as a copy of this process, which
    # they could see (/proc/<pid>/exe would be the host's interpreter).
    pid_ns = ns_types.get("pid")
    two_stage = joins_user or (id_maps is not None and any(ns.path for ns in ns_types.values())) \
        or (pid_ns is not None and bool(pid_ns.path))
    # a new network namespace costs the clone ~0.4 ms (each other type ~0.05 ms): without
    # a user namespace to own it, the init unshares it itself, on the other CPU while
    # this process loads the device program (before any step that uses it)
    net_by_init = "network" in new and id_maps is None and not joins_user
    flags = 0
    for t in new - {"cgroup", "time"} - ({"user"} if two_stage else set()) \
            - ({"network"} if net_by_init else set()):
        # cgroup ns: unshared once inside the cgroup; time ns: unshared by the init,
        # which enters it at execve (or its fork), after its offsets are written
        flags |= NAMESPACE_FLAGS[t]
    plan = Plan(clone_flags=0 if two_stage else flags)
    plan.id_maps = id_maps
    plan.sync_fd = sync_fd
    made.append(plan)
    plan.forks_init = two_stage
    plan.in_userns = id_maps is not None or joins_user
    if id_maps is not None:
        plan.setgroups_denied = id_maps.deny_setgroups
    elif user is not None and user.path:
        plan.setgroups_denied = userns.setgroups_denied(user.path)
    add = plan.add

    passed = range(3, 3 + preserve_fds)
    if not 0 <= listen_fds <= preserve_fds:
        raise ContainerkitError(f"listen_fds {listen_fds}: must be among the "
                                f"{preserve_fds} preserved fds")

    add("reset signals", ops.reset_signals())
    if not proc.terminal:           # with a terminal, the pty's peer becomes 0, 1 and 2
        add("stdio", ops.stdio(stdio))
    if not placed_in_cgroup:
        add("wait for cgroup", ops.wait_parent(sync_fd))
    if two_stage:
        _join_steps(plan, ns_types, ("user", *JOINABLE))
        if id_maps is not None:
            add("user namespace", ops.unshare(s.CLONE_NEWUSER), detail="unshare")
    if "time" in new:
        # before the user namespace's root takes over: once the init changed its ids it is
        # not dumpable and its /proc files belong to the host's root until execve
        add("unshare", ops.unshare(s.CLONE_NEWTIME), detail="time namespace")
        if offsets:
            add("timeOffsets", ops.write_proc(plan.proc_fd(), b"self/timens_offsets", offsets),
                detail=offsets.decode().strip().replace("\n", ", "))
    if id_maps is not None:
        add("user namespace", ops.sync(sync_fd, sync.USERNS, sync.IDMAPPED),
            detail="wait for uid_map/gid_map")
    if proc.oom_score_adj is not None and id_maps is None and joins_user:
        # before becoming root there: then the init's /proc files are the host root's
        add("oomScoreAdj", ops.write_proc(plan.proc_fd(), b"self/oom_score_adj",
                                          str(proc.oom_score_adj).encode()),
            detail=str(proc.oom_score_adj))
    if plan.in_userns:
        add("user namespace", ops.become_root(), detail="setresuid/setresgid 0")
        if plan.setgroups_denied and proc.user.additional_gids:
            raise UnsupportedError(
                "process.user.additionalGids: needs setgroups(2), which the kernel denies "
                "in this user namespace (setgroups is \"deny\")")
    # ck-init from here on (REEXEC, filled in at the end, when every fd the plan uses is
    # known): once root of a new user namespace, before anything joins the container
    reexec_at = len(plan.steps)
    if two_stage:
        add("fork init", ops.fork_init(flags, sync_fd), detail=f"clone3 flags {flags:#x}")
    else:
        _join_steps(plan, ns_types, tuple(t for t in JOINABLE if t != "pid"))
        if net_by_init:
            add("unshare", ops.unshare(s.CLONE_NEWNET), detail="network namespace")
        pid_ns = ns_types.get("pid")
        if pid_ns is not None and pid_ns.path:
            plan.pidns_fd = _open_ns(plan, "pid", pid_ns.path)
    add("setsid", ops.setsid())         # as runc's init: a session of its own
    # here, not at the top: exec (exec_plan.py uses this module) makes no mounts
    from .rootfs import open_idmapped_mounts, rootfs_steps

    open_idmapped_mounts(plan, spec, bundle)   # kept by the init, like the ns to join
    hooks = spec.hooks or oci.Hooks()
    # the parent's work before pivot_root: netDevices, then prestart + createRuntime
    plan.hook_sync = bool(hooks.prestart or hooks.create_runtime or hooks.create_container
                          or linux.net_devices)
    # (a failure from here on: build() closes what this plan opened)
    if hooks.create_container:
        plan.state_fds["creating"] = posix.memfd_create("ck-hook-state", posix.MFD_CLOEXEC)
    if hooks.start_container:
        plan.state_fds["created"] = posix.memfd_create("ck-hook-state", posix.MFD_CLOEXEC)
    # nothing of the caller's crosses over: no lock, pidfd, socket or cwd fd of the host
    plan.proc_fd()          # sysctls and the like are written through it (ops.write_proc)
    used = (sync_fd, fifo_fd, *plan.join_fds, *plan.state_fds.values())
    ours = [fd for fd in used if fd in passed]
    if ours:
        raise ContainerkitError(f"preserved fds 3..{2 + preserve_fds}: fd {ours[0]} is the "
                                "runtime's own, not the caller's (was it open?)")
    add("fds", ops.close_fds_except((*used, *passed)))
    if keyring is not None:
        # runc's session keyring: searchable by the container's uid (by "other" when
        # the container has its own user namespace)
        add("keyring", ops.join_keyring(keyring.encode(), 0x8 if "user" in ns_types
                                        else 0x80000), detail=keyring)
    cg = ns_types.get("cgroup")
    if cg is not None and not cg.path:
        add("unshare", ops.unshare(s.CLONE_NEWCGROUP), detail="cgroup namespace")
    if proc.oom_score_adj is not None and id_maps is not None:
        plan.oom_score_adj = proc.oom_score_adj
    elif proc.oom_score_adj is not None and not joins_user:
        add("oomScoreAdj", ops.write_proc(plan.proc_fd(), b"self/oom_score_adj",
                                          str(proc.oom_score_adj).encode()),
            detail=str(proc.oom_score_adj))

    if "uts" in ns_types and not ns_types["uts"].path:
        if spec.hostname:
            add("sethostname", ops.sethostname(spec.hostname.encode()), detail=spec.hostname)
        if spec.domainname:
            add("setdomainname", ops.setdomainname(spec.domainname.encode()),
                detail=spec.domainname)
    elif spec.hostname or spec.domainname:
        raise SpecError("config.json: hostname: needs a new uts namespace")
    if "network" in ns_types and not ns_types["network"].path:
        add("loopback", ops.loopback_up(), detail="lo up")

    if "mount" not in ns_types:
        raise UnsupportedError("linux.namespaces: a container without a mount namespace is "
                               "not supported")
    before_root: list[ops.Step] = []
    if plan.hook_sync:
        # runc's order: mounts done, then prestart + createRuntime in the parent, then
        # createContainer from the init (cwd: the rootfs), then pivot_root
        before_root.append(ops.Step("hooks", *ops.sync(sync_fd, sync.HOOKS, sync.CONTINUE), ""))
        before_root += _hook_steps("createContainer", hooks.create_container,
                                   plan.state_fds.get("creating", -1), rootfs.encode(), -1)
    after_root: list[ops.Step] = []
    if proc.terminal:
        from .console import console_steps

        # runc's place: after pivot_root, before the read-only and masked paths
        after_root = console_steps(proc, sync_fd)
    rootfs_steps(plan, spec, linux, rootfs, bundle, cgroup_dir, no_pivot=no_pivot,
                 before_root=before_root, after_root=after_root)
    process_steps(plan, spec, proc)

    env = program_steps(plan, proc, preserve_fds, listen_fds, "config.json: ")
    if linux.seccomp is not None and proc.no_new_privileges:
        # as late as can still report an error at create: after it only the CREATED
        # write, the FIFO read, umask, one sigaction and execve remain (runc's order)
        from .seccomp import load_op

        add("seccomp", load_op(linux.seccomp, plan), detail="load filter")
    add("created", ops.report_created_and_wait(sync_fd, fifo_fd))
    # runc: after the FIFO, as the container's user, in its root (and under its seccomp
    # filter); a failure is also left in the FIFO for a `start` in another process
    plan.steps += _hook_steps("startContainer", hooks.start_container,
                              plan.state_fds.get("created", -1), None, fifo_fd)
    umask = proc.user.umask if proc.user.umask is not None else 0o022
    add("exec", ops.execve(tuple(a.encode() for a in proc.args),
                           tuple(k + b"=" + v for k, v in env.items()), umask),
        detail=repr(proc.args[0]))
    # every fd of the plan's is open now (the idmapped trees, the hooks' state files)
    image = plan.open_image()
    if image in passed:
        raise ContainerkitError(f"preserved fds 3..{2 + preserve_fds}: fd {image} is the "
                                "runtime's own, not the caller's (was it open?)")
    plan.steps.insert(reexec_at, plan.reexec_step((*plan.join_fds, *plan.state_fds.values(),
                                                   sync_fd, fifo_fd, *passed)))
    return plan


def _hook_steps(stage: str, hooks: list[oci.Hook], state_fd: int, cwd: bytes | None,
                report_fd: int) -> list[ops.Step]:
    """One HOOK op per hook the init runs itself (createContainer, startContainer)."""
    steps = []
    for i, h in enumerate(hooks):
        argv = tuple(a.encode() for a in (h.args or [h.path]))
        envp = tuple(e.encode() for e in h.env)
        timeout_ms = (h.timeout or 0) * 1000
        steps.append(ops.Step(f"hooks.{stage}[{i}]", *ops.hook(
            h.path.encode(), argv, envp, cwd, state_fd, timeout_ms, report_fd), h.path))
    return steps


def _join_steps(plan: Plan, ns_types: dict[str, oci.Namespace], order: tuple[str, ...]) -> None:
    """setns into the namespaces given by path, in ``order`` (the user namespace first:
    its capabilities are what joining the others needs, as runc does)."""
    for t in order:
        ns = ns_types.get(t)
        if ns is not None and ns.path:
            fd = _open_ns(plan, t, ns.path)
            plan.add("setns", ops.setns(fd, NAMESPACE_FLAGS[t]), detail=f"{t} {ns.path}")


def _open_ns(plan: Plan, t: str, path: str) -> int:
    """The namespace file ``path``, kept open until the clone (closed by ``plan.close``,
    also when the build fails)."""
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError as e:
        raise SpecError(f"config.json: linux.namespaces: {t} path {path}: "
                        f"{e.strerror}") from None
    plan.join_fds.append(fd)
    return fd


def program_steps(plan: Plan, proc: oci.Process, preserve_fds: int, listen_fds: int,
                  where: str) -> dict[bytes, bytes]:
    """What the init and an exec'd process share before execve: only 0-2 and the
    preserved fds cross over, the environment (the last of a repeated name wins, as in
    runc; LISTEN_PID 1 as runc passes it, for exec'd processes too), the program looked
    up with the container's PATH. Returns the environment; ``where`` prefixes errors."""
    add = plan.add
    add("fds", ops.cloexec_from(3 + preserve_fds))
    if preserve_fds:
        add("preserve fds", ops.inherit_fds(3, preserve_fds), detail=f"3..{2 + preserve_fds}")
    env: dict[bytes, bytes] = {}
    for i, e in enumerate(proc.env):
        key, eq, value = e.partition("=")
        if not eq or not key:
            raise SpecError(f"{where}process.env[{i}]: {e!r} is not KEY=VALUE")
        env[key.encode()] = value.encode()
    if listen_fds:
        env[b"LISTEN_FDS"] = str(listen_fds).encode()
        env[b"LISTEN_PID"] = b"1"
    add("exec", ops.find_executable(_candidates(proc.args[0], proc.env)),
        detail=repr(proc.args[0]))
    return env


def _candidates(arg0: str, env: list[str]) -> tuple[bytes, ...]:
    """Where execvp would look for ``arg0``, with the container's own PATH."""
    if "/" in arg0:
        return (arg0.encode(),)
    path = DEFAULT_PATH
    for e in env:
        if e.startswith("PATH="):
            path = e[5:]
    return tuple(pathnames.join(d or ".", arg0).encode() for d in path.split(":"))
