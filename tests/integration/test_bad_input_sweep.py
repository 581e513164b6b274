"""Refused configs through the CLI: one line naming the field, nonzero, no traceback,
nothing left behind (state dir, cgroup, mounts, child processes).

One case per field added with exec, terminals, user/time namespaces, mounts, hooks,
seccomp notify, netDevices, device cgroups and scheduling: each must be refused before
or during setup and leave the machine as it was."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ckhelpers import CLI, assert_one_error_line, run_to_files

Edit = Callable[[dict[str, Any], Path], None]


def _ns(config: dict[str, Any], kind: str, **extra: Any) -> None:
    config["linux"]["namespaces"].append({"type": kind, **extra})


def _userns(config: dict[str, Any], _: Path) -> None:
    _ns(config, "user")
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def _overlapping_uids(config: dict[str, Any], tmp: Path) -> None:
    _userns(config, tmp)
    config["linux"]["uidMappings"].append({"containerID": 10, "hostID": 300000, "size": 5})


def _zero_size_uids(config: dict[str, Any], tmp: Path) -> None:
    _userns(config, tmp)
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 0}]


def _mappings_without_userns(config: dict[str, Any], _: Path) -> None:
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def _time_offsets_no_timens(config: dict[str, Any], _: Path) -> None:
    config["linux"]["timeOffsets"] = {"monotonic": {"secs": 100, "nanosecs": 0}}


def _time_offsets_bad_clock(config: dict[str, Any], _: Path) -> None:
    _ns(config, "time")
    config["linux"]["timeOffsets"] = {"realtime": {"secs": 100, "nanosecs": 0}}


def _mount(destination: str, **fields: Any) -> Edit:
    def edit(config: dict[str, Any], _: Path) -> None:
        config["mounts"].append({"destination": destination, **fields})
    return edit


def _symlink_loop(config: dict[str, Any], tmp: Path) -> None:
    root = tmp / "looproot"
    subprocess.run(["cp", "-a", config["root"]["path"], str(root)], check=True)
    os.symlink("/b", root / "a")
    os.symlink("/a", root / "b")
    config["root"]["path"] = str(root)
    config["mounts"].append({"destination": "/a/x", "type": "tmpfs", "source": "tmpfs"})


def _devices(rule: dict[str, Any]) -> Edit:
    def edit(config: dict[str, Any], _: Path) -> None:
        config["linux"]["resources"]["devices"].append(rule)
    return edit


def _notify_without_listener(config: dict[str, Any], _: Path) -> None:
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}],
    }


def _listener_not_socket(config: dict[str, Any], tmp: Path) -> None:
    _notify_without_listener(config, tmp)
    path = tmp / "not-a-socket"
    path.write_text("")
    config["linux"]["seccomp"]["listenerPath"] = str(path)


def _missing_netdev(config: dict[str, Any], _: Path) -> None:
    config["linux"]["netDevices"] = {f"ckrv{uuid.uuid4().hex[:8]}": {}}


def _hook(stage: str, **fields: Any) -> Edit:
    def edit(config: dict[str, Any], _: Path) -> None:
        config.setdefault("hooks", {})[stage] = [fields]
    return edit


def _memory_policy(**fields: Any) -> Edit:
    def edit(config: dict[str, Any], _: Path) -> None:
        config["linux"]["memoryPolicy"] = fields
    return edit


def _process(**fields: Any) -> Edit:
    def edit(config: dict[str, Any], _: Path) -> None:
        config["process"].update(fields)
    return edit


def _linux(**fields: Any) -> Edit:
    def edit(config: dict[str, Any], _: Path) -> None:
        config["linux"].update(fields)
    return edit


# (name, edit, words the error line must contain)
CASES: list[tuple[str, Edit, tuple[str, ...]]] = [
    ("uid-overlap", _overlapping_uids, ("uidMappings",)),
    ("uid-size-0", _zero_size_uids, ("uidMappings",)),
    ("mappings-no-userns", _mappings_without_userns, ("uidMappings",)),
    ("timeoffsets-no-timens", _time_offsets_no_timens, ("timeOffsets",)),
    ("timeoffsets-realtime", _time_offsets_bad_clock, ("timeOffsets",)),
    ("mount-unknown-option", _mount("/mnt", type="tmpfs", source="tmpfs",
                                    options=["bogusopt"]), ("bogusopt",)),
    ("mount-in-proc", _mount("/proc/sys/kernel", type="tmpfs", source="tmpfs"),
     ("/proc/sys/kernel",)),
    ("mount-missing-bind-source", _mount("/mnt", type="bind", source="/no/such/src",
                                         options=["rbind"]), ("/no/such/src",)),
    ("mount-symlink-loop", _symlink_loop, ("/a/x",)),
    ("device-bad-major", _devices({"allow": True, "type": "c", "major": -5, "minor": 1,
                                   "access": "rw"}), ("devices",)),
    ("device-bad-access", _devices({"allow": True, "type": "c", "major": 1, "minor": 3,
                                    "access": "rwz"}), ("access",)),
    ("device-bad-type", _devices({"allow": True, "type": "x", "major": 1, "minor": 3,
                                  "access": "r"}), ("type",)),
    ("seccomp-notify-no-listener", _notify_without_listener, ("listenerPath",)),
    ("seccomp-listener-not-socket", _listener_not_socket,
     ("listenerPath", "not a unix socket")),
    ("netdev-missing", _missing_netdev, ("netDevices",)),
    ("hook-path-missing", _hook("createRuntime", path="/no/such/hook"), ("/no/such/hook",)),
    ("hook-path-relative", _hook("prestart", path="hook.sh"), ("hook.sh",)),
    ("hook-timeout-zero", _hook("createRuntime", path="/bin/true", timeout=0), ("timeout",)),
    ("hook-fails", _hook("createRuntime", path="/bin/false"), ("createRuntime",)),
    ("hook-times-out", _hook("createRuntime", path="/bin/sleep", args=["sleep", "30"],
                             timeout=1), ("createRuntime",)),
    ("memorypolicy-bad-mode", _memory_policy(mode="MPOL_NOPE", nodes="0"), ("mode",)),
    ("memorypolicy-bad-nodes", _memory_policy(mode="MPOL_BIND", nodes="zz"), ("nodes",)),
    ("apparmor", _process(apparmorProfile="ck-review"), ("apparmorProfile",)),
    ("selinux-label", _process(selinuxLabel="system_u:system_r:ck_t:s0"), ("selinuxLabel",)),
    ("mount-label", _linux(mountLabel="system_u:object_r:ck_t:s0"), ("mountLabel",)),
    ("intel-rdt", _linux(intelRdt={"closID": "ck"}), ("intelRdt", "resctrl")),
    ("exec-cpu-affinity", _process(execCPUAffinity={"initial": "0-zz"}), ("execCPUAffinity",)),
    ("exec-cpu-affinity-offline", _process(execCPUAffinity={"final": "4095"}),
     ("execCPUAffinity",)),
    ("env-not-key-value", _process(env=["PATH=/bin", "NOEQUALS"]), ("process.env[1]",)),
    ("sched-bad-policy", _process(scheduler={"policy": "SCHED_NOPE"}), ("scheduler",)),
    ("io-priority-bad-class", _process(ioPriority={"class": "IOPRIO_CLASS_NOPE",
                                                   "priority": 1}), ("ioPriority",)),
]


def run_cli(state_root: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with stdio to files (a created container would hold a pipe open)."""
    return run_to_files([*CLI, "--root", state_root, *args], tmp / "cli.out",
                        tmp / "cli.err")


