"""Build the init's plan: every syscall between clone and execve, resolved in the parent.

The order follows runc's standard init: namespaces, hostname, loopback, mount
propagation, rootfs bind, spec mounts, /dev nodes, pivot_root, masked and read-only
paths, root read-only, cwd, rlimits, bounding set, user, capabilities, no_new_privs,
fd hygiene, the executable lookup, report CREATED and wait for start, execve.
Each step is an op for the C child (``ops.py``), with a name and a detail that an
error report carries.
"""

from __future__ import annotations

import os
import resource

from .. import spec as oci
from .. import syscalls as s
from ..errors import SpecError, UnsupportedError
from . import capabilities as caps
from . import ops
from .mountopts import PROPAGATION
from .mountopts import parse as parse_mount_options
from .paths import secure_join
from .seccomp import compile_filter

NAMESPACE_FLAGS = {
    "pid": s.CLONE_NEWPID, "network": s.CLONE_NEWNET, "mount": s.CLONE_NEWNS,
    "ipc": s.CLONE_NEWIPC, "uts": s.CLONE_NEWUTS, "cgroup": s.CLONE_NEWCGROUP,
    "user": s.CLONE_NEWUSER, "time": s.CLONE_NEWTIME,
}
JOINABLE = ("network", "ipc", "uts", "cgroup")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# (name, major, minor): the devices every container gets (runtime-spec "Default Devices")
DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                   ("urandom", 1, 9), ("tty", 5, 0))
DEV_SYMLINKS = ((b"/proc/self/fd", b"fd"), (b"/proc/self/fd/0", b"stdin"),
                (b"/proc/self/fd/1", b"stdout"), (b"/proc/self/fd/2", b"stderr"))
RLIMITS = {name: getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")}
DEVICE_TYPES = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}


class Plan:
    """The init's steps in order, the clone flags, and the namespace files opened for
    setns (closed by the parent after the clone)."""

    def __init__(self, clone_flags: int) -> None:
        self.clone_flags = clone_flags
        self.steps: list[ops.Step] = []
        self.join_fds: list[int] = []

    def add(self, name: str, op: ops.Op, detail: str = "") -> None:
        self.steps.append(ops.Step(name, op[0], op[1], detail))

    def close(self) -> None:
        for fd in self.join_fds:
            os.close(fd)
        self.join_fds.clear()


def check_supported(spec: oci.Spec) -> None:
    """Refuse what this version cannot apply yet: never run with weaker isolation."""
    proc = spec.process
    if spec.root is None or not spec.root.path:
        raise SpecError("config.json: root.path: required")
    if proc is None:
        raise SpecError("config.json: process: required to create a container")
    if not proc.args:
        raise SpecError("config.json: process.args: must name the program to run")
    if proc.terminal:
        raise UnsupportedError("process.terminal: terminals are not supported yet; set it false")
    if proc.command_line:
        raise SpecError("config.json: process.commandLine: is for Windows only")
    if proc.apparmor_profile:
        raise UnsupportedError(_lsm_refusal("process.apparmorProfile", "apparmor"))
    if proc.selinux_label:
        raise UnsupportedError(_lsm_refusal("process.selinuxLabel", "selinux"))
    if proc.exec_cpu_affinity:
        raise UnsupportedError("process.execCPUAffinity: not supported yet")
    if spec.hooks is not None:
        for name in ("prestart", "create_runtime", "create_container", "start_container"):
            if getattr(spec.hooks, name):
                raise UnsupportedError(f"hooks.{_camel(name)}: not supported yet (poststart "
                                       "and poststop are)")
        for stage in ("poststart", "poststop"):
            for i, hook in enumerate(getattr(spec.hooks, stage)):
                if not hook.path.startswith("/"):
                    raise SpecError(f"config.json: hooks.{stage}[{i}].path: {hook.path!r} "
                                    "must be absolute")
                if not os.access(hook.path, os.X_OK):
                    raise SpecError(f"config.json: hooks.{stage}[{i}].path: {hook.path}: "
                                    "not an executable file")
    linux = spec.linux
    if linux is None:
        return
    for ns in linux.namespaces:
        if ns.type in ("user", "time"):
            raise UnsupportedError(f"linux.namespaces: {ns.type} namespaces are not supported yet")
        if ns.path and ns.type not in JOINABLE:
            raise UnsupportedError(
                f"linux.namespaces: joining a {ns.type} namespace by path is not supported yet")
    for name in ("intel_rdt", "memory_policy", "time_offsets", "mount_label", "net_devices"):
        if getattr(linux, name, None):
            raise UnsupportedError(f"linux.{_camel(name)}: not supported yet")
    if linux.uid_mappings or linux.gid_mappings:
        raise UnsupportedError("linux.uidMappings: user namespaces are not supported yet")
    res = linux.resources
    if res is not None:
        # limits are applied by the driver (cgroups.resources), which refuses what the
        # host cannot enforce; device rules need the eBPF program, not there yet
        for rule in res.devices or ():
            if rule.allow:
                raise UnsupportedError(
                    "linux.resources.devices: allow rules need the cgroup device "
                    "controller, not supported yet")


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


PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}


def _identity_steps(plan: Plan, linux: oci.Linux | None, proc: oci.Process) -> None:
    """personality, I/O priority and scheduler: per-task settings made before the
    capabilities are dropped (an RT policy needs CAP_SYS_NICE)."""
    pers = linux.personality if linux is not None else None
    if pers is not None:
        if pers.flags:
            raise UnsupportedError("linux.personality.flags: not supported (runc has none)")
        if pers.domain:
            plan.add("personality", ops.personality(PERSONALITIES[pers.domain]),
                     detail=pers.domain)
    io = proc.io_priority
    if io is not None:
        level = io.priority or 0
        if not 0 <= level <= 7:
            raise SpecError(f"config.json: process.ioPriority.priority: {level} not in 0..7")
        plan.add("ioPriority", ops.ioprio(IOPRIO_CLASSES[io.class_] << 13 | level),
                 detail=f"{io.class_} {level}")
    sch = proc.scheduler
    if sch is not None:
        policy = SCHED_POLICIES.get(sch.policy)
        if policy is None:
            raise UnsupportedError(f"process.scheduler.policy: {sch.policy} is not in the "
                                   "Linux kernel")
        flags = 0
        for name in sch.flags:
            flags |= SCHED_FLAGS[name]
        plan.add("scheduler", ops.scheduler(policy, flags, sch.nice or 0, sch.priority or 0,
                                            sch.runtime or 0, sch.deadline or 0,
                                            sch.period or 0), detail=sch.policy)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def build(spec: oci.Spec, *, rootfs: str, bundle: str, cgroup_dir: str, sync_fd: int, fifo_fd: int,
          stdio: tuple[int, int, int], placed_in_cgroup: bool = True) -> Plan:
    """The whole child side as a list of steps. ``rootfs`` is the absolute host path.

    ``placed_in_cgroup``: the clone puts the child in its cgroup (CLONE_INTO_CGROUP);
    when False the child first waits for the parent to do it.
    """
    check_supported(spec)
    assert spec.process is not None and spec.root is not None
    proc = spec.process
    linux = spec.linux or oci.Linux()
    ns_types = {ns.type: ns for ns in linux.namespaces}

    flags = 0
    for t, ns in ns_types.items():
        if not ns.path and t != "cgroup":        # cgroup ns: unshared once inside the cgroup
            flags |= NAMESPACE_FLAGS[t]
    plan = Plan(clone_flags=flags)
    add = plan.add

    add("reset signals", ops.reset_signals())
    add("stdio", ops.stdio(stdio))
    if not placed_in_cgroup:
        add("wait for cgroup", ops.wait_parent(sync_fd))
    for t in JOINABLE:
        ns = ns_types.get(t)
        if ns is not None and ns.path:
            try:
                fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                plan.close()
                raise SpecError(f"config.json: linux.namespaces: {t} path {ns.path}: "
                                f"{e.strerror}") from None
            plan.join_fds.append(fd)
            add("setns", ops.setns(fd, NAMESPACE_FLAGS[t]), detail=f"{t} {ns.path}")
    # nothing of the caller's crosses over: no lock, pidfd, socket or cwd fd of the host
    add("fds", ops.close_fds_except((sync_fd, fifo_fd, *plan.join_fds)))
    cg = ns_types.get("cgroup")
    if cg is not None and not cg.path:
        add("unshare", ops.unshare(s.CLONE_NEWCGROUP), detail="cgroup namespace")
    if proc.oom_score_adj is not None:
        add("oomScoreAdj", ops.write_file(b"/proc/self/oom_score_adj",
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
    _rootfs_steps(plan, spec, linux, rootfs, bundle, cgroup_dir)
    _process_steps(plan, spec, proc)

    add("fds", ops.cloexec_from(3))
    env = {}
    for i, e in enumerate(proc.env):
        key, eq, value = e.partition("=")
        if not eq or not key:
            raise SpecError(f"config.json: process.env[{i}]: {e!r} is not KEY=VALUE")
        env[key.encode()] = value.encode()
    add("exec", ops.find_executable(_candidates(proc.args[0], proc.env)),
        detail=repr(proc.args[0]))
    if linux.seccomp is not None and proc.no_new_privileges:
        # as late as can still report an error at create: after it only the CREATED
        # write, the FIFO read, umask, one sigaction and execve remain (runc's order)
        add("seccomp", ops.seccomp(*compile_filter(linux.seccomp)), detail="load filter")
    add("created", ops.report_created_and_wait(sync_fd, fifo_fd))
    umask = proc.user.umask if proc.user.umask is not None else 0o022
    add("exec", ops.execve(tuple(a.encode() for a in proc.args),
                           tuple(k + b"=" + v for k, v in env.items()), umask),
        detail=repr(proc.args[0]))
    return plan


def _rootfs_steps(plan: Plan, spec: oci.Spec, linux: oci.Linux, rootfs: str,
                  bundle: str, cgroup_dir: str) -> None:
    add = plan.add
    broot = rootfs.encode()
    prop = linux.rootfs_propagation or "rslave"
    if prop not in PROPAGATION:
        raise SpecError(f"config.json: linux.rootfsPropagation: unknown value {prop!r}")
    if PROPAGATION[prop] & s.MS_SHARED:
        raise UnsupportedError("linux.rootfsPropagation: shared is not supported yet")
    add("rootfs propagation", ops.mount(None, b"/", None, PROPAGATION[prop]), detail=prop)
    add("rootfs bind", ops.mount(broot, broot, None, s.MS_BIND | s.MS_REC), detail=rootfs)

    dev_is_tmpfs = False
    for i, m in enumerate(spec.mounts):
        field = f"mounts[{i}]"
        if not m.destination:
            raise SpecError(f"config.json: {field}.destination: required")
        if m.uid_mappings or m.gid_mappings:
            raise UnsupportedError(f"{field}: idmapped mounts are not supported yet")
        dest = m.destination if m.destination.startswith("/") else "/" + m.destination
        target = secure_join(rootfs, dest)
        btarget = target.encode()
        opts = parse_mount_options(m.options or [], field)
        fstype = m.type or ("bind" if opts.is_bind else "")
        if os.path.normpath(dest) == "/dev" and fstype == "tmpfs":
            dev_is_tmpfs = True
        if opts.is_bind or fstype == "bind":
            source = m.source or ""
            if not source.startswith("/"):
                source = os.path.join(bundle, source)  # relative to the bundle
            if not os.path.exists(source):
                raise SpecError(f"config.json: {field}.source: {source}: no such file or directory")
            if os.path.isdir(source):
                add("mkdir", ops.mkdirs(btarget), detail=dest)
            else:
                add("mkfile", ops.make_file(btarget), detail=dest)
            base = s.MS_BIND | (opts.flags & s.MS_REC)
            remount = opts.flags & ~(s.MS_BIND | s.MS_REC)
            add("mount", ops.bind(source.encode(), btarget, base, remount, opts.propagation),
                detail=f"{source} on {dest}")
            continue
        if fstype in ("cgroup", "cgroup2"):
            # The container's own cgroup directory, bound read-only: the view a cgroup2
            # mount gives inside a cgroup namespace. A fresh cgroup2 mount would wait for
            # an RCU grace period (5-20 ms) and rewrite the host hierarchy's root flags.
            add("mkdir", ops.mkdirs(btarget), detail=dest)
            add("mount", ops.bind(
                cgroup_dir.encode(), btarget, s.MS_BIND,
                opts.flags & ~(s.MS_BIND | s.MS_REC) | s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC,
                opts.propagation), detail=f"cgroup on {dest}")
            continue
        if not fstype:
            raise SpecError(f"config.json: {field}.type: required for a non-bind mount")
        add("mkdir", ops.mkdirs(btarget), detail=dest)
        add("mount", ops.mount((m.source or fstype).encode(), btarget, fstype.encode(),
                               opts.flags, opts.data.encode() or None, opts.propagation),
            detail=f"{fstype} on {dest}")

    devdir = os.path.join(rootfs, "dev").encode()
    if dev_is_tmpfs:
        for name, major, minor in DEFAULT_DEVICES:
            add("mknod", ops.make_device(devdir + b"/" + name.encode(), 0o020666,
                                         os.makedev(major, minor), 0, 0),
                detail=f"/dev/{name}")
        for target, name in DEV_SYMLINKS:
            add("symlink", ops.symlink(target, devdir + b"/" + name),
                detail=f"/dev/{name.decode()}")
        if any(os.path.normpath(m.destination) == "/dev/pts" for m in spec.mounts):
            add("symlink", ops.symlink(b"pts/ptmx", devdir + b"/ptmx"), detail="/dev/ptmx")
    for i, d in enumerate(linux.devices):
        field = f"linux.devices[{i}]"
        if not os.path.normpath(d.path).startswith("/dev/"):
            raise SpecError(f"config.json: {field}.path: {d.path!r} is not under /dev")
        kind = DEVICE_TYPES.get(d.type)
        if kind is None:
            raise SpecError(f"config.json: {field}.type: unknown device type {d.type!r}")
        mode = kind | ((d.file_mode if d.file_mode is not None else 0o666) & 0o7777)
        host = secure_join(rootfs, d.path).encode()
        add("mkdir", ops.mkdirs(os.path.dirname(host)), detail=os.path.dirname(d.path))
        add("mknod", ops.make_device(host, mode, os.makedev(d.major or 0, d.minor or 0),
                                     d.uid or 0, d.gid or 0), detail=d.path)

    add("pivot_root", ops.pivot_root(broot), detail=rootfs)
    for key, value in sorted(linux.sysctl.items()):
        add("sysctl", ops.write_file(sysctl_path(key, linux).encode(), value.encode()),
            detail=f"{key}={value}")
    for p in linux.masked_paths:
        add("maskedPaths", ops.mask_path(p.encode()), detail=p)
    for p in linux.readonly_paths:
        add("readonlyPaths", ops.remount_readonly(p.encode(), True), detail=p)
    if spec.root is not None and spec.root.readonly:
        add("root.readonly", ops.remount_readonly(b"/", False), detail="/")


CAP_SYS_RESOURCE = 24


def _check_raisable(num: int, hard: int, field: str, name: str) -> None:
    """A hard limit above ours needs CAP_SYS_RESOURCE; say so before the clone, not as an
    EPERM from the init (these machines' bounding set lacks it, for one)."""
    _, ours = resource.getrlimit(num)
    if ours == resource.RLIM_INFINITY or 0 <= hard <= ours:
        return
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    if not eff >> CAP_SYS_RESOURCE & 1:
        raise UnsupportedError(
            f"{field}: {name} hard limit {hard} is above this process's {ours} and "
            "raising it needs CAP_SYS_RESOURCE, which this process does not have")


IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                         "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                         "kernel.shm_rmid_forced"})


def sysctl_path(key: str, linux: oci.Linux) -> str:
    """/proc/sys path of a sysctl the container may set: only those that belong to a
    namespace the container has of its own (runc's rule); anything else would change
    the host."""
    field = f"config.json: linux.sysctl: {key!r}"
    name = key.replace("/", ".")
    parts = name.split(".")
    if not name or any(p in ("", ".", "..") for p in parts):
        raise SpecError(f"{field}: not a sysctl name")
    own = {ns.type for ns in linux.namespaces if not ns.path}
    if name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
        needed = "ipc"
    elif name.startswith("net."):
        needed = "network"
    elif name == "kernel.domainname":
        needed = "uts"
    elif name == "kernel.hostname":
        raise SpecError(f"{field}: use the hostname field instead")
    else:
        raise UnsupportedError(f"{field}: not in a namespace of the container's own; "
                               "it would change the host")
    if needed not in own:
        raise UnsupportedError(f"{field}: needs a new {needed} namespace; it would change "
                               "the host's")
    return "/proc/sys/" + "/".join(parts)


def _process_steps(plan: Plan, spec: oci.Spec, proc: oci.Process) -> None:
    add = plan.add
    cwd = proc.cwd or "/"
    if not cwd.startswith("/"):
        raise SpecError(f"config.json: process.cwd: {cwd!r} must be an absolute path")
    add("cwd", ops.chdir(cwd.encode()), detail=cwd)

    for i, rl in enumerate(proc.rlimits):
        num = RLIMITS.get(rl.type)
        if num is None:
            raise SpecError(f"config.json: process.rlimits[{i}].type: unknown {rl.type!r}")
        if rl.soft > rl.hard:
            raise SpecError(f"config.json: process.rlimits[{i}]: soft {rl.soft} above hard "
                            f"{rl.hard}")
        _check_raisable(num, rl.hard, f"process.rlimits[{i}]", rl.type)
        add("rlimits", ops.setrlimit(num, rl.soft, rl.hard), detail=rl.type)

    c = proc.capabilities
    all_caps = (1 << (caps.last_cap() + 1)) - 1
    if c is not None:
        bounding = caps.mask(c.bounding, "process.capabilities.bounding") \
            if c.bounding is not None else all_caps
        eff = caps.mask(c.effective, "process.capabilities.effective")
        perm = caps.mask(c.permitted, "process.capabilities.permitted")
        inh = caps.mask(c.inheritable, "process.capabilities.inheritable")
        amb = caps.mask(c.ambient, "process.capabilities.ambient")
        drop = all_caps & ~bounding
    else:  # no capabilities object: the process keeps none (as runc)
        eff = perm = inh = amb = 0
        drop = all_caps
    if drop:
        add("capabilities", ops.capbset_drop(drop), detail="bounding")

    u = proc.user
    change_ids = bool(u.uid or u.gid or u.additional_gids)
    linux = spec.linux
    _identity_steps(plan, linux, proc)
    if linux is not None and linux.seccomp is not None and not proc.no_new_privileges:
        # without no_new_privs seccomp(2) needs CAP_SYS_ADMIN: load before the user and
        # capability ops drop it (runc does the same), so the filter must allow them
        add("seccomp", ops.seccomp(*compile_filter(linux.seccomp)), detail="load filter")
    add("user", ops.set_user(u.uid, u.gid, list(u.additional_gids), change_ids),
        detail=f"{u.uid}:{u.gid}")
    add("capabilities", ops.set_caps(eff, perm, inh, amb),
        detail="effective/permitted/inheritable/ambient")
    if proc.no_new_privileges:
        add("noNewPrivileges", ops.no_new_privs())


def _candidates(arg0: str, env: list[str]) -> tuple[bytes, ...]:
    """Where execvp would look for ``arg0``, with the container's own PATH."""
    if "/" in arg0:
        return (arg0.encode(),)
    path = DEFAULT_PATH
    for e in env:
        if e.startswith("PATH="):
            path = e[5:]
    return tuple(os.path.join(d or ".", arg0).encode() for d in path.split(":"))
