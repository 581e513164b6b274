"""linux.seccomp -> a classic BPF program, compiled in the parent with libseccomp.

The child only hands the finished program to seccomp(2) (ops.seccomp): nothing of
libseccomp runs between clone and execve. Semantics follow runc: syscall names this
libseccomp does not know are skipped, a rule whose action equals the default action is
dropped, conditions on the same argument become separate rules; unknown actions,
architectures and flags are refused.
"""

from __future__ import annotations

import errno as _errno
import os

from .. import spec as oci
from ..errors import SpecError, UnsupportedError
from ..syscalls import ffi, lib

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
          "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}


def action(name: str, errno_ret: int | None, field: str) -> int:
    """The libseccomp action value; ERRNO/TRACE carry their number (default EPERM)."""
    if name in _FIXED_ACTIONS:
        return _FIXED_ACTIONS[name]
    if name == "SCMP_ACT_ERRNO":
        return 0x00050000 | ((EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return 0x7FF00000 | ((EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_NOTIFY":
        raise UnsupportedError(f"{field}: SCMP_ACT_NOTIFY needs a seccomp listener, not "
                               "supported yet")
    raise SpecError(f"config.json: {field}: unknown action {name!r}")


def _arch_token(name: str) -> int:
    short = name.removeprefix("SCMP_ARCH_").lower()
    token = lib.seccomp_arch_resolve_name(short.encode())
    if not token:
        raise UnsupportedError(f"{FIELD}.architectures: {name} is not known to this "
                               "libseccomp")
    return int(token)


def compile_filter(sec: oci.Seccomp) -> tuple[int, bytes]:
    """(seccomp(2) flags, BPF program bytes) for ``sec``."""
    if sec.listener_path:
        raise UnsupportedError(f"{FIELD}.listenerPath: seccomp notify listeners are not "
                               "supported yet")
    flags = 0
    for name in sec.flags:
        if name not in _FLAGS:
            raise UnsupportedError(f"{FIELD}.flags: {name} is not supported")
        flags |= _FLAGS[name]
    default = action(sec.default_action, sec.default_errno_ret, f"{FIELD}.defaultAction")
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise UnsupportedError(f"{FIELD}.defaultAction: libseccomp refused "
                               f"{sec.default_action}")
    try:
        for arch in sec.architectures:
            rc = lib.seccomp_arch_add(ctx, _arch_token(arch))
            if rc < 0 and rc != -_errno.EEXIST:
                raise UnsupportedError(f"{FIELD}.architectures: {arch}: {os.strerror(-rc)}")
        for i, rule in enumerate(sec.syscalls):
            _add_rule(ctx, rule, default, f"{FIELD}.syscalls[{i}]")
        return flags, _export(ctx)
    finally:
        lib.seccomp_release(ctx)


def _add_rule(ctx: object, rule: oci.Syscall, default: int, field: str) -> None:
    act = action(rule.action, rule.errno_ret, f"{field}.action")
    if act == default:
        return                                  # runc: nothing to add
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
