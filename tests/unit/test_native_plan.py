"""The parent-side pieces of the native driver, without starting containers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from containerkit import spec as oci
from containerkit import syscalls as s
from containerkit.errors import ConfigError, SetupError, SpecError
from containerkit.native import capabilities, sync
from containerkit.native.mountopts import (
    ATTR__ATIME,
    ATTR_NOATIME,
    ATTR_NODEV,
    ATTR_NOEXEC,
    ATTR_NOSUID,
    ATTR_NOSYMFOLLOW,
    ATTR_RDONLY,
    check_bind_data,
    check_tmpfs_data,
    parse,
)
from containerkit.native.ops import OpArray
from containerkit.native.paths import container_path, split
from containerkit.native.plan import build
from containerkit.state import State, StateDir, check_id, write_atomic


def test_container_paths_are_clean_and_absolute() -> None:
    assert container_path("../../x", "f") == "/x"
    assert container_path("dev//pts/", "f") == "/dev/pts"
    assert container_path("/a/../../b", "f") == "/b"
    assert container_path("/", "f") == "/"
    assert split("/dev/null") == ("/dev", "null")
    assert split("/x") == ("/", "x")
    with pytest.raises(SpecError, match="mounts.0..destination: must not be empty"):
        container_path("", "mounts[0].destination")


def test_mount_options() -> None:
    o = parse(["nosuid", "noexec", "nodev", "relatime", "ro", "mode=755", "size=65536k"], "m")
    set_, clr, rset, rclr = o.attrs
    assert set_ == ATTR_NOSUID | ATTR_NOEXEC | ATTR_NODEV | ATTR_RDONLY
    assert clr == ATTR__ATIME and rset == rclr == 0
    assert o.data == "mode=755,size=65536k"
    o = parse(["rbind", "rprivate"], "m")
    assert o.bind and o.recursive and o.propagation == (s.MS_PRIVATE | s.MS_REC,)
    assert parse(["ro", "rw"], "m").attrs == (0, ATTR_RDONLY, 0, 0)
    assert parse(["rro", "rnoatime", "nosymfollow"], "m").attrs == (
        ATTR_NOSYMFOLLOW, 0, ATTR_RDONLY | ATTR_NOATIME, ATTR__ATIME)
    assert parse(["strictatime", "norelatime"], "m").attrs == (0, ATTR__ATIME, 0, 0)
    assert parse(["ridmap", "tmpcopyup"], "m")[5:8] == (True, True, True)
    assert parse(["defaults", "silent", "loud", "acl"], "m").data == "acl"
    with pytest.raises(SpecError, match=r"mounts\[2\].options: unknown mount option 'foo'"):
        check_bind_data(parse(["bind", "foo"], "mounts[2]"), "mounts[2]")
    with pytest.raises(SpecError, match=r"m.options: 'size=lots': not a valid tmpfs size"):
        check_tmpfs_data("mode=755,size=lots", "m")
    check_tmpfs_data("mode=1777,size=50%,nr_inodes=10k,uid=0", "m")


def test_capability_masks() -> None:
    assert capabilities.mask(["CAP_KILL", "CAP_AUDIT_WRITE"], "f") == (1 << 5) | (1 << 29)
    with pytest.raises(SpecError, match="unknown capability 'CAP_NOPE'"):
        capabilities.mask(["CAP_NOPE"], "process.capabilities.bounding")
    assert capabilities.numbers(0b1010) == [1, 3]


def test_ids() -> None:
    assert check_id("abc-1.2_3+x") == "abc-1.2_3+x"
    for bad in ("", ".", "..", "a/b", "../a", "-a", "a b", "x" * 1025):
        with pytest.raises(ConfigError):
            check_id(bad)


def test_state_dir_roundtrip_and_lock(tmp_path: Path) -> None:
    sd = StateDir(str(tmp_path / "root"), "c1")
    sd.make()
    with pytest.raises(Exception, match="already exists"):
        StateDir(str(tmp_path / "root"), "c1").make()
    st = State(id="c1", bundle="/b", status="created", pid=42, start_time=7)
    with sd:
        sd.save(st)
    assert sd.load() == st
    assert st.to_oci()["pid"] == 42 and "pid" not in st.to_oci("stopped")
    sd.remove()
    assert not os.path.exists(sd.path)


def test_write_atomic_leaves_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "f"
    write_atomic(str(p), b"one")
    write_atomic(str(p), b"two")
    assert p.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f"]


def test_sync_error_message_names_step_and_path() -> None:
    msg = sync.encode_error("mount", 2, "proc on /proc")
    with pytest.raises(SetupError, match=r"container init: mount proc on /proc: No such file"):
        sync.raise_if_error(msg)
    sync.raise_if_error(sync.CREATED)


def _plan_names(spec: oci.Spec, rootfs: str, placed_in_cgroup: bool = True) -> list[str]:
    plan = build(spec, rootfs=rootfs, bundle=rootfs, cgroup_dir="/sys/fs/cgroup/x",
                 sync_fd=10, fifo_fd=11, stdio=(0, 1, 2), placed_in_cgroup=placed_in_cgroup)
    plan.close()
    return [step[0] for step in plan.steps]


def test_plan_order_follows_runc(tmp_path: Path) -> None:
    spec = oci.default_spec(cgroupns=True)
    assert spec.process is not None
    spec.process.args = ["/bin/true"]
    names = _plan_names(spec, str(tmp_path))
    order = ["reset signals", "stdio", "unshare", "setsid", "fds", "unshare", "sethostname",
             "loopback", "rootfs propagation", "rootfs bind", "mount", "mknod", "pivot_root",
             "maskedPaths", "readonlyPaths", "root.readonly", "cwd", "rlimits",
             "capabilities", "user", "noNewPrivileges", "exec", "created"]
    at = -1
    for n in order:       # each in turn, after the one before (unshare: network, cgroup)
        assert n in names[at + 1:], (n, names)
        at = names.index(n, at + 1)
    assert names[-1] == "exec" and names[-2] == "created"


def test_no_pivot_moves_the_root_and_hides_the_hosts_proc_and_sys(tmp_path: Path) -> None:
    spec = oci.default_spec(cgroupns=True)
    plan = build(spec, rootfs=str(tmp_path), bundle=str(tmp_path), cgroup_dir="/x",
                 sync_fd=10, fifo_fd=11, stdio=(0, 1, 2), no_pivot=True)
    names = [step.name for step in plan.steps]
    assert "pivot_root" not in names
    move = plan.steps[names.index("move root")]
    assert b"/proc" in (move.args.argv or ()) and b"/sys" in (move.args.argv or ())


def test_mountinfo_helpers() -> None:
    from containerkit.native import rootfs

    assert rootfs._unescape(r"/a\040b\011c") == "/a b\tc"
    assert rootfs._under("/a/b", "/a") and rootfs._under("/a", "/") and \
        not rootfs._under("/ab", "/a")
    assert rootfs._mount_point("/proc/self") == "/proc"
    assert b"/proc" in rootfs._host_proc_sys("/nonexistent-rootfs")
    assert b"/proc" not in rootfs._host_proc_sys("/")


def test_plan_clone_flags(tmp_path: Path) -> None:
    spec = oci.default_spec(cgroupns=True)
    plan = build(spec, rootfs=str(tmp_path), bundle=str(tmp_path), cgroup_dir="/sys/fs/cgroup/x",
                 sync_fd=10, fifo_fd=11, stdio=(0, 1, 2))
    # the cgroup namespace is unshared by the child once inside its cgroup, not at clone;
    # the network namespace by the child too (it is the one that costs the clone)
    assert plan.clone_flags == (s.CLONE_NEWPID | s.CLONE_NEWIPC | s.CLONE_NEWUTS
                                | s.CLONE_NEWNS)
    unshares = [(step.detail, step.args.i) for step in plan.steps if step.name == "unshare"]
    assert unshares[0] == ("network namespace", (s.CLONE_NEWNET,)), unshares


def test_plan_refuses_hostname_without_uts(tmp_path: Path) -> None:
    spec = oci.default_spec(cgroupns=False)
    assert spec.linux is not None
    spec.linux.namespaces = [n for n in spec.linux.namespaces if n.type != "uts"]
    with pytest.raises(SpecError, match="hostname: needs a new uts namespace"):
        _plan_names(spec, str(tmp_path))


def test_plan_waits_for_the_cgroup_only_without_clone_into_cgroup(tmp_path: Path) -> None:
    spec = oci.default_spec(cgroupns=True)
    assert "wait for cgroup" not in _plan_names(spec, str(tmp_path))
    names = _plan_names(spec, str(tmp_path), placed_in_cgroup=False)
    # before anything that depends on the cgroup (the cgroup namespace is unshared later)
    assert names[:7] == ["reset signals", "stdio", "wait for cgroup", "reexec", "unshare", "setsid",
                         "fds"]


def test_op_array_lays_out_every_step(tmp_path: Path) -> None:
    spec = oci.default_spec(cgroupns=False)
    assert spec.process is not None
    spec.process.args = ["sh", "-c", "true"]
    spec.process.env = ["PATH=/bin:/usr/bin", "A=1", "A=2"]
    # RLIMIT_CORE: unlimited here, so infinity needs no CAP_SYS_RESOURCE to set
    spec.process.rlimits = [oci.Rlimit(type="RLIMIT_CORE", hard=2**64 - 1, soft=1024)]
    plan = build(spec, rootfs=str(tmp_path), bundle=str(tmp_path), cgroup_dir="/x",
                 sync_fd=10, fifo_fd=11, stdio=(0, 1, 2))
    array = OpArray(plan.steps)
    ops = array.ops
    assert len(ops) == len(plan.steps)
    for op, step in zip(ops, plan.steps, strict=True):
        assert (op.code, s.ffi.string(op.name).decode()) == (step.code, step.name)
        assert s.ffi.string(op.detail).decode() == step.detail

    def strv(p: object) -> list[bytes]:
        out = []
        while p[len(out)] != s.ffi.NULL:  # type: ignore[index]
            out.append(s.ffi.string(p[len(out)]))  # type: ignore[index]
        return out

    lookup, created, execve = ops[len(ops) - 3], ops[len(ops) - 2], ops[len(ops) - 1]
    assert strv(lookup.argv) == [b"/bin/sh", b"/usr/bin/sh"]      # the container's PATH
    assert list(created.i)[:2] == [10, 11]
    assert strv(execve.argv) == [b"sh", b"-c", b"true"]
    assert strv(execve.envp) == [b"PATH=/bin:/usr/bin", b"A=2"]   # last one wins
    rlimit = next(op for op in ops if op.code == s.lib.CK_OP_RLIMIT)
    assert list(rlimit.i)[1:3] == [1024, -1]                      # RLIM_INFINITY
    keep = next(op for op in ops if op.code == s.lib.CK_OP_CLOSE_FDS)
    proc = plan.join_fds[0]     # the host's /proc, for sysctls (ops.write_proc)
    assert [keep.ids[k] for k in range(keep.nids)] == sorted([10, 11, proc])
    reexec = next(op for op in ops if op.code == s.lib.CK_OP_REEXEC)
    assert reexec.i[0] == plan.image_fd     # ck-init's sealed memfd: closed by its execve
    assert [reexec.ids[k] for k in range(reexec.nids)] == sorted([10, 11, proc])


def test_op_array_refuses_nul_bytes(tmp_path: Path) -> None:
    spec = oci.default_spec(cgroupns=False)
    spec.hostname = "a\0b"
    plan = build(spec, rootfs=str(tmp_path), bundle=str(tmp_path), cgroup_dir="/x",
                 sync_fd=10, fifo_fd=11, stdio=(0, 1, 2))
    with pytest.raises(SpecError, match="sethostname .*NUL byte"):
        OpArray(plan.steps)


def test_hook_stages_sit_where_runc_runs_them(tmp_path: Path) -> None:
    spec = oci.default_spec(cgroupns=True)
    assert spec.process is not None
    spec.process.args = ["/bin/true"]
    spec.hooks = oci.Hooks(create_runtime=[oci.Hook(path="/bin/true")],
                           create_container=[oci.Hook(path="/in/ns", timeout=3)],
                           start_container=[oci.Hook(path="/in/root", args=["a", "b"])])
    plan = build(spec, rootfs=str(tmp_path), bundle=str(tmp_path), cgroup_dir="/x",
                 sync_fd=10, fifo_fd=11, stdio=(0, 1, 2))
    try:
        names = [step.name for step in plan.steps]
        assert plan.hook_sync and set(plan.state_fds) == {"creating", "created"}
        stop, cc, pivot = (names.index(n) for n in ("hooks", "hooks.createContainer[0]",
                                                     "pivot_root"))
        assert stop + 1 == cc and cc + 1 == pivot
        assert names[-3:] == ["created", "hooks.startContainer[0]", "exec"]
        cc_args = plan.steps[cc].args
        assert cc_args.s == (b"/in/ns", str(tmp_path).encode())      # cwd: the rootfs
        assert cc_args.i == (plan.state_fds["creating"], 3000, -1)
        sc_args = plan.steps[-2].args
        assert sc_args.s == (b"/in/root", None) and sc_args.argv == (b"a", b"b")
        assert sc_args.i == (plan.state_fds["created"], 0, 11)       # errors also in the FIFO
        keep = plan.steps[names.index("fds")].args.ids
        assert set(plan.state_fds.values()) <= set(keep)
    finally:
        plan.close()
    assert plan.state_fds == {}


def test_notify_filter_hands_its_listener_to_the_sync_socket(tmp_path: Path) -> None:
    spec = oci.default_spec(cgroupns=True)
    assert spec.linux is not None
    spec.linux.seccomp = oci.Seccomp(
        default_action="SCMP_ACT_ALLOW", listener_path="/run/agent.sock",
        syscalls=[oci.Syscall(names=["mkdir"], action="SCMP_ACT_NOTIFY")])
    plan = build(spec, rootfs=str(tmp_path), bundle=str(tmp_path), cgroup_dir="/x",
                 sync_fd=10, fifo_fd=11, stdio=(0, 1, 2))
    plan.close()
    step = next(st for st in plan.steps if st.name == "seccomp")
    assert step.args.i[0] & 8 and step.args.i[1] == 10        # NEW_LISTENER, to the sync fd
    assert plan.seccomp_listener is spec.linux.seccomp and not plan.hook_sync


def test_exec_plan_joins_the_containers_session_keyring() -> None:
    """runc's setns init: join "_ses.<id>" (no permission change: the init set them),
    after the namespaces and setsid; a container made with --no-new-keyring: nothing."""
    from containerkit.native.exec_plan import build_exec

    spec = oci.default_spec(cgroupns=True)
    assert spec.process is not None
    kwargs: dict[str, Any] = {"init_pidfd": 20, "ns_flags": s.CLONE_NEWNS | s.CLONE_NEWNET,
                              "sync_fd": 10, "stdio": (0, 1, 2)}
    plan = build_exec(spec, spec.process, keyring="_ses.abc", **kwargs)
    names = [step.name for step in plan.steps]
    at = names.index("keyring")
    assert plan.steps[at].detail == "_ses.abc"
    assert plan.steps[at].args.s == (b"_ses.abc",) and plan.steps[at].args.i == (0,)
    assert names.index("setns") < names.index("setsid") < at < names.index("exec")
    plan = build_exec(spec, spec.process, keyring=None, **kwargs)
    assert "keyring" not in [step.name for step in plan.steps]


def test_rlimit_table_is_the_kernels() -> None:
    """identity.RLIMITS (written out, not read from the resource module) says what
    Python's resource module says, plus RLIMIT_LOCKS (runc knows it; Python does not)."""
    import resource

    from containerkit.native.identity import RLIMITS

    ours = {n: v for n, v in RLIMITS.items() if n != "RLIMIT_LOCKS"}
    assert ours == {n: getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_")}
    assert RLIMITS["RLIMIT_LOCKS"] == 10
    assert s.getrlimit(resource.RLIMIT_NOFILE) == tuple(
        v if v >= 0 else s.RLIM_INFINITY for v in resource.getrlimit(resource.RLIMIT_NOFILE))
    assert s.getrlimit(resource.RLIMIT_CORE)[1] in (s.RLIM_INFINITY,
                                                    resource.getrlimit(resource.RLIMIT_CORE)[1])


def test_every_known_mount_option_is_parsed_not_passed_on() -> None:
    """mountopts.known() (what features lists from) holds only options parse() gives a
    meaning itself: none of them, the filesystem parameters aside, ends in ``data``."""
    from containerkit.native import mountopts

    for opt in set(mountopts.known()) - mountopts.SUPERBLOCK:
        assert mountopts.parse([opt], "mounts[0].options").data == "", opt
