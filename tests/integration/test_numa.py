"""linux.memoryPolicy (set_mempolicy in the init, seen in /proc/self/numa_maps inside)
and process.execCPUAffinity (checked; the init keeps its affinity, as the spec says)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from containerkit import Bundle, ContainerkitError, NativeDriver, new_container
from containerkit import spec as oci
from containerkit.native.numa import exec_cpus, host_list, mask_words, parse_list

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _run(make_bundle: Callable[..., str], state_root: str, tmp_path: Path, cid: str,
         script: str, edit: Callable[[dict[str, Any]], None]) -> tuple[int | None, str]:
    config = Bundle(make_bundle(["sh", "-c", script], edit), id=cid, root=state_root)
    out = tmp_path / f"{cid}.out"
    with open(out, "wb") as f, new_container(config, config.graph_driver(),
                                             NativeDriver()) as c:
        c.stdout = c.stderr = f
        c.create()
        c.start()
        status = c.wait(timeout=60)
    return status, out.read_text()


@pytest.mark.parametrize("policy,shown", [
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0"}, "interleave:0"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}, "bind=static:0"),
    ({"mode": "MPOL_PREFERRED", "nodes": "0"}, "prefer:0"),
    ({"mode": "MPOL_LOCAL"}, "local"),
])
def test_memory_policy_is_the_processes(make_bundle: Callable[..., str], state_root: str,
                                        tmp_path: Path, leak_check: Callable[[], None],
                                        policy: dict[str, Any], shown: str) -> None:
    status, out = _run(make_bundle, state_root, tmp_path, "numa-pol",
                       "head -1 /proc/self/numa_maps",
                       lambda c: c["linux"].update(memoryPolicy=policy))
    assert status == 0, out
    assert out.split()[1] == shown, out


@pytest.mark.parametrize("policy,match", [
    ({"mode": "MPOL_BIND"}, "MPOL_BIND needs at least one node"),
    ({"mode": "MPOL_DEFAULT", "nodes": "0"}, "must be empty for MPOL_DEFAULT"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES",
                                                   "MPOL_F_RELATIVE_NODES"]}, "exclude"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0,4095"}, "NUMA node 4095 does not exist"),
    ({"mode": "MPOL_BIND", "nodes": "x"}, "is not a list like"),
    ({"nodes": "0"}, "mode: required"),
])
def test_memory_policy_refusals(make_bundle: Callable[..., str], state_root: str,
                                leak_check: Callable[[], None], policy: dict[str, Any],
                                match: str) -> None:
    config = Bundle(make_bundle(["true"], lambda c: c["linux"].update(memoryPolicy=policy)),
                    id="numa-bad", root=state_root)
    with pytest.raises(ContainerkitError, match=match) as info:
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()
    assert "linux.memoryPolicy" in str(info.value)


def test_exec_cpu_affinity_leaves_the_init_alone(make_bundle: Callable[..., str],
                                                 state_root: str, tmp_path: Path,
                                                 leak_check: Callable[[], None]) -> None:
    ours = sorted(os.sched_getaffinity(0))

    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["execCPUAffinity"] = {"initial": "0", "final": "0"}

    status, out = _run(make_bundle, state_root, tmp_path, "numa-aff",
                       "grep Cpus_allowed_list /proc/self/status", edit)
    assert status == 0, out
    inside = parse_list(out.split()[1], "out")
    assert sorted(inside) == ours


@pytest.mark.parametrize("aff,match", [
    ({"initial": "0", "final": "4095"}, "final: CPU 4095 does not exist on this host"),
    ({"initial": "3-1"}, "backwards"),
])
def test_exec_cpu_affinity_refusals(make_bundle: Callable[..., str], state_root: str,
                                    leak_check: Callable[[], None], aff: dict[str, str],
                                    match: str) -> None:
    config = Bundle(make_bundle(["true"], lambda c: c["process"].update(execCPUAffinity=aff)),
                    id="numa-affbad", root=state_root)
    with pytest.raises(ContainerkitError, match=match):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()


def test_lists_and_masks() -> None:
    assert parse_list("0-3,7", "f") == {0, 1, 2, 3, 7}
    assert parse_list("", "f") == set()
    assert mask_words({0, 33}) == (1, 2)
    assert 0 in host_list("cpu")[0] and 0 in host_list("node")[0]
    aff = oci.loads(json.dumps({"ociVersion": "1.3.0", "root": {"path": "r"}, "process": {
        "cwd": "/", "args": ["x"], "execCPUAffinity": {"initial": "0"}}})).process
    assert aff is not None and aff.exec_cpu_affinity is not None
    assert exec_cpus(aff.exec_cpu_affinity) == ({0}, None)
