"""linux.seccomp -> a classic BPF program, compiled in the parent with libseccomp.

The child only hands the finished program to seccomp(2) (ops.seccomp): nothing of
libseccomp runs between clone and execve. Semantics follow runc: syscall names this
libseccomp does not know are skipped, a rule whose action equals the default action is
dropped, conditions on the same argument become separate rules; unknown actions,
architectures and flags are refused.

SCMP_ACT_NOTIFY: the filter is loaded with SECCOMP_FILTER_FLAG_NEW_LISTENER; the init
sends the listener fd to the parent (SCM_RIGHTS on the sync socket, ``SECCOMP``) and
waits; the parent hands it to the agent at ``listenerPath`` with the container process
state (``send_to_listener``), then lets the init go on (``CONTINUE``).
"""

from __future__ import annotations

import _thread
import errno as _errno
import os

from .. import spec as oci
from ..errors import ContainerkitError, SpecError, UnsupportedError, connect_error
from ..syscalls import ffi, lib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .ops import Op
    from .plan import Plan

FIELD = "linux.seccomp"
EPERM = _errno.EPERM

_FIXED_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_COMPARE = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
            "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
          "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32}
FLAG_TSYNC = 1
FLAG_NEW_LISTENER = 8
FLAG_TSYNC_ESRCH = 16
FLAG_WAIT_KILLABLE_RECV = 32
ACT_NOTIFY = 0x7FC00000
_lock = _thread.allocate_lock()     # around every use of libseccomp (compile_filter)


