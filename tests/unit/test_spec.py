"""Tests for containerkit.spec: schema validation, exact round-trips, and the default spec."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from containerkit import records
from containerkit import spec as oci
from containerkit.errors import SpecError


def _testdata() -> Path:
    """The spec's own documents: in shared/ beside the checkout (CI), or /work/shared."""
    if "OCI_SPEC_TESTDATA" in os.environ:
        return Path(os.environ["OCI_SPEC_TESTDATA"])
    repo = Path(__file__).resolve().parents[2]
    for shared in (repo.parent / "shared", Path("/work/shared")):
        path = shared / "oci-runtime-spec" / "schema" / "test" / "config"
        if path.is_dir():
            return path
    raise RuntimeError("oci-runtime-spec test documents not found beside the checkout")


TESTDATA = _testdata()
GOOD = sorted((TESTDATA / "good").glob("*.json"))
BAD = sorted((TESTDATA / "bad").glob("*.json"))

needs_testdata = pytest.mark.skipif(not GOOD, reason=f"no OCI schema test documents in {TESTDATA}")

BASE: dict[str, Any] = {"ociVersion": "1.3.0", "root": {"path": "rootfs"}}

DELETE = object()


def with_field(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``base`` (default BASE) with the dotted object path set (or deleted)."""
    doc = copy.deepcopy(BASE if base is None else base)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return doc


def error_of(doc: Any) -> str:
    text = doc if isinstance(doc, str | bytes) else json.dumps(doc)
    with pytest.raises(SpecError) as info:
        oci.loads(text)
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg, msg
    return msg


# ---- the runtime-spec's own test documents ---------------------------------------------------


@needs_testdata
@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_good_documents_load_and_round_trip(path: Path) -> None:
    original = json.loads(path.read_text())
    spec = oci.load(path)
    assert spec.to_dict() == original
    again = oci.loads(spec.to_json())
    assert again == spec
    assert again.to_dict() == original


# The field (or problem) each bad document must be reported with.
BAD_EXPECTED = {
    "freebsd-vnet-disable.json": "freebsd.jail.vnet: 'disable' is not a valid sharing mode",
    "invalid-json.json": "invalid JSON at line 1 column 2: ",
    "linux-hugepage.json": (
        "linux.resources.hugepageLimits[0].pageSize: '64kB' does not match ^[1-9][0-9]*[KMG]B$"
    ),
    "linux-netdevice.json": "linux.netDevices.eth0.name: expected a string, got 23",
    "linux-rdma.json": "linux.resources.rdma.mlx5_1.hcaHandles: expected an integer",
}


@needs_testdata
@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_documents_rejected(path: Path) -> None:
    with pytest.raises(SpecError) as info:
        oci.load(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    expected = BAD_EXPECTED.get(path.name)
    if expected is not None:
        assert msg.startswith(f"{path}: {expected}"), msg


def test_messages_match_the_documented_format() -> None:
    netdev = with_field("linux", {"netDevices": {"eth0": {"name": 23}}})
    assert error_of(netdev) == "config.json: linux.netDevices.eth0.name: expected a string, got 23"
    huge = with_field(
        "linux", {"resources": {"hugepageLimits": [{"limit": 1, "pageSize": "64kB"}]}}
    )
    assert error_of(huge) == (
        "config.json: linux.resources.hugepageLimits[0].pageSize: "
        "'64kB' does not match ^[1-9][0-9]*[KMG]B$"
    )
    assert error_of("{]").startswith("config.json: invalid JSON at line 1 column 2: ")


# ---- our own bad documents -------------------------------------------------------------------

M = {"destination": "/m"}
RL = {"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1}
ARG = {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}

BAD_CASES: list[tuple[str, Any, str]] = [
    # (dotted path to set, value or DELETE, expected message after "config.json: ")
    ("ociVersion", DELETE, "ociVersion: required field is missing"),
    ("ociVersion", 1, "ociVersion: expected a string, got 1"),
    ("root", DELETE, "root: required field is missing"),
    ("root", {}, "root.path: required field is missing"),
    ("root.path", "", "root.path: must not be empty"),
    ("root.path", None, "root.path: expected a string, got null"),
    ("root.readonly", "yes", "root.readonly: expected a boolean, got 'yes'"),
    ("hostname", 5, "hostname: expected a string, got 5"),
    ("domainname", ["a"], "domainname: expected a string, got an array"),
    ("mounts", {}, "mounts: expected an array, got an object"),
    ("mounts", [{"type": "proc"}], "mounts[0].destination: required field is missing"),
    ("mounts", [M, {"source": "x"}], "mounts[1].destination: required field is missing"),
    ("mounts", [{"destination": ""}], "mounts[0].destination: must not be empty"),
    ("mounts", [{**M, "options": "ro"}], "mounts[0].options: expected an array, got 'ro'"),
    ("mounts", [{**M, "options": ["ro", 1]}], "mounts[0].options[1]: expected a string, got 1"),
    (
        "mounts",
        [{**M, "uidMappings": [{"containerID": 0, "hostID": 0, "size": -1}]}],
        "mounts[0].uidMappings[0].size: -1 is out of range for uint32",
    ),
    ("process", {"args": ["sh"]}, "process.cwd: required field is missing"),
    ("process", {"cwd": 1}, "process.cwd: expected a string, got 1"),
    (
        "process",
        {"cwd": "/", "user": {"uid": -1}},
        "process.user.uid: -1 is out of range for uint32",
    ),
    (
        "process",
        {"cwd": "/", "user": {"uid": 4294967296}},
        "process.user.uid: 4294967296 is out of range for uint32 (0..4294967295)",
    ),
    ("process", {"cwd": "/", "user": {"uid": 1.0}}, "process.user.uid: expected an integer"),
    (
        "process",
        {"cwd": "/", "user": {"uid": True}},
        "process.user.uid: expected an integer (uint32), got true",
    ),
    (
        "process",
        {"cwd": "/", "user": {"gid": "0"}},
        "process.user.gid: expected an integer (uint32), got '0'",
    ),
    ("process", {"cwd": "/", "user": {"umask": -18}}, "process.user.umask: -18 is out of range"),
    (
        "process",
        {"cwd": "/", "user": {"additionalGids": [5, -5]}},
        "process.user.additionalGids[1]: -5 is out of range for uint32",
    ),
    ("process", {"cwd": "/", "user": []}, "process.user: expected an object, got an array"),
    ("process", {"cwd": "/", "args": "sh"}, "process.args: expected an array, got 'sh'"),
    ("process", {"cwd": "/", "env": ["A=1", 2]}, "process.env[1]: expected a string, got 2"),
    ("process", {"cwd": "/", "terminal": "true"}, "process.terminal: expected a boolean"),
    ("process", {"cwd": "/", "noNewPrivileges": 1}, "process.noNewPrivileges: expected a boolean"),
    ("process", {"cwd": "/", "oomScoreAdj": "5"}, "process.oomScoreAdj: expected an integer"),
    (
        "process",
        {"cwd": "/", "rlimits": [{**RL, "type": "NOFILE"}]},
        "process.rlimits[0].type: 'NOFILE' does not match ^RLIMIT_[A-Z]+$",
    ),
    (
        "process",
        {"cwd": "/", "rlimits": [{"type": "RLIMIT_CORE", "hard": 1}]},
        "process.rlimits[0].soft: required field is missing",
    ),
    (
        "process",
        {"cwd": "/", "rlimits": [{**RL, "hard": -1}]},
        "process.rlimits[0].hard: -1 is out of range for uint64",
    ),
    (
        "process",
        {"cwd": "/", "consoleSize": {"height": 24}},
        "process.consoleSize.width: required field is missing",
    ),
    (
        "process",
        {"cwd": "/", "capabilities": {"bounding": "CAP_KILL"}},
        "process.capabilities.bounding: expected an array",
    ),
    (
        "process",
        {"cwd": "/", "ioPriority": {"class": "IOPRIO_CLASS_X"}},
        "process.ioPriority.class: 'IOPRIO_CLASS_X' is not a valid I/O priority class",
    ),
    (
        "process",
        {"cwd": "/", "scheduler": {"policy": "SCHED_FOO"}},
        "process.scheduler.policy: 'SCHED_FOO' is not a valid scheduler policy",
    ),
    (
        "process",
        {"cwd": "/", "scheduler": {"nice": 1}},
        "process.scheduler.policy: required field is missing",
    ),
    (
        "process",
        {"cwd": "/", "scheduler": {"policy": "SCHED_OTHER", "nice": 2**31}},
        "process.scheduler.nice: 2147483648 is out of range for int32",
    ),
    (
        "process",
        {"cwd": "/", "scheduler": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_X"]}},
        "process.scheduler.flags[0]: 'SCHED_FLAG_X' is not a valid scheduler flag",
    ),
    (
        "process",
        {"cwd": "/", "execCPUAffinity": {"initial": "a-b"}},
        "process.execCPUAffinity.initial: 'a-b' does not match ^[0-9, -]*$",
    ),
    ("hooks", {"prestart": [{"args": []}]}, "hooks.prestart[0].path: required field is missing"),
    (
        "hooks",
        {"poststop": [{"path": "/bin/true", "timeout": 0}]},
        "hooks.poststop[0].timeout: 0 is out of range",
    ),
    ("hooks", {"poststart": {}}, "hooks.poststart: expected an array, got an object"),
    ("annotations", {"a": 1}, "annotations.a: expected a string, got 1"),
    ("annotations", ["a"], "annotations: expected an object, got an array"),
    ("linux", [], "linux: expected an object, got an array"),
    (
        "linux",
        {"namespaces": [{"type": "pid"}, {"type": "foo"}]},
        "linux.namespaces[1].type: 'foo' is not a valid namespace type (expected one of: mount, ",
    ),
    ("linux", {"namespaces": [{}]}, "linux.namespaces[0].type: required field is missing"),
    (
        "linux",
        {"namespaces": [{"type": "pid"}, {"type": "net"}]},
        "linux.namespaces[1].type: 'net' is not a valid namespace type",
    ),
    (
        "linux",
        {
            "namespaces": [
                {"type": "pid"},
                {"type": "ipc"},
                {"type": "pid", "path": "/proc/1/ns/pid"},
            ]
        },
        "linux.namespaces[2].type: duplicate namespace type 'pid' (already at index 0)",
    ),
    (
        "linux",
        {"namespaces": [{"type": "pid", "path": 1}]},
        "linux.namespaces[0].path: expected a string, got 1",
    ),
    (
        "linux",
        {"rootfsPropagation": "bogus"},
        "linux.rootfsPropagation: 'bogus' is not a valid rootfs propagation",
    ),
    ("linux", {"rootfsPropagation": 1}, "linux.rootfsPropagation: expected a string, got 1"),
    (
        "linux",
        {"uidMappings": [{"containerID": 0, "hostID": -1, "size": 1}]},
        "linux.uidMappings[0].hostID: -1 is out of range for uint32",
    ),
    (
        "linux",
        {"gidMappings": [{"containerID": 0, "hostID": 0}]},
        "linux.gidMappings[0].size: required field is missing",
    ),
    (
        "linux",
        {"devices": [{"type": "x", "path": "/dev/x", "major": 1, "minor": 1}]},
        "linux.devices[0].type: 'x' does not match ^[cbup]$",
    ),
    (
        "linux",
        {"devices": [{"type": "c", "path": "/dev/x", "minor": 1}]},
        "linux.devices[0].major: required for device type 'c'",
    ),
    (
        "linux",
        {"devices": [{"type": "c", "major": 1, "minor": 3}]},
        "linux.devices[0].path: required field is missing",
    ),
    (
        "linux",
        {"devices": [{"type": "c", "path": "/dev/x", "major": 1, "minor": 1, "fileMode": 512}]},
        "linux.devices[0].fileMode: 512 is out of range for a file mode (0..511)",
    ),
    (
        "linux",
        {"resources": {"devices": [{"access": "rwm"}]}},
        "linux.resources.devices[0].allow: required field is missing",
    ),
    (
        "linux",
        {"resources": {"devices": [{"allow": False, "access": "rwx"}]}},
        "linux.resources.devices[0].access: 'rwx' is not a combination of",
    ),
    (
        "linux",
        {"resources": {"devices": [{"allow": True, "type": "z"}]}},
        "linux.resources.devices[0].type: 'z' is not one of",
    ),
    (
        "linux",
        {"resources": {"devices": [{"allow": "no"}]}},
        "linux.resources.devices[0].allow: expected a boolean, got 'no'",
    ),
    (
        "linux",
        {"resources": {"memory": {"limit": "1G"}}},
        "linux.resources.memory.limit: expected an integer (int64), got '1G'",
    ),
    (
        "linux",
        {"resources": {"memory": {"limit": 2**63}}},
        "linux.resources.memory.limit: 9223372036854775808 is out of range for int64",
    ),
    (
        "linux",
        {"resources": {"memory": {"disableOOMKiller": 0}}},
        "linux.resources.memory.disableOOMKiller: expected a boolean, got 0",
    ),
    (
        "linux",
        {"resources": {"cpu": {"shares": -1}}},
        "linux.resources.cpu.shares: -1 is out of range for uint64",
    ),
    ("linux", {"resources": {"cpu": {"cpus": 3}}}, "linux.resources.cpu.cpus: expected a string"),
    ("linux", {"resources": {"pids": {}}}, "linux.resources.pids.limit: required field is missing"),
    (
        "linux",
        {"resources": {"blockIO": {"weight": 70000}}},
        "linux.resources.blockIO.weight: 70000 is out of range for uint16",
    ),
    (
        "linux",
        {"resources": {"blockIO": {"weightDevice": [{"minor": 0, "weight": 1}]}}},
        "linux.resources.blockIO.weightDevice[0].major: required field is missing",
    ),
    (
        "linux",
        {
            "resources": {
                "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": -1}]}
            }
        },
        "linux.resources.blockIO.throttleReadBpsDevice[0].rate: -1 is out of range for uint64",
    ),
    (
        "linux",
        {"resources": {"network": {"priorities": [{"name": "eth0"}]}}},
        "linux.resources.network.priorities[0].priority: required field is missing",
    ),
    (
        "linux",
        {"resources": {"rdma": {"mlx5_1": {"hcaObjects": -1}}}},
        "linux.resources.rdma.mlx5_1.hcaObjects: -1 is out of range for uint32",
    ),
    (
        "linux",
        {"resources": {"unified": {"memory.max": 5}}},
        'linux.resources.unified["memory.max"]: expected a string, got 5',
    ),
    (
        "linux",
        {"sysctl": {"net.ipv4.ip_forward": 1}},
        'linux.sysctl["net.ipv4.ip_forward"]: expected a string, got 1',
    ),
    ("linux", {"seccomp": {}}, "linux.seccomp.defaultAction: required field is missing"),
    (
        "linux",
        {"seccomp": {"defaultAction": "SCMP_ACT_FOO"}},
        "linux.seccomp.defaultAction: 'SCMP_ACT_FOO' is not a valid seccomp action",
    ),
    (
        "linux",
        {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}},
        "linux.seccomp.architectures[0]: 'SCMP_ARCH_Z80' is not a valid seccomp architecture",
    ),
    (
        "linux",
        {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]}},
        "linux.seccomp.flags[0]: 'SECCOMP_FILTER_FLAG_X' is not a valid seccomp flag",
    ),
    (
        "linux",
        {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": -1}},
        "linux.seccomp.defaultErrnoRet: -1 is out of range for uint32",
    ),
    (
        "linux",
        {
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": [], "action": "SCMP_ACT_LOG"}],
            }
        },
        "linux.seccomp.syscalls[0].names: must have at least 1 item(s)",
    ),
    (
        "linux",
        {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]}},
        "linux.seccomp.syscalls[0].action: required field is missing",
    ),
    (
        "linux",
        {
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{**ARG, "op": "SCMP_CMP_FOO"}],
                    }
                ],
            }
        },
        "linux.seccomp.syscalls[0].args[0].op: 'SCMP_CMP_FOO' is not a valid seccomp operator",
    ),
    (
        "linux",
        {
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "op": "SCMP_CMP_EQ"}],
                    }
                ],
            }
        },
        "linux.seccomp.syscalls[0].args[0].value: required field is missing",
    ),
    ("linux", {"netDevices": {"eth0": "eth1"}}, "linux.netDevices.eth0: expected an object"),
    ("linux", {"netDevices": []}, "linux.netDevices: expected an object, got an array"),
    (
        "linux",
        {"timeOffsets": {"monotonic": {"secs": 1, "nanosecs": -1}}},
        "linux.timeOffsets.monotonic.nanosecs: -1 is out of range for uint32",
    ),
    (
        "linux",
        {"personality": {"domain": "LINUX64"}},
        "linux.personality.domain: 'LINUX64' is not a valid personality domain",
    ),
    (
        "linux",
        {"intelRdt": {"memBwSchema": "L3:0=1"}},
        "linux.intelRdt.memBwSchema: 'L3:0=1' does not match ^MB:[^\\n]*$",
    ),
    ("linux", {"intelRdt": {"schemata": "L3:0=1"}}, "linux.intelRdt.schemata: expected an array"),
    (
        "linux",
        {"memoryPolicy": {"mode": "MPOL_X"}},
        "linux.memoryPolicy.mode: 'MPOL_X' is not a valid memory policy mode",
    ),
    (
        "linux",
        {"memoryPolicy": {"flags": ["MPOL_F_X"]}},
        "linux.memoryPolicy.flags[0]: 'MPOL_F_X' is not a valid memory policy flag",
    ),
    ("linux", {"maskedPaths": [1]}, "linux.maskedPaths[0]: expected a string, got 1"),
    ("linux", {"readonlyPaths": "/proc"}, "linux.readonlyPaths: expected an array, got '/proc'"),
    ("linux", {"cgroupsPath": 7}, "linux.cgroupsPath: expected a string, got 7"),
    ("linux", {"mountLabel": False}, "linux.mountLabel: expected a string, got false"),
    # other platforms: simple schema checks still apply
    (
        "freebsd",
        {"jail": {"enforceStatfs": 300}},
        "freebsd.jail.enforceStatfs: 300 is out of range for uint8",
    ),
    (
        "freebsd",
        {"jail": {"host": "disable"}},
        "freebsd.jail.host: 'disable' is not a valid sharing mode",
    ),
    (
        "freebsd",
        {"devices": [{"path": "pf", "mode": 1000}]},
        "freebsd.devices[0].mode: 1000 is out of range",
    ),
    ("windows", {}, "windows.layerFolders: required field is missing"),
    ("windows", {"layerFolders": []}, "windows.layerFolders: must have at least 1 item(s)"),
    ("vm", {}, "vm.kernel: required field is missing"),
    (
        "vm",
        {"kernel": {"path": "/k"}, "image": {"path": "/i", "format": "iso"}},
        "vm.image.format: 'iso' is not a valid image format",
    ),
    (
        "zos",
        {"namespaces": [{"type": "network"}]},
        "zos.namespaces[0].type: 'network' is not a valid z/OS namespace type",
    ),
    ("solaris", {"anet": [{"linkname": 1}]}, "solaris.anet[0].linkname: expected a string"),
]


@pytest.mark.parametrize(("path", "value", "expected"), BAD_CASES)
def test_bad_fields_are_named(path: str, value: Any, expected: str) -> None:
    msg = error_of(with_field(path, value))
    assert msg.startswith("config.json: " + expected), msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[]", "config.json: expected a JSON object at the top level, got an array"),
        ('"x"', "config.json: expected a JSON object at the top level, got 'x'"),
        ("", "config.json: invalid JSON at line 1 column 1: Expecting value"),
        ('{"ociVersion": NaN}', "config.json: invalid JSON: NaN is not a JSON value"),
        (b'{"ociVersion": "\xff"}', "config.json: not valid UTF-8 at byte 16"),
        ("[" * 100000, "config.json: invalid JSON: nested too deeply"),
    ],
)
def test_unparseable_documents(text: str | bytes, expected: str) -> None:
    assert error_of(text) == expected


def test_values_with_newlines_stay_on_one_line() -> None:
    doc = with_field("process", {"cwd": "/", "rlimits": [{**RL, "type": "RLIMIT_\nX"}]})
    assert "'RLIMIT_\\nX' does not match" in error_of(doc)
    key_doc = with_field("annotations", {"a\nb": 1})
    assert error_of(key_doc) == 'config.json: annotations["a\\nb"]: expected a string, got 1'


def test_long_values_are_shortened() -> None:
    msg = error_of(with_field("process", {"cwd": "/", "user": {"uid": "9" * 500}}))
    assert len(msg) < 200


def test_windows_config_needs_no_root() -> None:
    doc = {"ociVersion": "1.3.0", "windows": {"layerFolders": ["C:\\layers\\1"]}}
    spec = oci.loads(json.dumps(doc))
    assert spec.root is None and spec.to_dict() == doc


def test_source_name_and_load_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^bundle/config\.json: hostname: expected a string"):
        oci.loads(json.dumps(with_field("hostname", 1)), source="bundle/config.json")
    missing = tmp_path / "nope" / "config.json"
    with pytest.raises(SpecError) as info:
        oci.load(missing)
    assert str(info.value) == f"{missing}: No such file or directory"
    with pytest.raises(SpecError) as info:
        oci.load(tmp_path)
    assert str(info.value) == f"{tmp_path}: Is a directory"
    good = tmp_path / "config.json"
    good.write_text(json.dumps(BASE))
    assert oci.load(str(good)) == oci.load(good)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(with_field("linux", {"namespaces": [{"type": "foo"}]})))
    with pytest.raises(SpecError, match=rf"^{re.escape(str(bad))}: linux\.namespaces\[0\]\.type"):
        oci.load(bad)


# ---- round-trips and the typed model ----------------------------------------------------------

UNKNOWN_EVERYWHERE: dict[str, Any] = {
    "ociVersion": "1.3.0",
    "x-top": {"nested": [1, 2.5, None, True]},
    "root": {"path": "rootfs", "x-root": 1},
    "process": {
        "cwd": "/",
        "user": {"uid": 1, "gid": 2, "x-user": "u"},
        "capabilities": {"bounding": [], "x-caps": []},
        "rlimits": [{**RL, "x-rl": 0}],
        "scheduler": {"policy": "SCHED_OTHER", "x-sched": 1},
        "x-process": False,
    },
    "mounts": [{"destination": "/m", "x-mount": "m"}],
    "hooks": {"prestart": [{"path": "/h", "x-hook": 1}], "x-hooks": 2},
    "linux": {
        "netDevices": {"eth0": {"name": "e", "x-nd": 1}},
        "resources": {
            "oomScoreAdj": 100,
            "memory": {"limit": 5, "x-mem": 1},
            "devices": [{"allow": False, "x-dev": 1}],
        },
        "seccomp": {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_LOG", "args": [{**ARG, "x": 1}]}],
            "x-seccomp": "s",
        },
        "x-linux": {"a": "b"},
    },
    "freebsd": {"jail": {"x-jail": 1}},
}


def test_unknown_fields_are_kept_and_round_trip() -> None:
    spec = oci.loads(json.dumps(UNKNOWN_EVERYWHERE))
    assert spec.extra == {"x-top": {"nested": [1, 2.5, None, True]}}
    assert spec.root is not None and spec.root.extra == {"x-root": 1}
    assert spec.process is not None and spec.process.user.extra == {"x-user": "u"}
    assert spec.process.extra == {"x-process": False}
    assert spec.mounts[0].extra == {"x-mount": "m"}
    assert spec.hooks is not None and spec.hooks.extra == {"x-hooks": 2}
    assert spec.linux is not None and spec.linux.extra == {"x-linux": {"a": "b"}}
    assert spec.linux.resources is not None
    assert spec.linux.resources.extra == {"oomScoreAdj": 100}
    assert spec.linux.net_devices["eth0"].extra == {"x-nd": 1}
    assert spec.to_dict() == UNKNOWN_EVERYWHERE
    assert oci.loads(spec.to_json()).to_dict() == UNKNOWN_EVERYWHERE


def test_to_dict_is_a_copy() -> None:
    spec = oci.loads(json.dumps(UNKNOWN_EVERYWHERE))
    out = spec.to_dict()
    out["x-top"]["nested"].append("changed")
    out["mounts"][0]["options"] = ["ro"]
    assert spec.to_dict() == UNKNOWN_EVERYWHERE


def test_explicit_empty_and_false_values_round_trip() -> None:
    doc = {
        "ociVersion": "1.0.0",
        "root": {"path": "rootfs", "readonly": False},
        "process": {
            "terminal": False,
            "cwd": "/",
            "user": {"uid": 0, "gid": 0, "additionalGids": []},
            "args": [],
            "env": [],
            "capabilities": {"bounding": [], "ambient": []},
            "rlimits": [],
            "noNewPrivileges": False,
        },
        "mounts": [],
        "hooks": {},
        "annotations": {},
        "linux": {
            "namespaces": [],
            "sysctl": {},
            "resources": {"devices": [], "memory": {"disableOOMKiller": False}},
            "maskedPaths": [],
            "netDevices": {"eth0": {}},
        },
    }
    assert oci.loads(json.dumps(doc)).to_dict() == doc
    # ... and absent fields stay absent.
    minimal = {"ociVersion": "1.0.0", "root": {"path": "rootfs"}, "process": {"cwd": "/"}}
    assert oci.loads(json.dumps(minimal)).to_dict() == minimal


def test_typed_access() -> None:
    doc = with_field(
        "linux",
        {
            "namespaces": [{"type": "pid"}, {"type": "network", "path": "/run/netns/x"}],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 65536}],
            "resources": {
                "devices": [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
                "memory": {"limit": 1 << 30},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
                "rdma": {"mlx5_1": {"hcaHandles": 3}},
            },
            "devices": [{"type": "p", "path": "/dev/fifo"}],
            "rootfsPropagation": "private",
        },
    )
    doc["process"] = {
        "cwd": "/",
        "args": ["sh"],
        "user": {"uid": 4294967295, "gid": 0},
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
    }
    spec = oci.loads(json.dumps(doc))
    linux = spec.linux
    assert linux is not None and linux.resources is not None
    assert linux.namespaces == [oci.Namespace("pid"), oci.Namespace("network", "/run/netns/x")]
    assert linux.namespace("network") == oci.Namespace("network", "/run/netns/x")
    assert linux.namespace("user") is None
    assert linux.uid_mappings == [oci.IDMapping(container_id=0, host_id=1000, size=65536)]
    assert linux.resources.devices == [oci.DeviceCgroup(True, "c", 1, 3, "rw")]
    assert linux.resources.memory == oci.Memory(limit=1 << 30)
    assert linux.resources.hugepage_limits[0].page_size == "2MB"
    assert linux.resources.rdma["mlx5_1"].hca_handles == 3
    assert linux.devices == [oci.Device(type="p", path="/dev/fifo")]
    assert linux.rootfs_propagation == "private"
    assert spec.process is not None
    assert spec.process.user == oci.User(uid=4294967295, gid=0)
    assert spec.process.io_priority == oci.IOPriority(class_="IOPRIO_CLASS_BE", priority=4)
    assert spec.to_dict() == doc


def test_rootfs_propagation_accepts_runc_recursive_values() -> None:
    # Deliberately wider than the schema enum: runc, containerd and CRI-O use the r* forms.
    for value in ("private", "shared", "slave", "unbindable", "rprivate", "rslave", "rshared"):
        spec = oci.loads(json.dumps(with_field("linux", {"rootfsPropagation": value})))
        assert spec.linux is not None and spec.linux.rootfs_propagation == value


def test_python_built_objects_encode_like_runc() -> None:
    # Zero values are left out (Go omitempty), except user.uid/gid which runc always writes.
    spec = oci.Spec(
        oci_version="1.3.0",
        root=oci.Root("rootfs"),
        process=oci.Process(args=["true"], cwd="/"),
        mounts=[oci.Mount("/proc", "proc", "proc")],
        linux=oci.Linux(namespaces=[oci.Namespace("pid")]),
    )
    assert spec.to_dict() == {
        "ociVersion": "1.3.0",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["true"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "pid"}]},
    }
    assert oci.loads(spec.to_json()) == spec


def test_record_behaviour() -> None:
    root = oci.Root("rootfs", True)
    assert root == oci.Root(path="rootfs", readonly=True)
    assert root != oci.Root("rootfs")
    assert root != oci.Root("rootfs", True, extra={"x": 1})
    assert repr(root) == "Root(path='rootfs', readonly=True)"
    assert [f.name for f in records.fields(oci.Root)][-2:] == ["path", "readonly"]
    with pytest.raises(TypeError, match="missing required argument: 'path'"):
        oci.Root()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'pth'"):
        oci.Root(pth="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="at most 2 positional"):
        oci.Root("a", True, 1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values"):
        oci.Root("a", path="b")  # type: ignore[misc]
    # default factories are not shared between instances
    a, b = oci.Mount("/a"), oci.Mount("/b")
    a.options.append("ro")
    assert b.options == []


def test_replace_keeps_round_trip_information() -> None:
    doc = {**BASE, "process": {"cwd": "/", "terminal": False}, "mounts": []}
    spec = oci.loads(json.dumps(doc))
    moved = records.replace(spec, root=oci.Root("/mnt/rootfs", readonly=True))
    assert moved.to_dict() == {**doc, "root": {"path": "/mnt/rootfs", "readonly": True}}


def test_to_json_escapes_like_go() -> None:
    spec = oci.loads(json.dumps(with_field("annotations", {"k": "<a&b> é"})))
    text = spec.to_json()
    assert '"k": "\\u003ca\\u0026b\\u003e é"' in text
    assert oci.loads(text) == spec


def test_loads_process() -> None:
    proc = oci.loads_process('{"cwd": "/", "args": ["ls"], "env": ["A=1"]}')
    assert proc.args == ["ls"] and proc.env == ["A=1"]
    with pytest.raises(SpecError, match=r"^process\.json: user\.uid: -1 is out of range"):
        oci.loads_process('{"cwd": "/", "user": {"uid": -1}}')
    with pytest.raises(SpecError, match=r"^p\.json: cwd: required field is missing"):
        oci.loads_process("{}", source="p.json")


def test_from_dict_prefixes_paths() -> None:
    with pytest.raises(SpecError, match=r"^x\.json: process\.args: expected an array"):
        oci.Process.from_dict({"cwd": "/", "args": 1}, source="x.json", path="process")


# ---- default spec ----------------------------------------------------------------------------

# `runc spec` (runc 1.1.5) output, with terminal false and our ociVersion.
RUNC_DEFAULT: dict[str, Any] = {
    "ociVersion": oci.OCI_VERSION,
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm",
        ],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [
            {"type": "pid"},
            {"type": "network"},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "mount"},
        ],
        "maskedPaths": [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}


def rootless_variant(doc: dict[str, Any]) -> dict[str, Any]:
    """What `runc spec --rootless` changes, applied to a copy of ``doc``."""
    doc = copy.deepcopy(doc)
    linux = doc["linux"]
    del linux["resources"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    for m in doc["mounts"]:
        if m["destination"] == "/dev/pts":
            m["options"].remove("gid=5")
        if m["destination"] == "/sys":
            m.update(
                type="none", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"]
            )
    return doc


def with_cgroupns(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    namespaces = doc["linux"]["namespaces"]
    at = len(namespaces) - (1 if namespaces[-1]["type"] == "user" else 0)
    namespaces.insert(at, {"type": "cgroup"})
    return doc


def test_default_spec_matches_runc_spec() -> None:
    assert oci.default_spec(cgroupns=False).to_dict() == RUNC_DEFAULT
    assert oci.default_spec(cgroupns=True).to_dict() == with_cgroupns(RUNC_DEFAULT)


def test_default_spec_rootless_matches_runc_spec_rootless() -> None:
    rootless = rootless_variant(RUNC_DEFAULT)
    assert oci.default_spec(rootless=True, cgroupns=False).to_dict() == rootless
    with_ns = oci.default_spec(rootless=True, cgroupns=True).to_dict()
    assert with_ns == with_cgroupns(rootless)
    assert [ns["type"] for ns in with_ns["linux"]["namespaces"]][-2:] == ["cgroup", "user"]


def test_default_spec_detects_cgroup_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oci, "_cgroup2_unified", lambda: True)
    assert oci.default_spec().to_dict() == with_cgroupns(RUNC_DEFAULT)
    monkeypatch.setattr(oci, "_cgroup2_unified", lambda: False)
    assert oci.default_spec().to_dict() == RUNC_DEFAULT
    assert oci.default_spec(cgroupns=True).to_dict() == with_cgroupns(RUNC_DEFAULT)


V2_MOUNTINFO = """\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw
"""
V1_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (V2_MOUNTINFO, True),
        (V1_MOUNTINFO, False),  # hybrid: cgroup2 only under /sys/fs/cgroup/unified
        (V1_MOUNTINFO + V2_MOUNTINFO.splitlines(keepends=True)[1], True),  # v2 mounted on top
    ],
)
def test_cgroup2_detection(tmp_path: Path, content: str, expected: bool) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(content)
    assert oci._cgroup2_unified(str(mountinfo)) is expected


def test_cgroup2_detection_falls_back_without_mountinfo(tmp_path: Path) -> None:
    expected = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    assert oci._cgroup2_unified(str(tmp_path / "missing")) is expected


def test_default_spec_json_looks_like_runc() -> None:
    text = oci.default_spec(cgroupns=False).to_json()
    assert text.startswith('{\n\t"ociVersion": "1.3.0",\n\t"process": {\n\t\t"terminal": false,')
    assert text.endswith("\n}")
    assert json.loads(text) == RUNC_DEFAULT


def test_default_spec_loads_back() -> None:
    # `create` parses the spec on every run: this path must stay a plain, cheap loop.
    for rootless in (False, True):
        spec = oci.default_spec(rootless=rootless)
        text = spec.to_json()
        for _ in range(200):
            again = oci.loads(text)
        assert again == spec
        assert again.to_json() == text


def _runc_spec(tmp_path: Path, *args: str) -> dict[str, Any]:
    subprocess.run(["runc", "spec", *args], cwd=tmp_path, check=True, capture_output=True)
    return json.loads((tmp_path / "config.json").read_text())


def _runc_minor() -> str | None:
    if shutil.which("runc") is None:
        return None
    out = subprocess.run(["runc", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"runc version (\d+\.\d+)", out)
    return m.group(1) if m else None


@pytest.mark.skipif(
    _runc_minor() != "1.1", reason="needs runc 1.1.x (newer runc changed its example spec)"
)
@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_equals_installed_runc(tmp_path: Path, rootless: bool) -> None:
    theirs = _runc_spec(tmp_path, *(["--rootless"] if rootless else []))
    theirs["ociVersion"] = oci.OCI_VERSION
    theirs["process"]["terminal"] = False
    assert oci.default_spec(rootless=rootless).to_dict() == theirs
