"""``containerkit features``: valid against the spec's features schema, and truthful: every
listed item is held against the planner and against real containers."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ckhelpers import CLI, run_container

from containerkit import NativeDriver, load_container  # noqa: F401 - public API in use
from containerkit.errors import SpecError, UnsupportedError
from containerkit.features import features

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]



def _schema_dir() -> Path | None:
    repo = Path(__file__).resolve().parents[2]
    for shared in (repo.parent / "shared", Path("/work/shared")):
        path = shared / "oci-runtime-spec" / "schema"
        if (path / "features-schema.json").is_file():
            return path
    return None


def _run(make_bundle: Callable[..., str], state_root: str, args: list[str],
         edit: Callable[[dict[str, Any]], None]) -> tuple[int, str]:
    """Run a container to its end with the library; (exit status, its output)."""
    bundle = make_bundle(args, edit)
    return run_container(bundle, state_root, f"feat-{os.path.basename(bundle)}-{os.getpid()}")


def test_cli_prints_the_document() -> None:
    proc = subprocess.run([*CLI, "features"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == features()


def test_valid_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from referencing.jsonschema import DRAFT4

    schema_dir = _schema_dir()
    if schema_dir is None:
        pytest.skip("the OCI runtime-spec schemas are not beside the checkout")
    resources = []
    for path in schema_dir.glob("*.json"):
        doc = json.loads(path.read_text())
        resources.append((path.name, referencing.Resource(doc, specification=DRAFT4)))
    registry = referencing.Registry().with_resources(resources)
    schema = json.loads((schema_dir / "features-schema.json").read_text())
    jsonschema.Draft4Validator(schema, registry=registry).validate(features())


# -- each listed item, held against behaviour ------------------------------------------------

def test_every_listed_mount_option_is_applied(make_bundle: Callable[..., str],
                                              state_root: str, tmp_path: Path,
                                              leak_check: Callable[[], None]) -> None:
    """One tmpfs (or bind, for bind/propagation options) per listed option, in one
    container: the planner accepts each one and the kernel takes the mount."""
    opts = features()["mountOptions"]
    src = tmp_path / "bindsrc"
    src.mkdir()
    mapping = [{"containerID": 0, "hostID": 0, "size": 65536}]
    propagation = {"private", "rprivate", "shared", "rshared", "slave", "rslave",
                   "unbindable", "runbindable"}
    mounts = []
    for opt in opts:                    # every listed option mounts on tmpfs or as a bind
        if opt in ("bind", "rbind"):
            mounts.append({"destination": f"/mnt/{opt}", "type": "bind",
                           "source": str(src), "options": [opt]})
        elif opt in propagation:
            mounts.append({"destination": f"/mnt/{opt}", "type": "bind",
                           "source": str(src), "options": ["rbind", opt]})
        elif opt == "remount":
            # remount changes the mount made just before at the same place
            mounts.append({"destination": "/mnt/remount", "type": "tmpfs",
                           "source": "tmpfs", "options": []})
            mounts.append({"destination": "/mnt/remount", "type": "tmpfs",
                           "source": "tmpfs", "options": ["remount", "ro"]})
        elif opt in ("idmap", "ridmap"):
            mounts.append({"destination": f"/mnt/{opt}", "type": "bind",
                           "source": str(src), "options": ["rbind", opt],
                           "uidMappings": mapping, "gidMappings": mapping})
        else:
            mounts.append({"destination": f"/mnt/{opt}", "type": "tmpfs", "source": "tmpfs",
                           "options": [opt]})

    def edit(config: dict[str, Any]) -> None:
        config["mounts"] += mounts

    code, out = _run(make_bundle, state_root, ["cat", "/proc/self/mountinfo"], edit)
    assert code == 0, out
    for opt in opts:
        assert f" /mnt/{opt} " in out, opt
    lines = {line.split()[4]: line for line in out.splitlines()}
    assert " ro," in lines["/mnt/ro"] or lines["/mnt/ro"].split()[5].startswith("ro")
    assert "nosuid" in lines["/mnt/nosuid"].split()[5]
    assert "noexec" in lines["/mnt/noexec"].split()[5]
    if "remount" in opts:
        assert lines["/mnt/remount"].split()[5].startswith("ro")
    if "rro" in opts:
        assert lines["/mnt/rro"].split()[5].startswith("ro")
    assert "shared:" in lines["/mnt/rshared"]


def test_refused_mount_options_are_not_listed() -> None:
    from containerkit.native import mountopts

    listed = set(features()["mountOptions"])
    # runc's list but acl and iversion (only some filesystems take them as parameters)
    assert {"rro", "rnosymfollow", "tmpcopyup", "idmap", "ridmap", "lazytime"} <= listed
    assert not listed & {"acl", "noacl", "iversion", "noiversion"}
    for opt in set(mountopts.known()) - listed:
        try:
            parsed = mountopts.parse([opt], "mounts[0].options")
        except (UnsupportedError, SpecError):
            continue                        # refused
        assert parsed.data == opt           # or only passed on to the filesystem
    from containerkit.native import mountopts as m

    for opt in ("iversion", "noiversion", "acl", "noacl"):      # passed on, not listed
        assert m.parse([opt], "mounts[0].options").data == opt


def test_every_listed_namespace_is_created(make_bundle: Callable[..., str], state_root: str,
                                           leak_check: Callable[[], None]) -> None:
    names = features()["linux"]["namespaces"]
    proc_name = {"mount": "mnt", "network": "net", "cgroup": "cgroup", "ipc": "ipc",
                 "pid": "pid", "time": "time", "user": "user", "uts": "uts"}

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"] = [{"type": t} for t in names]
        if "user" in names:
            config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0,
                                               "size": 65536}]
            config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0,
                                               "size": 65536}]

    script = " ".join(f"readlink /proc/self/ns/{proc_name[t]};" for t in names)
    # time: /proc/self/ns/time is the namespace of the init's children (time_for_children)
    code, out = _run(make_bundle, state_root, ["sh", "-c", script], edit)
    assert code == 0, out
    inside = out.split()
    for t, link in zip(names, inside, strict=True):
        assert link != os.readlink(f"/proc/self/ns/{proc_name[t]}"), t


def test_every_listed_capability_is_granted(make_bundle: Callable[..., str],
                                            state_root: str,
                                            leak_check: Callable[[], None]) -> None:
    caps = features()["linux"]["capabilities"]
    from containerkit.native.capabilities import NUMBERS

    with open("/proc/self/status") as f:
        bounding = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    # what this host's bounding set lacks cannot be granted by any runtime (refused)
    grantable = [c for c in caps if bounding >> NUMBERS[c] & 1]
    missing = [c for c in caps if c not in grantable]

    def edit(config: dict[str, Any]) -> None:
        config["process"]["capabilities"] = {k: list(grantable) for k in
                                             ("bounding", "effective", "permitted")}

    code, out = _run(make_bundle, state_root, ["grep", "^CapEff", "/proc/self/status"], edit)
    assert code == 0, out
    want = sum(1 << NUMBERS[c] for c in grantable)
    assert int(out.split()[1], 16) == want

    if missing:
        def edit_missing(config: dict[str, Any]) -> None:
            config["process"]["capabilities"] = {k: missing for k in
                                                 ("bounding", "effective", "permitted")}

        with pytest.raises(Exception, match="capabilities"):
            _run(make_bundle, state_root, ["true"], edit_missing)


def test_every_listed_seccomp_item_compiles() -> None:
    from containerkit import spec as oci
    from containerkit.native.seccomp import compile_filter

    sec = features()["linux"]["seccomp"]
    assert sec["enabled"]
    for action in sec["actions"]:
        doc = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/ck-listener.sock",
               "syscalls": [{"names": ["getcwd"], "action": action}]}
        if action == "SCMP_ACT_ALLOW":
            doc["defaultAction"] = "SCMP_ACT_ERRNO"
        compile_filter(oci.Seccomp.from_dict(doc))
    for op in sec["operators"]:
        doc = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{
            "names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "valueTwo": 1, "op": op}]}]}
        compile_filter(oci.Seccomp.from_dict(doc))
    for arch in sec["archs"]:
        compile_filter(oci.Seccomp.from_dict({"defaultAction": "SCMP_ACT_ALLOW",
                                              "architectures": [arch]}))
    # (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV only goes with a notifying rule)
    flags, _ = compile_filter(oci.Seccomp.from_dict({
        "defaultAction": "SCMP_ACT_ALLOW", "flags": sec["supportedFlags"],
        "listenerPath": "/run/ck-listener.sock",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}]}))
    assert flags
    for flag in set(sec["knownFlags"]) - set(sec["supportedFlags"]):
        with pytest.raises(UnsupportedError):
            compile_filter(oci.Seccomp.from_dict({"defaultAction": "SCMP_ACT_ALLOW",
                                                  "flags": [flag]}))


def test_listed_seccomp_errno_applies(make_bundle: Callable[..., str], state_root: str,
                                      leak_check: Callable[[], None]) -> None:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 1}]}

    code, out = _run(make_bundle, state_root, ["sh", "-c", "mkdir /tmp/x || echo refused"],
                     edit)
    assert code == 0 and "refused" in out, out


def test_every_listed_hook_stage_runs(make_bundle: Callable[..., str], state_root: str,
                                      tmp_path: Path,
                                      leak_check: Callable[[], None]) -> None:
    stages = features()["hooks"]
    marks = tmp_path / "marks"
    marks.mkdir()

    def edit(config: dict[str, Any]) -> None:
        # all stages but startContainer see the host's files (createContainer runs in the
        # container's mount namespace before pivot_root)
        config["hooks"] = {stage: [{"path": "/bin/sh",
                                    "args": ["sh", "-c", f": > {marks}/{stage}"]}]
                           for stage in stages}
        # startContainer runs in the container's root: it marks a file the container reads
        config["hooks"]["startContainer"] = [{"path": "/bin/sh",
                                              "args": ["sh", "-c", ": > /tmp/startContainer"]}]
        config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})

    bundle = make_bundle(["sh", "-c", "cat /tmp/startContainer && echo seen"], edit)
    code, out = run_container(bundle, state_root, f"feat-hooks-{os.getpid()}")
    assert code == 0 and "seen" in out, out
    for stage in stages:
        if stage != "startContainer":
            assert (marks / stage).exists(), stage
