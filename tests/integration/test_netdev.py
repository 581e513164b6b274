"""linux.netDevices: a host interface moved into the container's network namespace,
renamed, with its address, and up, seen from inside with busybox `ip`.

The host's own network namespace is never touched: each test makes a network namespace
(`ip netns add ck-hk-...`) with a veth pair in it and runs the runtime there
(`nsenter --net`: only the network namespace changes, /sys and the cgroup mounts stay).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from containerkit import Bundle, ContainerkitError, NativeDriver, new_container
from containerkit import spec as oci
from containerkit.errors import SpecError, UnsupportedError
from containerkit.native.netdev import check

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
CLI = [sys.executable, "-m", "containerkit"]


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace of this test with a veth pair ck-hk-a (10.200.7.1/24) and
    ck-hk-b in it; deleted (with whatever is left in it) at the end."""
    name = f"ck-hk-{uuid.uuid4().hex[:8]}"
    assert _ip("netns", "add", name).returncode == 0
    try:
        for cmd in (["link", "add", "ck-hk-a", "type", "veth", "peer", "name", "ck-hk-b"],
                    ["addr", "add", "10.200.7.1/24", "dev", "ck-hk-a"],
                    ["link", "set", "ck-hk-b", "up"]):
            done = _ip("-n", name, *cmd)
            assert done.returncode == 0, done.stderr
        yield name
    finally:
        _ip("netns", "del", name)


def _run_in(netns: str, state_root: str, bundle: str, cid: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", *CLI, "--root", state_root,
                           "run", "--bundle", bundle, cid],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def test_device_moves_in_renamed_with_its_address_and_up(
        make_bundle: Callable[..., str], state_root: str, netns: str,
        leak_check: Callable[[], None]) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["netDevices"] = {"ck-hk-a": {"name": "eth7"}}

    bundle = make_bundle(["sh", "-c", "ip addr show eth7; ip link show ck-hk-a || echo gone"],
                         edit)
    done = _run_in(netns, state_root, bundle, "hk-netdev")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "eth7" in out and "inet 10.200.7.1/24" in out, out
    flags = out.split("<", 1)[1].split(">", 1)[0].split(",")
    assert "UP" in flags, out
    assert "gone" in out                       # no device under the host's name inside
    # the container's namespace is gone, and the veth pair with it (a virtual device)
    assert "ck-hk-a" not in _ip("-n", netns, "link").stdout


def test_failed_move_reverts_the_devices_already_moved(
        make_bundle: Callable[..., str], state_root: str, netns: str,
        leak_check: Callable[[], None]) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["netDevices"] = {"ck-hk-a": {"name": "eth7"}, "ck-hk-none": {}}

    done = _run_in(netns, state_root, make_bundle(["true"], edit), "hk-netdev-bad")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].endswith(
        "linux.netDevices.ck-hk-none: no network device 'ck-hk-none' in the runtime's "
        "network namespace"), done.stderr
    assert _back_in(netns) == [("10.200.7.1", 24)]


def _back_in(netns: str) -> list[tuple[str, int]]:
    """ck-hk-a's IPv4 addresses in ``netns`` (it must be there)."""
    back = json.loads(_ip("-n", netns, "-j", "addr", "show", "ck-hk-a").stdout)
    return [(a["local"], a["prefixlen"]) for a in back[0]["addr_info"]
            if a["family"] == "inet"]


def test_device_goes_back_from_a_joined_namespace_on_delete(
        make_bundle: Callable[..., str], state_root: str, netns: str,
        leak_check: Callable[[], None]) -> None:
    joined = f"ck-hk-j{uuid.uuid4().hex[:6]}"
    assert _ip("netns", "add", joined).returncode == 0
    try:
        def edit(cfg: dict[str, Any]) -> None:
            cfg["linux"]["netDevices"] = {"ck-hk-a": {"name": "eth7"}}
            for ns in cfg["linux"]["namespaces"]:
                if ns["type"] == "network":
                    ns["path"] = f"/run/netns/{joined}"

        done = _run_in(netns, state_root, make_bundle(["ip", "addr", "show", "eth7"], edit),
                       "hk-netdev-join")
        assert done.returncode == 0, done.stderr
        assert "inet 10.200.7.1/24" in done.stdout, done.stdout
        assert _back_in(netns) == [("10.200.7.1", 24)]     # delete moved it back
        assert "ck-hk-a" not in _ip("-n", joined, "link").stdout
        assert "eth7" not in _ip("-n", joined, "link").stdout
    finally:
        _ip("netns", "del", joined)


def test_failed_create_after_the_move_gives_the_device_back(
        make_bundle: Callable[..., str], state_root: str, netns: str, tmp_path: Path,
        leak_check: Callable[[], None]) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nexit 4\n")
    bad.chmod(0o755)

    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["netDevices"] = {"ck-hk-a": {"name": "eth7"}}
        cfg["hooks"] = {"createRuntime": [{"path": str(bad)}]}

    done = _run_in(netns, state_root, make_bundle(["true"], edit), "hk-netdev-hook")
    assert done.returncode == 1
    assert "hooks.createRuntime[0]" in done.stderr
    assert _back_in(netns) == [("10.200.7.1", 24)]     # not destroyed with the namespace


def test_missing_device_fails_create_and_leaves_nothing(
        make_bundle: Callable[..., str], state_root: str,
        leak_check: Callable[[], None]) -> None:
    config = Bundle(make_bundle(["true"], lambda c: c["linux"].update(
        netDevices={"ck-hk-nodev": {}})), id="hk-nodev", root=state_root)
    with pytest.raises(ContainerkitError, match=r"^linux.netDevices.ck-hk-nodev: no network "
                                                "device 'ck-hk-nodev' in the runtime's"):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()


def _linux(net: bool, devices: dict[str, Any]) -> oci.Linux:
    spaces = [{"type": "mount"}] + ([{"type": "network"}] if net else [])
    doc = {"ociVersion": "1.3.0", "root": {"path": "r"},
           "linux": {"namespaces": spaces, "netDevices": devices}}
    spec = oci.loads(json.dumps(doc))
    assert spec.linux is not None
    return spec.linux


@pytest.mark.parametrize("net,devices,error,match", [
    (False, {"eth0": {}}, UnsupportedError, "shares the runtime's network namespace"),
    (True, {"eth0": {"name": "x"}, "eth1": {"name": "x"}}, SpecError, "also the name of"),
    (True, {"eth0": {"name": "a/b"}}, SpecError, r"eth0.name: 'a/b' is not a network"),
    (True, {"a-very-long-ifname": {}}, SpecError, "is not a network interface name"),
    (True, {"lo": {}}, SpecError, "loopback"),
])
def test_refusals(net: bool, devices: dict[str, Any], error: type[Exception],
                  match: str, tmp_path: Path) -> None:
    with pytest.raises(error, match=match):
        check(_linux(net, devices))