@pytest.mark.parametrize("verb", ["create", "run"])
@pytest.mark.parametrize("name,edit,needles", CASES, ids=[c[0] for c in CASES])
def test_refused(verb: str, name: str, edit: Edit, needles: tuple[str, ...],
                 make_bundle: Callable[..., str], state_root: str, tmp_path: Path,
                 leak_check: Callable[[], None]) -> None:
    bundle = make_bundle(["true"], edit=lambda config: edit(config, tmp_path))
    cid = f"review-{name}-{uuid.uuid4().hex[:6]}"
    proc = run_cli(state_root, tmp_path, verb, "-b", bundle, cid)
    assert_one_error_line(proc, *needles)
    leak_check()


def test_console_socket_not_a_socket(make_bundle: Callable[..., str], state_root: str,
                                     tmp_path: Path, leak_check: Callable[[], None]) -> None:
    path = tmp_path / "plain-file"
    path.write_text("")
    bundle = make_bundle(["true"], edit=lambda config: config["process"].update(terminal=True))
    proc = run_cli(state_root, tmp_path, "create", "--console-socket", str(path), "-b", bundle,
                   f"review-console-{uuid.uuid4().hex[:6]}")
    assert_one_error_line(proc, "--console-socket", "not a unix socket")
    leak_check()


def test_preserve_fds_more_than_open(make_bundle: Callable[..., str], state_root: str,
                                     tmp_path: Path, leak_check: Callable[[], None]) -> None:
    bundle = make_bundle(["true"])
    proc = run_cli(state_root, tmp_path, "run", "--preserve-fds", "40", "-b", bundle,
                   f"review-fds-{uuid.uuid4().hex[:6]}")
    assert_one_error_line(proc, "--preserve-fds")
    leak_check()


def test_exec_into_stopped_container(make_bundle: Callable[..., str], state_root: str,
                                     tmp_path: Path, leak_check: Callable[[], None]) -> None:
    cid = f"review-stopped-{uuid.uuid4().hex[:6]}"
    bundle = make_bundle(["true"])
    assert run_cli(state_root, tmp_path, "run", "-d", "-b", bundle, cid).returncode == 0
    # wait for the init to have exited (run -d returns once it is started)
    for _ in range(500):
        state = run_cli(state_root, tmp_path, "state", cid)
        if '"stopped"' in state.stdout:
            break
        subprocess.run(["sleep", "0.02"])
    try:
        proc = run_cli(state_root, tmp_path, "exec", cid, "true")
        assert_one_error_line(proc, cid)
        assert "stopped" in proc.stderr
        proc = run_cli(state_root, tmp_path, "exec", "--console-socket", str(tmp_path / "x"),
                       "-t", cid, "true")
        assert_one_error_line(proc)
    finally:
        run_cli(state_root, tmp_path, "delete", "--force", cid)
    leak_check()


def test_exec_console_socket_not_listening(make_bundle: Callable[..., str], state_root: str,
                                           tmp_path: Path,
                                           leak_check: Callable[[], None]) -> None:
    cid = f"review-execsock-{uuid.uuid4().hex[:6]}"
    bundle = make_bundle(["sh", "-c", "while :; do sleep 0.05; done"])
    assert run_cli(state_root, tmp_path, "run", "-d", "-b", bundle, cid).returncode == 0
    path = str(tmp_path / "unbound.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)   # bound, never listening: connect() is refused
    try:
        proc = run_cli(state_root, tmp_path, "exec", "-t", "--console-socket", path, cid, "true")
        assert_one_error_line(proc, "console")
    finally:
        sock.close()
        run_cli(state_root, tmp_path, "delete", "--force", cid)
    leak_check()
