"""The init's root filesystem steps: propagation, the rootfs bind, the spec's mounts,
/dev nodes and links, pivot_root, sysctls, masked and read-only paths, a read-only root.

Runs in the container's new mount namespace; every host path is resolved here, in the
parent (``paths.secure_join``).
"""

from __future__ import annotations

import os

from .. import spec as oci
from .. import syscalls as s
from ..errors import SpecError, UnsupportedError
from . import ops
from .mountopts import PROPAGATION
from .mountopts import parse as parse_mount_options
from .paths import secure_join

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .plan import Plan

# (name, major, minor): the devices every container gets (runtime-spec "Default Devices")
DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                   ("urandom", 1, 9), ("tty", 5, 0))
DEV_SYMLINKS = ((b"/proc/self/fd", b"fd"), (b"/proc/self/fd/0", b"stdin"),
                (b"/proc/self/fd/1", b"stdout"), (b"/proc/self/fd/2", b"stderr"))
DEVICE_TYPES = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}


def rootfs_steps(plan: Plan, spec: oci.Spec, linux: oci.Linux, rootfs: str,
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

    in_userns = plan.id_maps is not None
    own_netns = any(ns.type == "network" and not ns.path for ns in linux.namespaces)
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
            node = devdir + b"/" + name.encode()
            if in_userns:
                _bind_device(plan, f"/dev/{name}", node)
                continue
            add("mknod", ops.make_device(node, 0o020666, os.makedev(major, minor), 0, 0),
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
        if in_userns:
            _bind_device(plan, d.path, host, f"config.json: {field}.path")
            continue
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


def _host_bind(m: oci.Mount, source: str) -> oci.Mount:
    return oci.Mount(m.destination, "bind", source, list(m.options or []))


def _bind_device(plan: Plan, path: str, node: bytes, field: str = "") -> None:
    """In a user namespace mknod is refused: bind the host's node instead (runc does)."""
    if field and not os.path.exists(path):
        raise SpecError(f"{field}: {path}: no such device on the host to bind (mknod is "
                        "not allowed in a user namespace)")
    plan.add("mkfile", ops.make_file(node), detail=path)
    plan.add("mount", ops.bind(path.encode(), node, s.MS_BIND), detail=f"{path} (bind)")


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

