"""The init's root filesystem steps: propagation, the rootfs bind, the spec's mounts,
/dev nodes and links, pivot_root (or MS_MOVE + chroot), sysctls, masked and read-only
paths, a read-only root.

Runs in the container's new mount namespace. Host paths (the rootfs, bind sources) are
the caller's and are taken as given; every container path is only checked and
normalised here (``paths.container_path``) and resolved by the child, inside the
container's root, when it is used (``ops.open_root`` and the ``*_at`` ops), so that a
hostile rootfs's symlinks cannot send anything outside it.
"""

from __future__ import annotations

import posix

from .. import pathnames
from .. import spec as oci
from .. import syscalls as s
from ..errors import SpecError, UnsupportedError
from . import ops
from .mountopts import PROPAGATION, MountOptions, check_bind_data, check_tmpfs_data
from .mountopts import parse as parse_mount_options
from .paths import container_path, split

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import idmap
    from .plan import Plan

# (name, major, minor): the devices every container gets (runtime-spec "Default Devices")
DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                   ("urandom", 1, 9), ("tty", 5, 0))
DEV_SYMLINKS = ((b"/proc/self/fd", b"fd"), (b"/proc/self/fd/0", b"stdin"),
                (b"/proc/self/fd/1", b"stdout"), (b"/proc/self/fd/2", b"stderr"))
DEVICE_TYPES = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}
CGROUP_ATTRS = 0x02 | 0x04 | 0x08       # nosuid, nodev, noexec
# the /proc files a mount may cover (those lxcfs emulates), as runc allows
PROC_FILES = frozenset({"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
                        "/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
                        "/proc/net/dev", "/proc/sys/kernel/ns_last_pid"})


def _proc_kind(dest: str, fstype: str, field: str) -> int:
    """runc's rule for destinations in /proc: a proc mount on /proc itself, or one of the
    files lxcfs emulates; anything else there could hide what masks and read-only paths
    protect. The child also refuses a destination that resolves onto procfs."""
    if dest == "/proc":
        if fstype != "proc":
            raise SpecError(f"config.json: {field}.destination: /proc can only take a mount "
                            f"of type proc (not {fstype!r})")
        return 0
    if dest in PROC_FILES:
        return ops.MNT_ON_PROC
    if dest.startswith("/proc/"):
        raise SpecError(f"config.json: {field}.destination: {dest} is inside /proc")
    return 0


def _options(m: oci.Mount, field: str) -> MountOptions:
    opts = parse_mount_options(m.options or [], field)
    if (m.uid_mappings or m.gid_mappings) and not opts.idmap:
        opts = opts._replace(idmap=True)     # mappings alone ask for an idmapped mount
    return opts


def _bind_source(m: oci.Mount, bundle: str, field: str) -> str:
    source = m.source or ""
    if not source.startswith("/"):
        source = pathnames.join(bundle, source)  # relative to the bundle
    if not pathnames.exists(source):
        raise SpecError(f"config.json: {field}.source: {source}: no such file or directory")
    return source


def _containers_mapping(plan: Plan, spec: oci.Spec,
                        field: str) -> tuple[idmap.Mapping, idmap.Mapping]:
    """An idmap/ridmap mount without mappings of its own takes the container's: the new
    user namespace's (the plan has its maps) linux.uidMappings/gidMappings. Without them
    there is no mapping to use, and the runtime-spec asks for an error."""
    linux = spec.linux
    if plan.id_maps is None or not linux or not linux.uid_mappings \
            or not linux.gid_mappings:
        raise SpecError(f"config.json: {field}: idmap without uidMappings/gidMappings needs "
                        "the container's own: a new user namespace with linux.uidMappings "
                        "and linux.gidMappings")
    from . import idmap

    return (idmap.mapping(linux.uid_mappings, "linux.uidMappings"),
            idmap.mapping(linux.gid_mappings, "linux.gidMappings"))


