"""CPU and memory-node placement: ``linux.memoryPolicy`` (set_mempolicy in the init,
``ops.mempolicy``) and ``process.execCPUAffinity`` (checked here; it applies to exec'd
processes only, never to the init: runtime-spec 1.3, config.md).

Lists are the kernel's "0-3,7" form. Nodes and CPUs the host does not have are refused
before the clone, with what the host has (``/sys/devices/system/{node,cpu}/possible``).
"""

from __future__ import annotations

from .. import spec as oci
from ..errors import SpecError, UnsupportedError
from . import ops

MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_NUMA_BALANCING": 1 << 13}
NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")           # the kernel wants an empty mask
NEED_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
              "MPOL_PREFERRED_MANY")


def parse_list(text: str, field: str) -> set[int]:
    """"0-3,7" -> {0, 1, 2, 3, 7}; an empty string is the empty set."""
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi if dash else lo)
        except ValueError:
            raise SpecError(f"config.json: {field}: {text!r} is not a list like 0-3,7") from None
        if first > last:
            raise SpecError(f"config.json: {field}: {part!r} is a range backwards")
        out.update(range(first, last + 1))
    return out


def host_list(kind: str) -> tuple[set[int], str]:
    """The host's possible CPUs or NUMA nodes (``kind``: cpu or node), and their text."""
    try:
        with open(f"/sys/devices/system/{kind}/possible") as f:
            text = f.read().strip()
    except OSError:
        text = "0"              # a kernel without NUMA has node 0 only
    return parse_list(text, f"/sys/devices/system/{kind}/possible"), text


def _check_on_host(wanted: set[int], kind: str, field: str) -> None:
    have, text = host_list(kind)
    missing = sorted(wanted - have)
    if missing:
        what = "CPU" if kind == "cpu" else "NUMA node"
        raise UnsupportedError(f"{field}: {what} {missing[0]} does not exist on this host "
                               f"(it has {text})")


def mask_words(bits: set[int]) -> tuple[int, ...]:
    """A bit set as 32-bit words, lowest first (the C op rebuilds unsigned longs)."""
    if not bits:
        return ()
    words = [0] * (max(bits) // 32 + 1)
    for b in bits:
        words[b // 32] |= 1 << (b % 32)
    return tuple(words)


def mempolicy_op(pol: oci.MemoryPolicy) -> tuple[ops.Op, str]:
    """The set_mempolicy op for ``linux.memoryPolicy`` and its detail."""
    field = "linux.memoryPolicy"
    if not pol.mode:
        raise SpecError(f"config.json: {field}.mode: required")
    nodes = parse_list(pol.nodes or "", f"{field}.nodes")
    if pol.mode in NO_NODES and nodes:
        raise SpecError(f"config.json: {field}.nodes: must be empty for {pol.mode}")
    if pol.mode in NEED_NODES and not nodes:
        raise SpecError(f"config.json: {field}.nodes: {pol.mode} needs at least one node")
    flags = 0
    for name in pol.flags:
        flags |= MPOL_FLAGS[name]
    if pol.flags and pol.mode in NO_NODES:
        raise SpecError(f"config.json: {field}.flags: {pol.mode} takes no flags")
    if {"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"} <= set(pol.flags):
        raise SpecError(f"config.json: {field}.flags: MPOL_F_STATIC_NODES and "
                        "MPOL_F_RELATIVE_NODES exclude each other")
    if "MPOL_F_RELATIVE_NODES" not in pol.flags:    # relative nodes are not host nodes
        _check_on_host(nodes, "node", f"{field}.nodes")
    detail = f"{pol.mode} {pol.nodes or ''}".strip()
    return ops.mempolicy(MPOL_MODES[pol.mode] | flags, mask_words(nodes)), detail


def exec_cpus(aff: oci.ExecCPUAffinity) -> tuple[set[int] | None, set[int] | None]:
    """(initial, final) CPU sets for an exec'd process (None: leave the affinity as it
    is), checked against the host's CPUs."""
    out: list[set[int] | None] = []
    for name, text in (("initial", aff.initial), ("final", aff.final)):
        field = f"process.execCPUAffinity.{name}"
        cpus = parse_list(text or "", field)
        if text and not cpus:
            raise SpecError(f"config.json: {field}: {text!r} names no CPU")
        _check_on_host(cpus, "cpu", field)
        out.append(cpus or None)
    return out[0], out[1]
