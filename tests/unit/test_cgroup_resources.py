"""linux.resources -> cgroup v2 files (containerkit.cgroups.resources), on fake directory trees.

Expected values come from runc (opencontainers/cgroups utils.go, fs2/*.go and their tests) and
crun (src/libcrun/cgroup-resources.c). No root, no real cgroupfs: every "cgroup" here is a plain
directory in tmp_path.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from containerkit import spec as oci
from containerkit.cgroups import Cgroup
from containerkit.cgroups import resources as res
from containerkit.errors import ConfigError, ContainerkitError, UnsupportedError

ALL = "cpuset cpu io memory hugetlb pids rdma misc"


def R(**kw: Any) -> oci.Resources:
    return oci.Resources.from_dict(kw)


def plan(cgroup_dir: str | None = None, **kw: Any) -> list[tuple[str, str, str]]:
    return res.plan_writes(R(**kw), cgroup_dir)


def files(p: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    return [(f, v) for f, v, _ in p]


def make_dir(path: Path, **contents: str) -> Path:
    """A fake cgroup directory; keyword names use "__" for "." (memory__max -> memory.max)."""
    path.mkdir(parents=True, exist_ok=True)
    for name, text in contents.items():
        (path / name.replace("__", ".")).write_text(text)
    return path


# --------------------------------------------------------------------------------- conversions


@pytest.mark.parametrize(
    "shares, weight",
    [(0, 0), (2, 1), (1024, 39), (2000, 77), (262144, 10000), (262143, 9999)],
)
def test_cpu_shares_linear_matches_runc_1_1(shares: int, weight: int) -> None:
    assert res.cpu_shares_to_weight(shares) == weight
    assert res.cpu_shares_to_weight(shares, "linear") == weight


@pytest.mark.parametrize(
    "shares, weight",
    # opencontainers/cgroups utils_test.go after PR #20; 2000 -> 170 from runc issue #4896.
    [(0, 0), (1, 1), (2, 1), (1024, 100), (2000, 170), (262144, 10000), (300000, 10000)],
)
def test_cpu_shares_quadratic_matches_runc_1_4(shares: int, weight: int) -> None:
    assert res.cpu_shares_to_weight(shares, "quadratic") == weight


@pytest.mark.parametrize("shares", [1, 262145])
def test_cpu_shares_linear_out_of_range(shares: int) -> None:
    with pytest.raises(ValueError):
        res.cpu_shares_to_weight(shares)


@pytest.mark.parametrize(
    "swap, limit, expected",
    [
        (0, -1, -1),  # unlimited memory, unset swap -> unlimited swap
        (-1, 1000, -1),  # unlimited swap as is
        (0, 1000, 0),  # unset swap
        (0, 0, 0),
        (-1, 0, -1),
        (500, -1, 500),  # unlimited memory: swap as is
        (3000, 1000, 2000),
        (1000, 1000, 0),  # memory == memory+swap: no swap
    ],
)
def test_swap_conversion(swap: int, limit: int, expected: int) -> None:
    assert res.memory_swap_to_v2(swap, limit) == expected


@pytest.mark.parametrize(
    "swap, limit, text",
    [
        (1000, 0, "without memory limit"),
        (500, 1000, "should be >= memory limit"),
        (500, -5, "invalid memory value"),
    ],
)
def test_swap_conversion_errors(swap: int, limit: int, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        res.memory_swap_to_v2(swap, limit)


@pytest.mark.parametrize("weight, expected", [(0, 0), (10, 1), (500, 4950), (1000, 10000)])
def test_blkio_weight_conversion(weight: int, expected: int) -> None:
    assert res.blkio_weight_to_io_weight(weight) == expected


@pytest.mark.parametrize(
    "size, name",
    [
        ("2MB", "2MB"),
        ("1GB", "1GB"),
        ("64KB", "64KB"),
        ("2048KB", "2MB"),
        ("1024MB", "1GB"),
        ("32MB", "32MB"),
    ],
)
def test_hugepage_size_name(size: str, name: str) -> None:
    assert res.hugepage_size_name(size) == name


# --------------------------------------------------------------------------------------- plans


def test_empty_resources_plan_nothing() -> None:
    assert res.plan_writes(None) == []
    assert plan() == []
    assert plan(memory={}, cpu={}, blockIO={}, network={}) == []


@pytest.mark.parametrize("limit, value", [(100, "100"), (0, "0"), (-1, "max"), (-7, "max")])
def test_pids(limit: int, value: str) -> None:
    # runtime-spec 1.3: 0 is a real limit, -1 is "max".
    assert plan(pids={"limit": limit}) == [("pids.max", value, "linux.resources.pids.limit")]


def test_memory_limit_reservation_swap_order() -> None:
    p = plan(memory={"limit": 1 << 30, "reservation": 1 << 29, "swap": 3 << 30})
    assert p == [
        ("memory.swap.max", str(2 << 30), "linux.resources.memory.swap"),
        ("memory.max", str(1 << 30), "linux.resources.memory.limit"),
        ("memory.low", str(1 << 29), "linux.resources.memory.reservation"),
    ]


def test_memory_unlimited_sets_swap_unlimited() -> None:
    assert files(plan(memory={"limit": -1})) == [("memory.swap.max", "max"), ("memory.max", "max")]


def test_memory_limit_equal_swap_disables_swap() -> None:
    assert files(plan(memory={"limit": 1000, "swap": 1000})) == [
        ("memory.swap.max", "0"),
        ("memory.max", "1000"),
    ]


def test_memory_limit_without_swap_leaves_swap_alone() -> None:
    assert files(plan(memory={"limit": 1000})) == [("memory.max", "1000")]


def test_memory_swap_unlimited() -> None:
    assert files(plan(memory={"limit": 1000, "swap": -1})) == [
        ("memory.swap.max", "max"),
        ("memory.max", "1000"),
    ]


def test_memory_zero_is_unset_as_in_runc() -> None:
    assert plan(memory={"limit": 0, "swap": 0, "reservation": 0}) == []


@pytest.mark.parametrize(
    "memory, text",
    [
        ({"swap": 1000}, "without memory limit"),
        ({"limit": 2000, "swap": 1000}, ">= memory limit"),
        ({"limit": -2}, "not a valid value"),
    ],
)
def test_memory_invalid_swap_or_limit(memory: dict[str, int], text: str) -> None:
    with pytest.raises(ConfigError, match=text) as e:
        plan(memory=memory)
    assert str(e.value).startswith("linux.resources.memory.")


def test_memory_ignored_fields(caplog: pytest.LogCaptureFixture) -> None:
    p = plan(
        memory={
            "limit": 1000,
            "kernel": 5000,
            "kernelTCP": 6000,
            "useHierarchy": True,
            "disableOOMKiller": False,
            "checkBeforeUpdate": True,
        }
    )
    assert files(p) == [("memory.max", "1000")]
    assert "linux.resources.memory.kernel" in caplog.text
    assert "linux.resources.memory.kernelTCP" in caplog.text


def test_cpu_weight_and_max() -> None:
    p = plan(cpu={"shares": 1024, "quota": 50000, "period": 200000})
    assert p == [
        ("cpu.weight", "39", "linux.resources.cpu.shares"),
        ("cpu.max", "50000 200000", "linux.resources.cpu.quota"),
    ]


def test_cpu_weight_quadratic_formula() -> None:
    p = res.plan_writes(R(cpu={"shares": 1024}), None, shares_formula="quadratic")
    assert files(p) == [("cpu.weight", "100")]


@pytest.mark.parametrize(
    "cpu, value",
    [
        ({"quota": 50000}, "50000 100000"),  # default period
        ({"quota": -1}, "max 100000"),  # runc: "max" for quota <= 0
        ({"quota": -1, "period": 250000}, "max 250000"),
        ({"period": 50000}, "max 50000"),
        ({"quota": 0, "period": 0}, None),  # both unset
    ],
)
def test_cpu_max_forms(cpu: dict[str, int], value: str | None) -> None:
    p = dict(files(plan(cpu=cpu)))
    assert p.get("cpu.max") == value


def test_cpu_burst_idle_cpuset() -> None:
    p = plan(
        cpu={"shares": 512, "idle": 1, "quota": 20000, "burst": 10000, "cpus": "0-1", "mems": "0"}
    )
    # cpu.weight is not written while cpu.idle is on (runc fs2/cpu.go); burst before cpu.max.
    assert files(p) == [
        ("cpu.idle", "1"),
        ("cpu.max.burst", "10000"),
        ("cpu.max", "20000 100000"),
        ("cpuset.cpus", "0-1"),
        ("cpuset.mems", "0"),
    ]


def test_cpu_burst_larger_than_quota_refused() -> None:
    with pytest.raises(ConfigError, match=r"^linux\.resources\.cpu\.burst: "):
        plan(cpu={"quota": 1000, "burst": 2000})


def test_cpu_shares_out_of_range() -> None:
    with pytest.raises(ConfigError, match=r"^linux\.resources\.cpu\.shares: "):
        plan(cpu={"shares": 1})


def test_cpu_realtime_zero_is_unset() -> None:
    assert plan(cpu={"realtimeRuntime": 0, "realtimePeriod": 0}) == []


def test_io_weight_bfq_present(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "c", io__bfq__weight="default 100\n", io__weight="default 100\n")
    p = plan(
        str(d),
        blockIO={
            "weight": 500,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 300}, {"major": 8, "minor": 16}],
        },
    )
    assert p == [
        ("io.bfq.weight", "500", "linux.resources.blockIO.weight"),
        ("io.bfq.weight", "8:0 300", "linux.resources.blockIO.weightDevice[0].weight"),
    ]


def test_io_weight_falls_back_to_io_weight(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "c", io__weight="default 100\n")
    p = plan(
        str(d), blockIO={"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 10}]}
    )
    assert files(p) == [("io.weight", "4950"), ("io.weight", "8:0 1")]


def test_io_max_merged_per_device() -> None:
    p = plan(
        blockIO={
            "throttleReadBpsDevice": [
                {"major": 8, "minor": 0, "rate": 600},
                {"major": 8, "minor": 16, "rate": 700},
            ],
            "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 800}],
            "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 0}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 300}],
        }
    )
    assert files(p) == [
        ("io.max", "8:0 rbps=600 wbps=800 wiops=300"),
        ("io.max", "8:16 rbps=700 riops=max"),  # v1 rate 0 = no limit
    ]
    assert p[0][2] == (
        "linux.resources.blockIO.throttleReadBpsDevice[0] + "
        "linux.resources.blockIO.throttleWriteBpsDevice[0] + "
        "linux.resources.blockIO.throttleWriteIOPSDevice[0]"
    )


def test_hugetlb(tmp_path: Path) -> None:
    d = make_dir(
        tmp_path / "c",
        **{"hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max", "hugetlb.1GB.max": "max"},
    )
    p = plan(
        str(d),
        hugepageLimits=[
            {"pageSize": "2048KB", "limit": 209715200},
            {"pageSize": "1GB", "limit": 1 << 30},
        ],
    )
    assert files(p) == [
        ("hugetlb.2MB.max", "209715200"),
        ("hugetlb.2MB.rsvd.max", "209715200"),
        ("hugetlb.1GB.max", str(1 << 30)),
    ]
    assert p[0][2] == "linux.resources.hugepageLimits[0]"
    # Without a directory to look at, only the .max file (runc skips rsvd on ENOENT).
    assert files(plan(hugepageLimits=[{"pageSize": "2MB", "limit": 1}])) == [
        ("hugetlb.2MB.max", "1")
    ]


def test_rdma() -> None:
    p = plan(
        rdma={"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 1000}}
    )
    assert p == [
        ("rdma.max", "mlx5_1 hca_handle=3 hca_object=10000", "linux.resources.rdma.mlx5_1"),
        ("rdma.max", "mlx4_0 hca_object=1000", "linux.resources.rdma.mlx4_0"),
    ]
    with pytest.raises(ConfigError, match=r"^linux\.resources\.rdma\.rxe3: "):
        plan(rdma={"rxe3": {}})


def test_unified_written_last(tmp_path: Path) -> None:
    p = plan(pids={"limit": 10}, unified={"pids.max": "20", "memory.high": "1000"})
    assert files(p) == [("pids.max", "10"), ("pids.max", "20"), ("memory.high", "1000")]
    assert p[2][2] == 'linux.resources.unified["memory.high"]'


@pytest.mark.parametrize("key", ["../memory.max", "a/b", "..", ".", ""])
def test_unified_key_must_be_a_file_name(key: str) -> None:
    with pytest.raises(ConfigError) as e:
        plan(unified={key: "1"})
    assert str(e.value).startswith("linux.resources.unified[")


def test_unified_key_without_controller_prefix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CONTROLLER.PARAMETER"):
        plan(unified={"nodot": "1"})
    d = make_dir(tmp_path / "c", cgroup__controllers="memory\n", weird="")
    assert files(plan(str(d), unified={"weird": "1"})) == [("weird", "1")]  # the file exists


def test_unified_missing_file_of_enabled_controller(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "c", cgroup__controllers="memory pids\n", memory__max="max")
    assert files(plan(str(d), unified={"memory.max": "5"})) == [("memory.max", "5")]
    with pytest.raises(UnsupportedError, match=r'unified\["memory.bogus"\]: no such cgroup file'):
        plan(str(d), unified={"memory.bogus": "5"})
    with pytest.raises(UnsupportedError, match=r'unified\["cgroup.bogus"\]'):
        plan(str(d), unified={"cgroup.bogus": "5"})


def test_unified_controller_not_enabled_is_refused_by_enable(tmp_path: Path) -> None:
    root = make_dir(
        tmp_path / "unified", cgroup__controllers="hugetlb\n", cgroup__subtree_control=""
    )
    d = root / "containerkit" / "c1"
    p = plan(str(d), unified={"misc.max": "res_a 1"})
    with pytest.raises(UnsupportedError) as e:
        res.enable_controllers(str(root), str(d), res.controllers_by_field(p))
    assert str(e.value) == (
        f'linux.resources.unified["misc.max"]: the misc controller is not '
        f"available in {root} (hybrid cgroup layout?)"
    )


# ------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"cpu": {"realtimeRuntime": 950000}}, "linux.resources.cpu.realtimeRuntime"),
        ({"cpu": {"realtimePeriod": 1000000}}, "linux.resources.cpu.realtimePeriod"),
        (
            {"memory": {"limit": 1000, "disableOOMKiller": True}},
            "linux.resources.memory.disableOOMKiller",
        ),
        ({"memory": {"swappiness": 60}}, "linux.resources.memory.swappiness"),
        ({"blockIO": {"leafWeight": 10}}, "linux.resources.blockIO.leafWeight"),
        (
            {"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 5, "leafWeight": 3}]}},
            "linux.resources.blockIO.weightDevice[0].leafWeight",
        ),
        ({"network": {"classID": 1048577}}, "linux.resources.network.classID"),
        (
            {"network": {"priorities": [{"name": "eth0", "priority": 5}]}},
            "linux.resources.network.priorities",
        ),
    ],
)
def test_refusals_name_their_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(UnsupportedError) as e:
        plan(**kw)
    msg = str(e.value)
    assert msg == f"{field}: not supported on cgroup v2"
    assert "\n" not in msg


# --------------------------------------------------------------------------------- controllers


def test_controllers_by_field() -> None:
    p = plan(
        memory={"limit": 1},
        pids={"limit": 1},
        cpu={"shares": 1024, "cpus": "0"},
        blockIO={"weight": 100},
        hugepageLimits=[{"pageSize": "2MB", "limit": 1}],
        rdma={"mlx5_1": {"hcaHandles": 1}},
        unified={"misc.max": "x 1", "cgroup.max.depth": "3"},
    )
    assert set(res.controllers_by_field(p)) == {
        "memory",
        "pids",
        "cpu",
        "cpuset",
        "io",
        "hugetlb",
        "rdma",
        "misc",
    }
    assert list(res.controllers_by_field(p).items()) == [
        ("cpuset", "linux.resources.cpu"),
        ("cpu", "linux.resources.cpu"),
        ("io", "linux.resources.blockIO"),
        ("memory", "linux.resources.memory"),
        ("hugetlb", "linux.resources.hugepageLimits"),
        ("pids", "linux.resources.pids"),
        ("rdma", "linux.resources.rdma"),
        ("misc", 'linux.resources.unified["misc.max"]'),
    ]


def _tree(
    tmp_path: Path, root_ctrls: str = ALL, root_enabled: str = "", mid_enabled: str = ""
) -> tuple[Path, Path]:
    root = make_dir(
        tmp_path / "cgroup",
        cgroup__controllers=root_ctrls + "\n",
        cgroup__subtree_control=root_enabled,
    )
    mid = make_dir(
        root / "containerkit", cgroup__controllers=root_enabled, cgroup__subtree_control=mid_enabled
    )
    return root, mid / "c1"


def _record_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    real = res._write_file

    def rec(path: str, data: str) -> None:
        seen.append((path, data))
        real(path, data)

    monkeypatch.setattr(res, "_write_file", rec)
    return seen


def test_enable_controllers_top_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, c1 = _tree(tmp_path)
    seen = _record_writes(monkeypatch)
    done = res.enable_controllers(str(root), str(c1), {"pids", "memory", "cpu", "cpuset"})
    r, m = root / "cgroup.subtree_control", root / "containerkit" / "cgroup.subtree_control"
    expected = [
        (str(r), "+cpuset"),
        (str(r), "+cpu"),
        (str(r), "+memory"),
        (str(r), "+pids"),
        (str(m), "+cpuset"),
        (str(m), "+cpu"),
        (str(m), "+memory"),
        (str(m), "+pids"),
    ]
    assert seen == expected
    assert done == expected
    assert not c1.exists()  # the container's own directory is a leaf: not touched


def test_enable_controllers_skips_enabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, c1 = _tree(tmp_path, root_enabled="memory pids", mid_enabled="memory")
    seen = _record_writes(monkeypatch)
    res.enable_controllers(str(root), str(c1), ["memory", "pids"])
    assert seen == [(str(root / "containerkit" / "cgroup.subtree_control"), "+pids")]


def test_enable_controllers_direct_child_of_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = _tree(tmp_path)
    seen = _record_writes(monkeypatch)
    res.enable_controllers(str(root), str(root / "solo"), ["io"])
    assert seen == [(str(root / "cgroup.subtree_control"), "+io")]


def test_enable_controllers_refuses_missing_without_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unified = tmp_path / "sys" / "fs" / "cgroup" / "unified"
    root, c1 = _tree(unified.parent, root_ctrls="hugetlb")
    root = root.rename(unified)
    c1 = unified / "containerkit" / "c1"
    seen = _record_writes(monkeypatch)
    p = plan(memory={"limit": 1 << 20}, hugepageLimits=[{"pageSize": "2MB", "limit": 1}])
    with pytest.raises(UnsupportedError) as e:
        res.enable_controllers(str(root), str(c1), res.controllers_by_field(p))
    assert str(e.value) == (
        f"linux.resources.memory: the memory controller is not available "
        f"in {root} (hybrid cgroup layout?)"
    )
    assert seen == []


def test_enable_controllers_missing_in_middle(tmp_path: Path) -> None:
    # Enabled at the root but the middle level (already has it in subtree_control? no) lacks it:
    root = make_dir(tmp_path / "cgroup", cgroup__controllers=ALL, cgroup__subtree_control="pids")
    make_dir(root / "containerkit", cgroup__controllers="", cgroup__subtree_control="")
    with pytest.raises(
        UnsupportedError,
        match=rf"linux\.resources\.pids: the pids controller "
        rf"is not available in {root}/containerkit$",
    ):
        res.enable_controllers(str(root), str(root / "containerkit" / "c1"), ["pids"])


def test_enable_controllers_outside_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        res.enable_controllers(str(tmp_path / "a"), str(tmp_path / "b" / "c"), ["pids"])


def test_enable_controllers_write_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, c1 = _tree(tmp_path)

    def busy(path: str, data: str) -> None:
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))

    monkeypatch.setattr(res, "_write_file", busy)
    with pytest.raises(
        UnsupportedError,
        match=r"^linux\.resources\.memory: cannot enable the "
        r"memory controller: .*no internal processes",
    ):
        res.enable_controllers(str(root), str(c1), {"memory": "linux.resources.memory"})


# ---------------------------------------------------------------------------------------- apply


def test_apply_writes_files(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "c", pids__max="max", memory__max="max", io__max="")
    res.apply(
        str(d),
        [
            ("pids.max", "10", "f1"),
            ("memory.max", "4096", "f2"),
            ("io.max", "8:0 rbps=1\n8:16 wbps=2", "f3"),
        ],
    )
    assert (d / "pids.max").read_text() == "10"
    assert (d / "memory.max").read_text() == "4096"
    # one write(2) per line on one fd (a plain file just concatenates them)
    assert (d / "io.max").read_text() == "8:0 rbps=18:16 wbps=2"


def test_apply_missing_file_names_file_value_field(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "c")
    with pytest.raises(UnsupportedError) as e:
        res.apply(str(d), [("memory.swap.max", "0", "linux.resources.memory.swap")])
    msg = str(e.value)
    assert msg.startswith("linux.resources.memory.swap: cannot write '0' to memory.swap.max in ")
    assert "memory controller" in msg and "\n" not in msg
    assert not (d / "memory.swap.max").exists()  # never created


def test_apply_einval_is_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def einval(path: str, value: str) -> None:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    monkeypatch.setattr(res, "_write_lines", einval)
    with pytest.raises(ConfigError, match="kernel rejected"):
        res.apply(str(tmp_path), [("pids.max", "x", "linux.resources.pids.limit")])
    monkeypatch.setattr(
        res,
        "_write_lines",
        lambda p, v: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error")),
    )
    with pytest.raises(ContainerkitError, match="Input/output error"):
        res.apply(str(tmp_path), [("pids.max", "1", "linux.resources.pids.limit")])


def test_apply_retries_burst_after_cpu_max(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = make_dir(tmp_path / "c", cpu__max="max 100000", cpu__max__burst="0")
    real = res._write_lines
    calls: list[str] = []

    def once_einval(path: str, value: str) -> None:
        name = os.path.basename(path)
        calls.append(name)
        if name == "cpu.max.burst" and calls.count(name) == 1:
            raise OSError(errno.EINVAL, "Invalid argument")
        real(path, value)

    monkeypatch.setattr(res, "_write_lines", once_einval)
    res.apply(str(d), plan(cpu={"quota": 50000, "burst": 20000}))
    assert calls == ["cpu.max.burst", "cpu.max", "cpu.max.burst"]
    assert (d / "cpu.max.burst").read_text() == "20000"
    assert (d / "cpu.max").read_text() == "50000 100000"


# ------------------------------------------------------------------------- checkBeforeUpdate


def test_check_memory_update(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "c", memory__current="1000\n")
    on = {"checkBeforeUpdate": True}
    with pytest.raises(ConfigError, match=r"^linux\.resources\.memory\.limit: .*500 <= .*1000"):
        res.check_memory_update(str(d), R(memory={"limit": 500, **on}))
    with pytest.raises(ConfigError, match=r"^linux\.resources\.memory\.swap: "):
        res.check_memory_update(str(d), R(memory={"limit": 2000, "swap": 900, **on}))
    res.check_memory_update(str(d), R(memory={"limit": 2000, **on}))
    res.check_memory_update(str(d), R(memory={"limit": 500}))  # flag off
    res.check_memory_update(str(d), R(memory={"limit": -1, **on}))  # unlimited
    res.check_memory_update(str(tmp_path / "gone"), R(memory={"limit": 1, **on}))  # best effort
    res.check_memory_update(str(d), None)


# ---------------------------------------------------------------------------------------- stats


SAMPLE = {
    "cpu.stat": "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 10\n"
    "nr_throttled 2\nthrottled_usec 300\n",
    "memory.current": "4096\n",
    "memory.max": "8192\n",
    "memory.peak": "6000\n",
    "memory.stat": "anon 1000\nfile 3000\nkernel 96\n",
    "memory.events": "low 0\nhigh 1\nmax 5\noom 1\noom_kill 1\n",
    "memory.swap.current": "100\n",
    "memory.swap.max": "max\n",
    "pids.current": "3\n",
    "pids.max": "max\n",
    "io.stat": "8:0 rbytes=1024 wbytes=2048 rios=1 wios=2 dbytes=0 dios=0\n"
    "253:1 rbytes=5 wbytes=0 rios=1 wios=0\n",
    "hugetlb.2MB.current": "2097152\n",
    "hugetlb.2MB.events": "max 4\n",
    "hugetlb.2MB.max": "max\n",
    "hugetlb.1GB.current": "0\n",
    "hugetlb.1GB.events": "max 0\n",
    "cpuset.cpus.effective": "0-2,5\n",
    "cpuset.mems.effective": "0\n",
}


def test_stats_from_sample_files(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir()
    for name, text in SAMPLE.items():
        (d / name).write_text(text)
    s = res.stats(str(d))
    json.dumps(s)  # JSON-serialisable as `events --stats` prints it
    assert s["cpu"]["usage"] == {"total": 2_000_000, "user": 1_500_000, "kernel": 500_000}
    assert s["cpu"]["throttling"] == {
        "periods": 10,
        "throttledPeriods": 2,
        "throttledTime": 300_000,
    }
    assert s["cpuset"]["cpus"] == [0, 1, 2, 5] and s["cpuset"]["mems"] == [0]
    mem = s["memory"]
    assert mem["cache"] == 3000
    assert mem["usage"] == {"usage": 4096, "limit": 8192, "max": 6000, "failcnt": 5}
    assert mem["swap"]["usage"] == 4196  # v1-style memory+swap
    assert mem["swap"]["limit"] == 2**64 - 1
    assert mem["raw"] == {"anon": 1000, "file": 3000, "kernel": 96}
    assert mem["event_count"] == {"low": 0, "high": 1, "max": 5, "oom": 1, "oom_kill": 1}
    assert s["pids"] == {"current": 3}  # "max" -> no limit reported
    assert s["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 1024},
        {"major": 8, "minor": 0, "op": "Write", "value": 2048},
        {"major": 253, "minor": 1, "op": "Read", "value": 5},
        {"major": 253, "minor": 1, "op": "Write", "value": 0},
    ]
    assert s["blkio"]["ioServicedRecursive"][0] == {
        "major": 8,
        "minor": 0,
        "op": "Read",
        "value": 1,
    }
    assert s["hugetlb"] == {"1GB": {"failcnt": 0}, "2MB": {"usage": 2097152, "failcnt": 4}}


def test_stats_limits_and_missing_files(tmp_path: Path) -> None:
    d = make_dir(
        tmp_path / "c",
        pids__current="2",
        pids__max="64",
        memory__current="10",
        memory__max="100",
        memory__swap__current="5",
        memory__swap__max="50",
    )
    s = res.stats(str(d))
    assert s["pids"] == {"current": 2, "limit": 64}
    assert s["memory"]["swap"]["limit"] == 150 and s["memory"]["swap"]["usage"] == 15
    # Hybrid host: no controller files, only cgroup.procs.
    e = make_dir(tmp_path / "e", cgroup__procs="1\n2\n")
    s = res.stats(str(e))
    assert s["pids"] == {"current": 2}
    assert s["memory"]["usage"] == {"limit": 0, "failcnt": 0} and s["hugetlb"] == {}
    assert res.stats(str(tmp_path / "absent"))["cpu"]["usage"] == {"kernel": 0, "user": 0}


# ------------------------------------------------------------------------- Cgroup integration


def test_cgroup_set_resources_on_fake_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, c1 = _tree(tmp_path)
    make_dir(
        c1,
        cgroup__controllers="",
        pids__max="max",
        memory__max="max",
        memory__swap__max="max",
        cpu__weight="100",
        memory__current="0",
    )
    seen = _record_writes(monkeypatch)
    cg = Cgroup(str(c1))
    writes = cg.set_resources(
        R(pids={"limit": 50}, memory={"limit": 1 << 20, "swap": 2 << 20}, cpu={"shares": 1024}),
        root=str(root),
        update=True,
    )
    assert files(writes) == [
        ("pids.max", "50"),
        ("memory.swap.max", str(1 << 20)),
        ("memory.max", str(1 << 20)),
        ("cpu.weight", "39"),
    ]
    assert (c1 / "pids.max").read_text() == "50"
    assert (c1 / "cpu.weight").read_text() == "39"
    assert [w[1] for w in seen] == ["+cpu", "+memory", "+pids"] * 2
    assert cg.stats()["pids"] == {}  # no pids.current in the fake dir; procs absent too


def test_cgroup_set_resources_nothing_to_do(tmp_path: Path) -> None:
    cg = Cgroup(str(tmp_path / "nowhere"))
    assert (
        cg.set_resources(R(devices=[{"allow": False, "access": "rwm"}]), root=str(tmp_path)) == []
    )


def test_cgroup_set_resources_replans_after_enabling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # io.bfq.weight and hugetlb.*.rsvd.max exist only once the controllers are enabled.
    root, c1 = _tree(tmp_path)
    make_dir(c1, io__weight="default 100", hugetlb__2MB__max="max")
    real = res.enable_controllers

    def enable(*a: Any) -> Any:
        done = real(*a)
        make_dir(c1, io__bfq__weight="default 100", hugetlb__2MB__rsvd__max="max")
        return done

    monkeypatch.setattr(res, "enable_controllers", enable)
    writes = Cgroup(str(c1)).set_resources(
        R(blockIO={"weight": 500}, hugepageLimits=[{"pageSize": "2MB", "limit": 4 << 20}]),
        root=str(root),
    )
    assert files(writes) == [
        ("io.bfq.weight", "500"),
        ("hugetlb.2MB.max", str(4 << 20)),
        ("hugetlb.2MB.rsvd.max", str(4 << 20)),
    ]
    assert (c1 / "io.bfq.weight").read_text() == "500"


# --- device rules (cgroups/devices.py) ---------------------------------------------------------

def _run_prog(code: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    """Evaluate the instructions devices.assemble emits (its small subset of eBPF); the
    kernel's verdict is tested in tests/integration/test_cgroup_devices.py."""
    import struct

    from containerkit.cgroups import devices as d

    ctx = [(access << 16) | dev_type, major, minor]
    regs = [0] * 11
    pc = 0
    while True:
        op, r, off, imm = struct.unpack_from("<BBhi", code, pc * 8)
        dst, src = r & 0xF, r >> 4
        pc += 1
        if op == d._LDX_MEM_W:
            regs[dst] = ctx[off // 4]
        elif op == d._ALU_MOV_X:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif op == d._ALU_MOV_K:
            regs[dst] = imm & 0xFFFFFFFF
        elif op == d._ALU_XOR_K:
            regs[dst] ^= imm & 0xFFFFFFFF
        elif op == d._ALU_AND_K:
            regs[dst] &= imm & 0xFFFFFFFF
        elif op == d._ALU_RSH_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif op == d._JMP_JNE_K:
            pc += off if regs[dst] != imm else 0
        elif op == d._JMP_JEQ_K:
            pc += off if regs[dst] == imm else 0
        elif op == d._EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


def test_device_program_reads_the_rules_as_a_v1_devices_cgroup() -> None:
    from containerkit.cgroups import devices as d
    from containerkit.errors import ConfigError

    R, W, M = d.ACC_READ, d.ACC_WRITE, d.ACC_MKNOD
    C, B = d.DEV_CHAR, d.DEV_BLOCK
    code = d.assemble([
        d.Rule(False),                                   # deny all
        d.Rule(True, "c", 42, d.WILDCARD, "rw"),
        d.Rule(True, "c", 42, 1, "w"),
        d.Rule(True, "b", 8, 0, "r"),
        d.Rule(True, "c", d.WILDCARD, d.WILDCARD, "m"),
    ])
    assert _run_prog(code, C, R, 42, 0) == 1
    assert _run_prog(code, C, R | W, 42, 0) == 1
    assert _run_prog(code, C, R | W, 42, 1) == 1
    assert _run_prog(code, C, W, 43, 0) == 0
    assert _run_prog(code, B, R, 8, 0) == 1
    assert _run_prog(code, B, W, 8, 0) == 0
    assert _run_prog(code, B, R, 42, 0) == 0             # type matters
    assert _run_prog(code, C, M, 1, 1) == 1
    assert _run_prog(code, B, M, 8, 0) == 0
    # one exception must cover the whole access (v1 and runc): r and w apart are not rw
    code = d.assemble([d.Rule(True, "c", 1, 1, "r"), d.Rule(True, "c", 1, 2, "w"),
                       d.Rule(True, "c", 1, d.WILDCARD, "w")])
    assert _run_prog(code, C, R, 1, 1) == 1 and _run_prog(code, C, W, 1, 1) == 1
    assert _run_prog(code, C, R | W, 1, 1) == 0
    # the same node's rules add up (one exception)
    code = d.assemble([d.Rule(True, "c", 1, 1, "r"), d.Rule(True, "c", 1, 1, "w")])
    assert _run_prog(code, C, R | W, 1, 1) == 1
    # a deny takes from the same node's exception only; a later "a" rule resets
    code = d.assemble([d.Rule(True, "c", 1, 1, "rw"), d.Rule(False, "c", 1, 1, "w")])
    assert _run_prog(code, C, R, 1, 1) == 1 and _run_prog(code, C, W, 1, 1) == 0
    assert _run_prog(d.assemble([d.Rule(False), d.Rule(True)]), B, R | W | M, 7, 7) == 1
    assert _run_prog(d.assemble([d.Rule(True), d.Rule(False)]), C, R, 1, 3) == 0
    # allow by default: a deny exception denies an access it touches at all (O_RDWR
    # through a "w" deny: runc's program would let it through, v1 did not)
    code = d.assemble([d.Rule(True), d.Rule(False, "c", 1, 3, "w")])
    assert _run_prog(code, C, R, 1, 3) == 1 and _run_prog(code, C, R | W, 1, 3) == 0
    # and a later allow of a wider class does not lift a node's deny (as runc and v1)
    code = d.assemble([d.Rule(True), d.Rule(False, "c", 10, 229, "m"),
                       d.Rule(True, "c", d.WILDCARD, d.WILDCARD, "m")])
    assert _run_prog(code, C, M, 10, 229) == 0 and _run_prog(code, C, M, 10, 228) == 1
    # punching a hole in a wildcard exception is refused, as runc refuses it
    for rules in ([d.Rule(False), d.Rule(True, "c", 42, d.WILDCARD, "rw"),
                   d.Rule(False, "c", 42, 1, "w")],
                  [d.Rule(True), d.Rule(False, "c", 1, d.WILDCARD, "rw"), *d.DEFAULT_RULES]):
        with pytest.raises(ConfigError, match=r"linux.resources.devices: .* punch a hole"):
            d.emulate(rules)
    # type "a": a deny always resets (runc); an allow with numbers allows just those
    # numbers, of both types (the runtime-spec's reading; runc would allow everything)
    code = d.assemble([d.Rule(False), d.Rule(True, "a", 42, 7, "r")])
    assert _run_prog(code, C, R, 42, 7) == 1 and _run_prog(code, B, R, 42, 7) == 1
    assert _run_prog(code, C, R, 42, 8) == 0 and _run_prog(code, C, W, 42, 7) == 0
    code = d.assemble([d.Rule(True), d.Rule(False, "a", 42, 7, "r")])
    assert _run_prog(code, C, M, 1, 1) == 0


def _v1_verdict(rules: list[Any], typ: str, access: int, major: int, minor: int) -> int:
    """A second, independent reading of a rule list: the v1 devices cgroup's
    (security/device_cgroup.c), with this module's reading of type "a" rules."""
    from containerkit.cgroups import devices as d

    bit_of = {"m": d.ACC_MKNOD, "r": d.ACC_READ, "w": d.ACC_WRITE}
    allow_all, excs = False, []                      # [(type, major, minor, bits)]
    for rule in rules:
        bits = sum(bit_of[c] for c in set(rule.access))
        full = rule.major == rule.minor == d.WILDCARD and bits == 7
        if rule.type == "a" and (not rule.allow or full):
            allow_all, excs = rule.allow, []
            continue
        for t in (("c", "b") if rule.type == "a" else (rule.type,)):
            if rule.allow != allow_all:
                excs.append((t, rule.major, rule.minor, bits))
            else:
                excs = [(et, ema, emi, eb & ~bits if (et, ema, emi) == (t, rule.major,
                         rule.minor) else eb) for et, ema, emi, eb in excs]

    def matches(e: tuple[str, int, int, int]) -> bool:
        return e[0] == typ and e[1] in (d.WILDCARD, major) and e[2] in (d.WILDCARD, minor)

    # an exception's bits are the union of its node's entries (as v1 merges them)
    merged: dict[tuple[str, int, int], int] = {}
    for et, ema, emi, eb in excs:
        merged[(et, ema, emi)] = merged.get((et, ema, emi), 0) | eb
    hit = [b for k, b in merged.items() if b and matches((*k, b))]
    if allow_all:
        return int(not any(b & access for b in hit))
    return int(any(access & ~b == 0 for b in hit))


def test_device_program_matches_the_v1_reading_on_random_lists() -> None:
    import random

    from containerkit.cgroups import devices as d
    from containerkit.errors import ConfigError

    types = {"c": d.DEV_CHAR, "b": d.DEV_BLOCK}
    rng = random.Random(7)
    checked = refused = 0
    for _ in range(600):
        rules = [d.Rule(rng.random() < 0.6, rng.choice("abc"), rng.choice([-1, 1, 5]),
                        rng.choice([-1, 0, 3]), "".join(c for c in "rwm" if rng.random() < 0.6))
                 for _ in range(rng.randint(0, 6))]
        try:
            code = d.assemble(rules)
        except ConfigError:
            refused += 1
            continue
        checked += 1
        for _ in range(10):
            typ, access = rng.choice("bc"), rng.randint(1, 7)
            major, minor = rng.choice([1, 5, 7]), rng.choice([0, 3, 4])
            assert _run_prog(code, types[typ], access, major, minor) == \
                _v1_verdict(rules, typ, access, major, minor), (rules, typ, access, major, minor)
    assert checked > 300 and refused > 10, (checked, refused)


def test_device_rules_are_runcs_order() -> None:
    """The spec's rules, then runc's defaults; a linux.devices node adds no rule, and one
    at a default device's path drops that default (runc's createDevices)."""
    from containerkit import spec as oci
    from containerkit.cgroups import devices as d
    from containerkit.errors import ConfigError

    linux = oci.Linux(
        devices=[oci.Device(type="b", path="/dev/sda", major=8, minor=0),
                 oci.Device(type="c", path="/dev/kmsg", major=1, minor=11),
                 oci.Device(type="p", path="/dev/fifo")],
        resources=oci.Resources(devices=[
            oci.DeviceCgroup(allow=False, access="rwm"),
            oci.DeviceCgroup(allow=True, type="c", major=42, access="rwm")]))
    rules = d.rules_from_spec(linux)
    assert rules[:2] == [d.Rule(False, "a", -1, -1, "rwm"), d.Rule(True, "c", 42, -1, "rwm")]
    assert tuple(rules[2:]) == d.DEFAULT_RULES
    assert not any(r.major in (1, 8) and r.minor in (11, 0) for r in d.emulate(rules).exceptions)
    # a spec node at /dev/null replaces the default one: no rule for it unless the spec's
    linux.devices.append(oci.Device(type="c", path="/dev/null", major=1, minor=3))
    rules = d.rules_from_spec(linux)
    assert d.Rule(True, "c", 1, 3, "rwm") not in rules and len(rules) == 2 + 10
    # an update's list replaces the spec's own
    upd = d.rules_from_spec(linux, [oci.DeviceCgroup(allow=True, access="rwm")])
    assert upd[0] == d.Rule(True) and upd[1] == d.DEFAULT_RULES[0]
    with pytest.raises(ConfigError, match=r"devices\[0\]\.minor"):
        d.rules_from_spec(None, [oci.DeviceCgroup(allow=True, type="c", major=1, minor=-5,
                                                  access="r")])
    for access in (None, ""):                       # runc: "cannot be empty"
        with pytest.raises(ConfigError, match=r"devices\[1\]\.access: empty or missing"):
            d.rules_from_spec(None, [oci.DeviceCgroup(allow=False, access="rwm"),
                                     oci.DeviceCgroup(allow=True, access=access)])


def test_default_device_list_is_current_runcs() -> None:
    """runc's AllowedDevices (main, 1.2.4+: /dev/net/tun is back), in its order."""
    from containerkit.cgroups import devices as d

    assert [str(r) for r in d.DEFAULT_RULES] == [
        "allow c *:* m", "allow b *:* m", "allow c 1:3 rwm", "allow c 1:8 rwm",
        "allow c 1:7 rwm", "allow c 5:0 rwm", "allow c 1:5 rwm", "allow c 1:9 rwm",
        "allow c 136:* rwm", "allow c 5:2 rwm", "allow c 10:200 rwm"]
    assert [p for p, _ in d.DEFAULT_DEVICES if p] == [
        "/dev/null", "/dev/random", "/dev/full", "/dev/tty", "/dev/zero", "/dev/urandom"]


def test_cgroup2_mountpoint_is_the_one_mountinfo_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stat of the usual places agrees with the mount table (pure v2 or hybrid)."""
    from containerkit.cgroups import v2

    mounts = [line.split(" - ")[0].split()[4] for line in Path("/proc/self/mountinfo")
              .read_text().splitlines() if line.split(" - ")[1].startswith("cgroup2 ")]
    monkeypatch.setattr(v2, "_mountpoint_cache", None)
    assert v2.cgroup2_mountpoint() in mounts
    assert v2.cgroup2_mountpoint() == ("/sys/fs/cgroup" if "/sys/fs/cgroup" in mounts
                                       else mounts[0])


def test_bpf_attr_layout_is_structs() -> None:
    """syscalls._attr writes the bpf_attr fields as struct.pack would (it avoids
    importing struct on the create path), then zeros."""
    import struct

    from containerkit import syscalls as s

    for layout, values in (
            ("<IIQQIIQII16sII", (9, 12, 2**40 + 5, 7, 1, 65536, 2**33, 0, 0, b"ck_devices", 0, 6)),
            ("<IIII", (1, 2, 3, 4)), ("<IIIIQI", (1, 2, 0, 0, 2**50, 64)), ("<I", (5,)),
            ("<IIQ", (3, 8, 2**60)), ("<16s", (b"x" * 20,))):
        got = bytes(s.ffi.buffer(s._attr(layout, *values)))
        want = struct.pack(layout, *values)
        assert got == want + bytes(len(got) - len(want)), layout


def test_limits_asked_sees_every_resources_field_but_devices() -> None:
    """set_resources and the rootless refusal ask limits_asked whether linux.resources
    wants a cgroup limit: every JSON field of the model but the device rules counts, a
    field added to oci.Resources included."""
    from containerkit.cgroups.v2 import limits_asked
    from containerkit.records import fields

    assert limits_asked(oci.Resources.from_dict({"devices": [
        {"allow": False, "access": "rwm"}]})) == ""
    assert limits_asked(oci.Resources.from_dict({"pids": {"limit": 5}})) == "pids"
    keys = [f for f in fields(oci.Resources) if f.metadata.get("key")]
    assert len(keys) >= 9
    for f in keys:
        r = oci.Resources()
        setattr(r, f.name, object())
        assert limits_asked(r) == ("" if f.metadata["key"] == "devices"
                                   else f.metadata["key"]), f.name