def action(name: str, errno_ret: int | None, field: str) -> int:
    """The libseccomp action value; ERRNO/TRACE carry their number (default EPERM)."""
    if name in _FIXED_ACTIONS:
        return _FIXED_ACTIONS[name]
    if name == "SCMP_ACT_ERRNO":
        return 0x00050000 | ((EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return 0x7FF00000 | ((EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_NOTIFY":
        return ACT_NOTIFY
    raise SpecError(f"config.json: {field}: unknown action {name!r}")


def _arch_token(name: str) -> int:
    short = name.removeprefix("SCMP_ARCH_").lower()
    token = lib.seccomp_arch_resolve_name(short.encode())
    if not token:
        raise UnsupportedError(f"{FIELD}.architectures: {name} is not known to this "
                               "libseccomp")
    return int(token)


def compile_filter(sec: oci.Seccomp) -> tuple[int, bytes]:
    """(seccomp(2) flags, BPF program bytes) for ``sec``; the flags include
    SECCOMP_FILTER_FLAG_NEW_LISTENER when a rule notifies."""
    flags = 0
    for name in sec.flags:
        if name not in _FLAGS:
            raise UnsupportedError(f"{FIELD}.flags: {name} is not supported")
        flags |= _FLAGS[name]
    default = action(sec.default_action, sec.default_errno_ret, f"{FIELD}.defaultAction")
    if default == ACT_NOTIFY:
        raise SpecError(f"config.json: {FIELD}.defaultAction: SCMP_ACT_NOTIFY cannot be the "
                        "default action (the init could not hand over the listener)")
    if any(r.action == "SCMP_ACT_NOTIFY" for r in sec.syscalls):
        if not sec.listener_path:
            raise SpecError(f"config.json: {FIELD}.listenerPath: required by SCMP_ACT_NOTIFY")
        if not sec.listener_path.startswith("/"):
            raise SpecError(f"config.json: {FIELD}.listenerPath: {sec.listener_path!r} must "
                            "be absolute")
        flags |= FLAG_NEW_LISTENER
        if flags & FLAG_TSYNC:          # the kernel takes both only with TSYNC_ESRCH
            flags |= FLAG_TSYNC_ESRCH
    elif flags & FLAG_WAIT_KILLABLE_RECV:
        raise SpecError(f"config.json: {FIELD}.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV "
                        "needs an SCMP_ACT_NOTIFY rule (the kernel refuses it without a "
                        "listener)")
    with _lock:     # libseccomp keeps process-wide state (API level, probes): one at a time
        ctx = lib.seccomp_init(default)
        if ctx == ffi.NULL:
            raise UnsupportedError(f"{FIELD}.defaultAction: libseccomp refused "
                                   f"{sec.default_action}")
        try:
            for arch in sec.architectures:
                rc = lib.seccomp_arch_add(ctx, _arch_token(arch))
                if rc < 0 and rc != -_errno.EEXIST:
                    raise UnsupportedError(f"{FIELD}.architectures: {arch}: "
                                           f"{os.strerror(-rc)}")
            for i, rule in enumerate(sec.syscalls):
                _add_rule(ctx, rule, default, f"{FIELD}.syscalls[{i}]")
            return flags, _export(ctx)
        finally:
            lib.seccomp_release(ctx)


def _add_rule(ctx: object, rule: oci.Syscall, default: int, field: str) -> None:
    act = action(rule.action, rule.errno_ret, f"{field}.action")
    if act == default:
        return                                  # runc: nothing to add
    if act == ACT_NOTIFY:
        for name in _INIT_NEEDS & set(rule.names):
            raise SpecError(f"config.json: {field}: SCMP_ACT_NOTIFY on {name}: the init "
                            "needs it to hand the listener over")
    conditions = []
    for j, arg in enumerate(rule.args):
        op = _COMPARE.get(arg.op)
        if op is None:
            raise SpecError(f"config.json: {field}.args[{j}].op: unknown {arg.op!r}")
        if arg.index > 5:
            raise SpecError(f"config.json: {field}.args[{j}].index: {arg.index} > 5")
        conditions.append((arg.index, op, arg.value, arg.value_two or 0))
    indexes = [c[0] for c in conditions]
    # libseccomp ANDs the conditions of one rule and allows one per argument: repeated
    # argument indexes become one rule per condition (OR), as runc does
    groups = [conditions] if len(set(indexes)) == len(indexes) else [[c] for c in conditions]
    for name in rule.names:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            continue                            # unknown to this kernel/libseccomp: skip
        for group in groups:
            cmp = ffi.new("struct scmp_arg_cmp[]", max(len(group), 1))
            for k, (index, op, a, b) in enumerate(group):
                cmp[k].arg, cmp[k].op, cmp[k].datum_a, cmp[k].datum_b = index, op, a, b
            rc = lib.seccomp_rule_add_array(ctx, act, nr, len(group), cmp)
            if rc < 0:
                raise UnsupportedError(f"{field}: {name}: libseccomp refused the rule: "
                                       f"{os.strerror(-rc)}")


def _export(ctx: object) -> bytes:
    fd = os.memfd_create("containerkit-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise UnsupportedError(f"{FIELD}: libseccomp could not export the filter: "
                                   f"{os.strerror(-rc)}")
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


# what the init calls between loading a notifying filter and the agent having its fd
_INIT_NEEDS = frozenset({"sendmsg"})


def load_op(sec: oci.Seccomp, plan: Plan) -> Op:
    """The op that loads ``sec``; a notifying filter hands its listener over on the
    plan's sync socket (and the plan remembers whom to give it to)."""
    from . import ops

    flags, program = compile_filter(sec)
    if not flags & FLAG_NEW_LISTENER:
        return ops.seccomp(flags, program)
    plan.seccomp_listener = sec
    return ops.seccomp(flags, program, plan.sync_fd)


def container_process_state(sec: oci.Seccomp, state: dict[str, object]) -> bytes:
    """runtime-spec's containerProcessState for the agent at ``listenerPath``."""
    import json

    doc = {"ociVersion": state["ociVersion"], "fds": ["seccompFd"], "pid": state["pid"],
           "metadata": sec.listener_metadata or "", "state": state}
    return json.dumps(doc).encode()


def send_to_listener(sec: oci.Seccomp, state: dict[str, object], fd: int) -> None:
    """Connect to ``listenerPath`` (AF_UNIX, SOCK_STREAM), send the container process
    state with the listener fd (SCM_RIGHTS) in one message, close the connection."""
    import socket

    path = sec.listener_path or ""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
            s.connect(path)
            socket.send_fds(s, [container_process_state(sec, state)], [fd])
    except OSError as e:
        raise ContainerkitError(f"{FIELD}.listenerPath: {path}: "
                                f"{connect_error(path, e)}") from None