def open_idmapped_mounts(plan: Plan, spec: oci.Spec, bundle: str) -> None:
    """The idmapped binds, made here before the clone as detached trees (open_tree, then
    mount_setattr with the idmap and the mount's attributes): an init in a user
    namespace of its own could not set an idmap on the host's filesystem. Their fds go
    to ``plan.join_fds`` (kept by the init, closed with the plan) and
    ``plan.mount_trees``; the init attaches them (move_mount)."""
    userns: dict[tuple[idmap.Mapping, idmap.Mapping], int] = {}
    try:
        for i, m in enumerate(spec.mounts):
            field = f"mounts[{i}]"
            opts = _options(m, field)
            if not opts.idmap:
                continue
            if not (opts.bind or m.type == "bind"):
                raise UnsupportedError(f"{field}.options: idmapped mounts are for bind mounts "
                                       f"only (type {m.type!r})")
            from . import idmap  # here: each module on the create path costs ~0.2 ms

            if m.uid_mappings or m.gid_mappings:
                key = (idmap.mapping(m.uid_mappings, f"{field}.uidMappings"),
                       idmap.mapping(m.gid_mappings, f"{field}.gidMappings"))
            else:       # the container's own mapping (the spec's MAY; crun and podman)
                key = _containers_mapping(plan, spec, field)
            if key not in userns:
                userns[key] = idmap.userns_fd(*key, field)
            source = _bind_source(m, bundle, field)
            plan.mount_trees[i] = idmap.idmapped_tree(
                source, opts, userns[key], field, lambda fd: plan.join_fds.append(fd))
    finally:
        for fd in userns.values():
            posix.close(fd)


