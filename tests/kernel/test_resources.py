"""linux.resources applied to a real container on a pure cgroup v2 kernel (run in the VM)."""

from __future__ import annotations

import json
import os
from typing import Any

from ckhelpers import run_container

from containerkit.busybox import make_bundle


def _run(tmp_path: Any, args: list[str], resources: dict[str, Any]) -> tuple[int, str]:
    bundle = make_bundle(str(tmp_path / "b"), args=args)
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    cfg["linux"]["resources"].update(resources)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    return run_container(bundle, str(tmp_path / "state"), "res1", timeout=120)


def test_limits_are_visible_inside(tmp_path: Any) -> None:
    status, out = _run(tmp_path, ["/bin/sh", "-c",
                                  "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max "
                                  "/sys/fs/cgroup/cpu.max"],
                       {"memory": {"limit": 64 << 20}, "pids": {"limit": 32},
                        "cpu": {"quota": 50000, "period": 100000}})
    assert status == 0, out
    assert out.split() == [str(64 << 20), "32", "50000", "100000"]


def test_pids_limit_stops_forks(tmp_path: Any) -> None:
    status, out = _run(tmp_path, ["/bin/sh", "-c",
                                  "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1; "
                                  "echo started $(jobs | wc -l)"],
                       {"pids": {"limit": 4}})
    assert "can't fork" in out or "Resource temporarily unavailable" in out, out


def test_runs_with_a_small_memory_max(tmp_path: Any) -> None:
    """The issue's target is <= 2 MiB (runc needs ~3.5 MiB here, crun 384 KiB; the library
    192 KiB: tests/bench.py --memory-min); 1 MiB keeps a margin for other kernels."""
    status, out = _run(tmp_path, ["/bin/true"], {"memory": {"limit": 1 << 20, "swap": 1 << 20}})
    assert status == 0, out
