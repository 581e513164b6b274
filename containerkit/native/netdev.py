"""linux.netDevices: host interfaces moved into the container's network namespace.

Done by the parent while the init waits before pivot_root (the HOOKS stop of
``sync.py``), before the prestart/createRuntime hooks, which then see the devices in
place. Each device is moved (and renamed when ``name`` is given) with one RTM_NEWLINK
(IFLA_NET_NS_FD + IFLA_IFNAME), its permanent global addresses are added back inside
(a move drops them), and it is set up (runtime-spec 1.3). A failure moves the devices
already moved back, with their names and addresses, and fails create.

On delete: a namespace the container made goes with it (the kernel returns physical
devices to the initial namespace and destroys virtual ones); from a namespace it joined
by path, which outlives it, the devices are moved back under their host names with their
addresses, as runc does (``RECORD`` in the state directory says which).
"""

from __future__ import annotations

import os
import re
from typing import Any

from .. import spec as oci
from ..errors import ContainerkitError, SpecError, UnsupportedError

FIELD = "linux.netDevices"
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0
_IFNAME = re.compile(r"^[^/\s:]{1,15}$")
RECORD = "netdevices.json"      # in the state directory: what delete moves back

Moved = list[tuple[str, str, list[dict[str, Any]]]]   # (host name, inside name, addresses)


def check(linux: oci.Linux) -> None:
    """Names valid and unique, and a network namespace that is not the runtime's."""
    if not linux.net_devices:
        return
    if not any(ns.type == "network" for ns in linux.namespaces):
        raise UnsupportedError(f"{FIELD}: the container shares the runtime's network "
                               "namespace: add a network namespace to move devices into")
    seen: dict[str, str] = {}
    for host_name, dev in linux.net_devices.items():
        inside = dev.name or host_name
        for what, name in (("", host_name), (".name", inside)):
            if not _IFNAME.match(name) or name in (".", ".."):
                raise SpecError(f"config.json: {FIELD}.{host_name}{what}: {name!r} is not a "
                                "network interface name")
        if inside in seen:
            raise SpecError(f"config.json: {FIELD}.{host_name}.name: {inside!r} is also the "
                            f"name of {FIELD}.{seen[inside]} in the container")
        if host_name == "lo":
            raise SpecError(f"config.json: {FIELD}.lo: the loopback device cannot move")
        seen[inside] = host_name


def move_in(devices: dict[str, oci.NetDevice], pid: int) -> Moved:
    """Move ``devices`` from this process's network namespace into ``pid``'s; what was
    moved, for ``move_back``."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    netns = f"/proc/{pid}/ns/net"
    moved: Moved = []
    nsfd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as host:
            for host_name, dev in devices.items():
                inside = dev.name or host_name
                where = f"{FIELD}.{host_name}"
                try:
                    index = _index(host, host_name, where)
                    addrs = _addresses(host, index)
                    host.link("set", index=index, net_ns_fd=nsfd, ifname=inside)
                except NetlinkError as e:
                    _revert(moved, netns)
                    raise ContainerkitError(f"{where}: cannot move it into the container: "
                                            f"{os.strerror(e.code).lower()}") from None
                except ContainerkitError:
                    _revert(moved, netns)
                    raise
                moved.append((host_name, inside, addrs))
        try:
            with IPRoute(netns=netns, flags=0) as ns:
                for host_name, inside, addrs in moved:
                    index = _index(ns, inside, f"{FIELD}.{host_name}")
                    _restore(ns, index, addrs)
                    ns.link("set", index=index, state="up")
        except NetlinkError as e:
            _revert(moved, netns)
            raise ContainerkitError(f"{FIELD}: cannot set up the moved devices in the "
                                    f"container: {os.strerror(e.code).lower()}") from None
    finally:
        os.close(nsfd)
    return moved


def record(moved: Moved, netns: str, joined: bool) -> bytes:
    """The state directory's note of what was moved into ``netns`` (joined by path, or
    the init's own)."""
    import json

    return json.dumps({"netns": netns, "joined": joined, "devices": moved}).encode()


def move_back(data: bytes, failed_create: bool) -> None:
    """Move recorded devices back to this namespace: always for a failed create, on
    delete only out of a namespace joined by path."""
    import json

    doc = json.loads(data)
    if failed_create or doc["joined"]:
        _revert([(h, i, a) for h, i, a in doc["devices"]], doc["netns"])


def _index(ipr: Any, name: str, where: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise ContainerkitError(f"{where}: no network device {name!r} in the runtime's "
                                "network namespace")
    return int(found[0])


def _addresses(ipr: Any, index: int) -> list[dict[str, Any]]:
    """The permanent, global-scope addresses (those the spec says survive the move)."""
    out = []
    for msg in ipr.get_addr(index=index):
        flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
        if not flags & IFA_F_PERMANENT or msg["scope"] != RT_SCOPE_UNIVERSE:
            continue
        addr = {"family": msg["family"], "prefixlen": msg["prefixlen"],
                "address": msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")}
        if msg.get_attr("IFA_BROADCAST"):
            addr["broadcast"] = msg.get_attr("IFA_BROADCAST")
        out.append(addr)
    return out


def _restore(ipr: Any, index: int, addrs: list[dict[str, Any]]) -> None:
    for a in addrs:
        ipr.addr("add", index=index, **a)


def _revert(moved: Moved, netns: str) -> None:
    """Move what was moved back out, with its old name and addresses (best effort: a
    failed create reports its first error, a delete goes on)."""
    if not moved:
        return
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute(netns=netns, flags=0) as ns:
        for host_name, inside, _ in moved:
            found = ns.link_lookup(ifname=inside)
            if found:
                try:
                    ns.link("set", index=found[0], net_ns_pid=os.getpid(), ifname=host_name)
                except NetlinkError:
                    pass
    with IPRoute() as host:
        for host_name, _, addrs in moved:
            found = host.link_lookup(ifname=host_name)
            if found:
                try:
                    _restore(host, found[0], addrs)
                except NetlinkError:
                    pass