def rootfs_steps(plan: Plan, spec: oci.Spec, linux: oci.Linux, rootfs: str,
                 bundle: str, cgroup_dir: str, no_pivot: bool = False,
                 before_root: list[ops.Step] | None = None,
                 after_root: list[ops.Step] | None = None) -> None:
    """``before_root``/``after_root``: steps that must run right before/after the root
    changes (the createContainer stop; the terminal, made in the container's devpts)."""
    add = plan.add
    broot = rootfs.encode()
    prop = linux.rootfs_propagation or "rslave"
    if prop not in PROPAGATION:
        raise SpecError(f"config.json: linux.rootfsPropagation: unknown value {prop!r}")
    shared = bool(PROPAGATION[prop] & s.MS_SHARED)
    add("rootfs propagation", ops.mount(None, b"/", None, PROPAGATION[prop]), detail=prop)
    if shared:
        # the rootfs's parent mount must not be shared: the rootfs bind and every mount
        # under it would propagate to the host (and pivot_root refuses a shared parent)
        parent = _mount_point(pathnames.dirname(rootfs.rstrip("/")) or "/")
        add("rootfs parent private", ops.mount(None, parent.encode(), None, s.MS_PRIVATE),
            detail=parent)
    add("rootfs bind", ops.mount(broot, broot, None, s.MS_BIND | s.MS_REC), detail=rootfs)
    add("rootfs", ops.open_root(broot), detail=rootfs)

    in_userns = plan.in_userns
    own_netns = any(ns.type == "network" and not ns.path for ns in linux.namespaces)
    dev_is_tmpfs = False
    for i, m in enumerate(spec.mounts):
        field = f"mounts[{i}]"
        dest = container_path(m.destination, f"{field}.destination")
        opts = _options(m, field)
        fstype = m.type or ("bind" if opts.bind else "")
        if dest == "/dev" and fstype == "tmpfs":
            dev_is_tmpfs = True
        if fstype == "sysfs" and in_userns and not own_netns:
            # sysfs needs a network namespace of the user namespace's own: bind the
            # host's instead, as runc does (with the mount's flags, ro among them)
            fstype, m = "bind", _host_bind(m, "/sys")
            opts = parse_mount_options(["rbind", *(m.options or [])], field)
        if fstype in ("cgroup", "cgroup2") and not cgroup_dir:
            # no cgroup of its own (rootless without delegation): the host's tree,
            # read-only as the spec's options say (runc's rootless fallback)
            fstype, m = "bind", _host_bind(m, "/sys/fs/cgroup")
            opts = parse_mount_options(["rbind", *(m.options or [])], field)
        if opts.remount:
            # the mount already on dest (an earlier entry's) gets these attributes;
            # superblock options would need the filesystem's own remount
            if opts.data or opts.tmpcopyup or opts.idmap:
                raise UnsupportedError(f"{field}.options: remount changes mount attributes "
                                       "only (ro, nosuid, atime...), not "
                                       f"{opts.data or 'tmpcopyup/idmap'!r}")
            add("mount", ops.mount_at(None, dest.encode(), None, None, ops.MNT_REMOUNT,
                                      opts.attrs, opts.propagation), detail=f"remount {dest}")
            continue
        on_proc = _proc_kind(dest, fstype, field)
        if opts.tmpcopyup and fstype != "tmpfs":
            raise SpecError(f"config.json: {field}.options: tmpcopyup is for tmpfs mounts "
                            f"only (type {fstype!r})")
        if opts.bind or fstype == "bind":
            check_bind_data(opts, field)
            source = _bind_source(m, bundle, field)
            kind = on_proc | (ops.MNT_REC if opts.recursive else 0) \
                | (0 if pathnames.isdir(source) else ops.MNT_FILE)
            tree = plan.mount_trees.get(i, -1)
            add("mount", ops.mount_at(source.encode(), dest.encode(), None, None, kind,
                                      (0, 0, 0, 0) if tree >= 0 else opts.attrs,
                                      opts.propagation, tree),
                detail=f"{source} on {dest}")
            continue
        if fstype in ("cgroup", "cgroup2"):
            # The container's own cgroup directory, bound read-only: the view a cgroup2
            # mount gives inside a cgroup namespace. A fresh cgroup2 mount would wait for
            # an RCU grace period (5-20 ms) and rewrite the host hierarchy's root flags.
            attrs = (opts.attrs[0] | CGROUP_ATTRS, opts.attrs[1] & ~CGROUP_ATTRS,
                     opts.attrs[2], opts.attrs[3])
            add("mount", ops.mount_at(cgroup_dir.encode(), dest.encode(), None, None, 0,
                                      attrs, opts.propagation),
                detail=f"cgroup on {dest}")
            continue
        if not fstype:
            raise SpecError(f"config.json: {field}.type: required for a non-bind mount")
        if fstype == "tmpfs":
            check_tmpfs_data(opts.data, field)
        kind = on_proc | (ops.MNT_TMPCOPYUP if opts.tmpcopyup else 0)
        add("mount", ops.mount_at((m.source or fstype).encode(), dest.encode(),
                                  fstype.encode(), opts.data.encode() or None, kind,
                                  opts.attrs, opts.propagation),
            detail=f"{fstype} on {dest}")

    if dev_is_tmpfs:
        for name, major, minor in DEFAULT_DEVICES:
            if in_userns:
                _bind_device(plan, f"/dev/{name}")
                continue
            add("mknod", ops.make_device_at(b"/dev", name.encode(), 0o020666,
                                            posix.makedev(major, minor), 0, 0),
                detail=f"/dev/{name}")
        for target, name in DEV_SYMLINKS:
            add("symlink", ops.symlink_at(target, b"/dev", name),
                detail=f"/dev/{name.decode()}")
        if any(container_path(m.destination, "") == "/dev/pts" for m in spec.mounts):
            add("symlink", ops.symlink_at(b"pts/ptmx", b"/dev", b"ptmx"), detail="/dev/ptmx")
    for i, d in enumerate(linux.devices):
        field = f"linux.devices[{i}]"
        path = container_path(d.path, f"{field}.path")
        if not path.startswith("/dev/"):
            raise SpecError(f"config.json: {field}.path: {d.path!r} is not under /dev")
        kind = DEVICE_TYPES.get(d.type)
        if kind is None:
            raise SpecError(f"config.json: {field}.type: unknown device type {d.type!r}")
        mode = kind | ((d.file_mode if d.file_mode is not None else 0o666) & 0o7777)
        directory, name = split(path)
        if in_userns:
            _bind_device(plan, path, f"config.json: {field}.path")
            continue
        add("mknod", ops.make_device_at(directory.encode(), name.encode(), mode,
                                        posix.makedev(d.major or 0, d.minor or 0),
                                        d.uid or 0, d.gid or 0), detail=path)

    plan.steps += before_root or ()
    if no_pivot:
        add("move root", ops.move_root(broot, _host_proc_sys(rootfs)), detail=rootfs)
    else:
        add("pivot_root", ops.pivot_root(broot), detail=rootfs)
    plan.steps += after_root or ()
    if shared:
        add("root propagation", ops.mount(None, b"/", None, PROPAGATION[prop]), detail=prop)
    for key, value in sorted(linux.sysctl.items()):
        add("sysctl", ops.write_proc(plan.proc_fd(), sysctl_path(key, linux).encode(),
                                     value.encode()),
            detail=f"{key}={value}")
    for i, p in enumerate(linux.masked_paths):
        path = container_path(p, f"linux.maskedPaths[{i}]")
        add("maskedPaths", ops.mask_at(path.encode()), detail=path)
    for i, p in enumerate(linux.readonly_paths):
        path = container_path(p, f"linux.readonlyPaths[{i}]")
        add("readonlyPaths", ops.readonly_at(path.encode(), True), detail=path)
    if spec.root is not None and spec.root.readonly:
        add("root.readonly", ops.readonly_at(b"/", False), detail="/")


