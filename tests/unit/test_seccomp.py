"""linux.seccomp compiled to BPF in the parent (libseccomp), without loading it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from containerkit import spec as oci
from containerkit.errors import SpecError
from containerkit.native.seccomp import action, compile_filter


def _sec(**doc: Any) -> oci.Seccomp:
    spec = oci.loads(json.dumps({"ociVersion": "1.3.0", "root": {"path": "r"},
                                 "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                                                       **doc}}}))
    assert spec.linux is not None and spec.linux.seccomp is not None
    return spec.linux.seccomp


def test_program_is_bpf_and_grows_with_rules() -> None:
    flags, empty = compile_filter(_sec())
    _, one = compile_filter(_sec(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]))
    assert flags == 0
    assert len(empty) % 8 == 0 and len(one) % 8 == 0 and len(one) > len(empty)


def test_unknown_syscalls_and_default_action_rules_add_nothing() -> None:
    _, base = compile_filter(_sec())
    _, same = compile_filter(_sec(syscalls=[
        {"names": ["no_such_syscall"], "action": "SCMP_ACT_KILL"},
        {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}]))
    assert same == base


def test_repeated_argument_index_becomes_separate_rules() -> None:
    args = [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]
    _, prog = compile_filter(_sec(syscalls=[{"names": ["personality"],
                                             "action": "SCMP_ACT_ERRNO", "args": args}]))
    assert len(prog) > len(compile_filter(_sec())[1])


def test_flags_and_actions() -> None:
    flags, _ = compile_filter(_sec(flags=["SECCOMP_FILTER_FLAG_LOG",
                                          "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]))
    assert flags == 2 | 4
    assert action("SCMP_ACT_ERRNO", None, "f") == 0x00050001      # EPERM by default
    assert action("SCMP_ACT_ERRNO", 38, "f") == 0x00050026
    assert action("SCMP_ACT_KILL_PROCESS", None, "f") == 0x80000000
    with pytest.raises(SpecError, match="f: unknown action 'SCMP_ACT_NOPE'"):
        action("SCMP_ACT_NOPE", None, "f")
    assert action("SCMP_ACT_NOTIFY", None, "f") == 0x7FC00000


def test_notify_flags_and_refusals() -> None:
    notify = [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    flags, _ = compile_filter(_sec(syscalls=notify, listenerPath="/run/agent.sock",
                                   flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                                          "SECCOMP_FILTER_FLAG_TSYNC"]))
    assert flags == 8 | 32 | 1 | 16          # NEW_LISTENER, WAIT_KILLABLE_RECV, TSYNC(_ESRCH)
    flags, _ = compile_filter(_sec(listenerPath="/run/agent.sock"))   # no notify: ignored
    assert flags == 0
    with pytest.raises(SpecError, match="listenerPath: required by SCMP_ACT_NOTIFY"):
        compile_filter(_sec(syscalls=notify))
    with pytest.raises(SpecError, match="listenerPath: 'rel.sock' must be absolute"):
        compile_filter(_sec(syscalls=notify, listenerPath="rel.sock"))
    with pytest.raises(SpecError, match="WAIT_KILLABLE_RECV needs an SCMP_ACT_NOTIFY"):
        compile_filter(_sec(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]))
    with pytest.raises(SpecError, match="defaultAction: SCMP_ACT_NOTIFY cannot be"):
        compile_filter(_sec(defaultAction="SCMP_ACT_NOTIFY", listenerPath="/x"))
    with pytest.raises(SpecError, match=r"syscalls\[0\]: SCMP_ACT_NOTIFY on sendmsg"):
        compile_filter(_sec(syscalls=[{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}],
                            listenerPath="/x"))