def _mountinfo() -> list[tuple[str, str, str]]:
    """(root, mount point, fstype) of this process's mounts; octal escapes decoded."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split(" ")
            out.append((_unescape(fields[3]), _unescape(fields[4]), right.split(" ", 1)[0]))
    return out


def _unescape(text: str) -> str:
    """mountinfo's octal escapes (``\\040``) decoded; by hand: re costs a run ~3 ms."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        digits = text[i + 1:i + 4]
        if text[i] == "\\" and len(digits) == 3 and all(c in "01234567" for c in digits):
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _mount_point(path: str) -> str:
    """The mount point of the mount that holds ``path`` (host side, from mountinfo)."""
    from os.path import realpath  # shared rootfs propagation only (see pathnames.py)

    real = realpath(path)
    points = [point for _, point, _ in _mountinfo() if _under(real, point)]
    return max(points, key=len, default="/")


def _host_proc_sys(rootfs: str) -> tuple[bytes, ...]:
    """The host's full procfs and sysfs mounts outside the rootfs (runc's msMoveRoot
    hides these before the MS_MOVE: a chroot would leave them in the namespace)."""
    from os.path import realpath  # --no-pivot only (see pathnames.py)

    real = realpath(rootfs)
    return tuple(point.encode() for root, point, fstype in _mountinfo()
                 if root == "/" and fstype in ("proc", "sysfs") and not _under(point, real))


def _host_bind(m: oci.Mount, source: str) -> oci.Mount:
    return oci.Mount(m.destination, "bind", source, list(m.options or []))


def _bind_device(plan: Plan, path: str, field: str = "") -> None:
    """In a user namespace mknod is refused: bind the host's node instead (runc does),
    onto a file made inside the root at the same container path."""
    if field and not pathnames.exists(path):
        raise SpecError(f"{field}: {path}: no such device on the host to bind (mknod is "
                        "not allowed in a user namespace)")
    plan.add("mount", ops.mount_at(path.encode(), path.encode(), None, None, ops.MNT_FILE,
                                   (0, 0, 0, 0)), detail=f"{path} (bind)")


IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                         "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                         "kernel.shm_rmid_forced"})


def sysctl_path(key: str, linux: oci.Linux) -> str:
    """The path in /proc (``sys/...``) of a sysctl the container may set: only those
    that belong to a namespace the container has of its own (runc's rule); anything else
    would change the host."""
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
    return "sys/" + "/".join(parts)

