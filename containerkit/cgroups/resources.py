"""``linux.resources`` on cgroup v2: plan the file writes, enable controllers, write, read stats.

The mapping follows runc's ``libcontainer/cgroups/fs2`` (now ``opencontainers/cgroups/fs2``:
``memory.go``, ``cpu.go``, ``io.go``, ``pids.go``, ``hugetlb.go``, ``fs2.go``; conversions in
``utils.go``) and crun's ``src/libcrun/cgroup-resources.c``. Where the two differ, the choice
is noted beside the code. Everything the kernel cannot do on v2 is refused with
:class:`UnsupportedError` naming the spec field, never silently dropped - except the few
fields runc itself ignores on v2 because v2 already covers them (see ``IGNORED_ON_V2``).

A plan is a list of ``(file name, value, spec field)``. :func:`plan_writes` is pure apart from
looking at which files exist in the cgroup directory (``io.bfq.weight`` vs ``io.weight``,
``hugetlb.*.rsvd.max``, ``unified`` keys); :func:`apply` does the writes.
"""

from __future__ import annotations

import errno as _errno
import math
import os
from _collections_abc import Mapping  # collections.abc imports collections (~1 ms)

from ..errors import ConfigError, ContainerkitError, UnsupportedError

TYPE_CHECKING = False  # typing is not imported at run time: the CLI would pay ~2 ms
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from .. import spec


def _warn(msg: str) -> None:
    import logging  # lazily: keeps the import of this module cheap for the CLI

    logging.getLogger(__name__).warning(msg)


Write = tuple[str, str, str]  # (file name in the cgroup directory, value, spec field path)

R = "linux.resources"

#: The order controllers are enabled in (cpuset before cpu as systemd does; the rest as listed
#: by the kernel in cgroup.controllers).
CONTROLLER_ORDER = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")

#: Fields accepted but not written on v2, as runc does: v2 charges kernel and TCP-buffer memory
#: to memory.max, and v2 is always hierarchical.
IGNORED_ON_V2 = (
    f"{R}.memory.kernel",
    f"{R}.memory.kernelTCP",
    f"{R}.memory.useHierarchy",
)

# Which spec field a controller's writes come from, for messages when no plan is at hand.
_CONTROLLER_FIELD = {
    "memory": f"{R}.memory",
    "pids": f"{R}.pids",
    "cpu": f"{R}.cpu",
    "cpuset": f"{R}.cpu",
    "io": f"{R}.blockIO",
    "hugetlb": f"{R}.hugepageLimits",
    "rdma": f"{R}.rdma",
}

# ---------------------------------------------------------------------------------------------
# Conversions (opencontainers/cgroups utils.go)
# ---------------------------------------------------------------------------------------------

SHARES_FORMULAS = ("linear", "quadratic")


def cpu_shares_to_weight(shares: int, formula: str = "linear") -> int:
    """cgroup v1 ``cpu.shares`` [2, 262144] to v2 ``cpu.weight`` [1, 10000]; 0 means unset.

    ``linear``: ``1 + ((shares - 2) * 9999) // 262142`` - runc up to 1.3.1 and crun up to 1.22
    (the Debian runc 1.1.5 / crun 1.8.1 peers): 1024 -> 39.
    ``quadratic``: the log-quadratic curve of opencontainers/cgroups PR #20 (runc >= 1.3.2 and
    1.4, crun >= 1.23) which keeps the defaults aligned: 1024 -> 100, 2 -> 1, 262144 -> 10000.
    """
    if shares == 0:
        return 0
    if formula == "linear":
        if not 2 <= shares <= 262144:
            raise ValueError(f"{shares} is outside the cgroup v1 range [2, 262144]")
        return 1 + ((shares - 2) * 9999) // 262142
    if formula == "quadratic":
        if shares <= 2:
            return 1
        if shares >= 262144:
            return 10000
        lg = math.log2(shares)
        return math.ceil(10 ** ((lg * lg + 125 * lg) / 612.0 - 7.0 / 34.0))
    raise ValueError(f"unknown cpu shares formula {formula!r} (one of {SHARES_FORMULAS})")


def memory_swap_to_v2(swap: int, limit: int) -> int:
    """v1 ``memory+swap`` to v2 ``memory.swap.max`` (ConvertMemorySwapToCgroupV2Value).

    0 means unset for both arguments, -1 means unlimited. Raises ValueError where runc does.
    """
    if limit == -1 and swap == 0:
        return -1  # v1 compatibility: unlimited memory and unset swap -> unlimited swap
    if swap in (-1, 0):
        return swap
    if limit == -1:
        return swap  # unlimited memory: the swap value is taken as is
    if limit == 0:
        raise ValueError("unable to set swap limit without memory limit")
    if limit < 0:
        raise ValueError(f"invalid memory value: {limit}")
    if swap < limit:
        raise ValueError("memory+swap limit should be >= memory limit")
    return swap - limit


def blkio_weight_to_io_weight(weight: int) -> int:
    """v1 ``blkio.weight`` [10, 1000] to v2 ``io.weight`` [1, 10000].

    ConvertBlkIOToIOWeightValue: ``1 + (weight - 10) * 9999 // 990``; 0 means unset.
    """
    if weight == 0:
        return 0
    if not 10 <= weight <= 1000:
        raise ValueError(f"{weight} is outside the blkio weight range [10, 1000]")
    return 1 + (weight - 10) * 9999 // 990


_UNIT = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def hugepage_size_name(page_size: str) -> str:
    """The kernel's name for a hugepage size (hugetlb_cgroup.c mem_fmt): "2048KB" -> "2MB".

    Sizes already in the kernel's form ("2MB", "1GB", "64KB") are returned unchanged, as runc
    passes them through.
    """
    import re  # lazily: re (and enum) cost the CLI ~3 ms at every start/delete

    m = re.match(r"^([1-9][0-9]*)([KMG])B$", page_size)
    if not m:
        raise ValueError(f"{page_size!r} is not of the form <size><K|M|G>B")
    size = int(m.group(1)) * _UNIT[m.group(2)]
    for unit in ("G", "M", "K"):
        if size >= _UNIT[unit]:
            if size % _UNIT[unit]:
                return page_size  # not a size the kernel can name; leave it to fail clearly
            return f"{size // _UNIT[unit]}{unit}B"
    return page_size


def _max_str(value: int) -> str:
    """numToStr for .max/.low/.high files: -1 -> "max" (callers have dropped 0 = unset)."""
    return "max" if value == -1 else str(value)


# ---------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------


def _refuse(field: str, why: str = "not supported on cgroup v2") -> UnsupportedError:
    return UnsupportedError(f"{field}: {why}")


def _exists(cgroup_dir: str | None, name: str) -> bool:
    return cgroup_dir is not None and os.path.exists(os.path.join(cgroup_dir, name))


def plan_writes(
    resources: spec.Resources | None,
    cgroup_dir: str | None = None,
    *,
    shares_formula: str = "linear",
) -> list[Write]:
    """The ``(file, value, field)`` writes that apply ``resources`` on cgroup v2, in runc's order
    (pids, memory, io, cpu, cpuset, hugetlb, rdma, unified last so it overrides).

    ``cgroup_dir`` (optional, may not exist yet) decides between files that depend on the
    kernel: ``io.bfq.weight`` or ``io.weight``, whether ``hugetlb.<size>.rsvd.max`` is written,
    and validates ``unified`` keys. Those files appear only once the controller is enabled, so
    plan again after :func:`enable_controllers` (``Cgroup.set_resources`` does). Refusals raise
    :class:`UnsupportedError`, impossible values :class:`ConfigError`; both name the field.
    ``linux.resources.devices`` is not handled here (it needs an eBPF program, not a file).
    """
    if resources is None:
        return []
    if shares_formula not in SHARES_FORMULAS:
        raise ValueError(f"unknown cpu shares formula {shares_formula!r}")
    writes: list[Write] = []
    _plan_network(resources.network)
    _plan_pids(resources.pids, writes)
    _plan_memory(resources.memory, writes)
    _plan_io(resources.block_io, cgroup_dir, writes)
    _plan_cpu(resources.cpu, shares_formula, writes)
    _plan_hugetlb(resources.hugepage_limits, cgroup_dir, writes)
    _plan_rdma(resources.rdma, writes)
    _plan_unified(resources.unified, cgroup_dir, writes)
    return writes


def _plan_network(net: spec.Network | None) -> None:
    # net_cls/net_prio have no v2 counterpart (crun: "network limits not supported on cgroupv2";
    # runc drops them). An empty object asks for nothing and is accepted.
    if net is None:
        return
    if net.class_id is not None:
        raise _refuse(f"{R}.network.classID")
    if net.priorities:
        raise _refuse(f"{R}.network.priorities")


def _plan_pids(pids: spec.Pids | None, writes: list[Write]) -> None:
    # runtime-spec 1.3 (PR #1279): -1 means "max" and 0 is a real limit (no new tasks);
    # runc >= 1.4 / opencontainers/cgroups PR #48 do the same. Other negatives: "max" as crun
    # and runc's systemd driver do.
    if pids is None:
        return
    limit = pids.limit
    writes.append(("pids.max", "max" if limit < 0 else str(limit), f"{R}.pids.limit"))


def _plan_memory(mem: spec.Memory | None, writes: list[Write]) -> None:
    if mem is None:
        return
    f = f"{R}.memory"
    if mem.disable_oom_killer:
        raise _refuse(f"{f}.disableOOMKiller")
    if mem.swappiness is not None:
        # runc silently drops it on v2; crun refuses ("cannot set memory swappiness with
        # cgroupv2"). There is no per-cgroup swappiness in v2: refuse rather than pretend.
        raise _refuse(f"{f}.swappiness")
    for name, value in ((f"{f}.kernel", mem.kernel), (f"{f}.kernelTCP", mem.kernel_tcp)):
        if value is not None:
            _warn(f"{name}: ignored on cgroup v2 (charged to memory.max)")
    for name, value in (
        (f"{f}.limit", mem.limit),
        (f"{f}.reservation", mem.reservation),
        (f"{f}.swap", mem.swap),
    ):
        if value is not None and value < -1:
            raise ConfigError(f"{name}: {value} is not a valid value (use -1 for unlimited)")
    # runc's internal config: absent and 0 are both "unset" (numToStr(0) == "").
    limit = mem.limit or 0
    swap = mem.swap or 0
    reservation = mem.reservation or 0
    if not (limit or swap or reservation):
        return
    try:
        swap_v2 = memory_swap_to_v2(swap, limit)
    except ValueError as e:
        raise ConfigError(f"{f}.swap: {e}") from None
    # runc fs2/memory.go: swap first (so lowering memory+swap below the old memory.max works),
    # never write an empty value; limit == swap gives "0" (swap disabled).
    if swap_v2 != 0 or swap > 0:
        writes.append(("memory.swap.max", _max_str(swap_v2), f"{f}.swap"))
    if limit:
        writes.append(("memory.max", _max_str(limit), f"{f}.limit"))
    if reservation:
        writes.append(("memory.low", _max_str(reservation), f"{f}.reservation"))


def check_memory_update(cgroup_dir: str, resources: spec.Resources | None) -> None:
    """``memory.checkBeforeUpdate``: refuse a new limit at or below the current usage.

    As runc's CheckMemoryUsage: only when the flag is true; best effort (an unreadable
    ``memory.current`` lets the update through); the v1-style ``swap`` (memory+swap) is
    compared with ``memory.current`` too.
    """
    mem = resources.memory if resources is not None else None
    if mem is None or not mem.check_before_update:
        return
    limit = mem.limit or 0
    swap = mem.swap or 0
    if limit <= 0 and swap <= 0:
        return
    try:
        with open(os.path.join(cgroup_dir, "memory.current")) as fh:
            usage = int(fh.read().strip())
    except (OSError, ValueError):
        return
    if swap > 0 and swap <= usage:
        raise ConfigError(
            f"{R}.memory.swap: rejecting memory+swap limit {swap} <= current usage {usage} "
            "(checkBeforeUpdate)"
        )
    if limit > 0 and limit <= usage:
        raise ConfigError(
            f"{R}.memory.limit: rejecting memory limit {limit} <= current usage {usage} "
            "(checkBeforeUpdate)"
        )


def _plan_cpu(cpu: spec.CPU | None, formula: str, writes: list[Write]) -> None:
    if cpu is None:
        return
    f = f"{R}.cpu"
    # crun refuses non-zero values ("realtime ... not supported on cgroupv2"); 0 is "unset".
    if cpu.realtime_runtime:
        raise _refuse(f"{f}.realtimeRuntime")
    if cpu.realtime_period:
        raise _refuse(f"{f}.realtimePeriod")
    quota = cpu.quota or 0
    period = cpu.period or 0
    if cpu.burst is not None and quota > 0 and cpu.burst > quota:
        raise ConfigError(f"{f}.burst: {cpu.burst} is larger than quota {quota}")
    if cpu.idle is not None:
        writes.append(("cpu.idle", str(cpu.idle), f"{f}.idle"))
    if cpu.shares:
        try:
            weight = cpu_shares_to_weight(cpu.shares, formula)
        except ValueError as e:
            raise ConfigError(f"{f}.shares: {e}") from None
        # runc: cpu.weight cannot be set while cpu.idle is enabled.
        if not cpu.idle:
            writes.append(("cpu.weight", str(weight), f"{f}.shares"))
    # runc writes burst before cpu.max and retries after it on EINVAL (apply() does that).
    if cpu.burst is not None:
        writes.append(("cpu.max.burst", str(cpu.burst), f"{f}.burst"))
    if quota or period:
        # runc: "max PERIOD" when quota <= 0 (crun writes nothing for quota -1 alone).
        value = f"{quota if quota > 0 else 'max'} {period or 100000}"
        writes.append(("cpu.max", value, f"{f}.quota" if quota else f"{f}.period"))
    if cpu.cpus:
        writes.append(("cpuset.cpus", cpu.cpus, f"{f}.cpus"))
    if cpu.mems:
        writes.append(("cpuset.mems", cpu.mems, f"{f}.mems"))


def _plan_io(bio: spec.BlockIO | None, cgroup_dir: str | None, writes: list[Write]) -> None:
    if bio is None:
        return
    f = f"{R}.blockIO"
    # crun: "cannot set leaf_weight with cgroupv2"; runc drops it silently.
    if bio.leaf_weight:
        raise _refuse(f"{f}.leafWeight")
    for i, wd in enumerate(bio.weight_device):
        if wd.leaf_weight:
            raise _refuse(f"{f}.weightDevice[{i}].leafWeight")
    # runc io.go: io.bfq.weight if the file exists (BFQ scheduler), else io.weight with the
    # [10,1000] -> [1,10000] conversion. Without a directory to look at, runc's first choice.
    bfq = cgroup_dir is None or _exists(cgroup_dir, "io.bfq.weight")
    if bio.weight:
        if bfq:
            writes.append(("io.bfq.weight", str(bio.weight), f"{f}.weight"))
        else:
            writes.append(("io.weight", str(_io_weight(bio.weight, f"{f}.weight")), f"{f}.weight"))
    for i, wd in enumerate(bio.weight_device):
        if not wd.weight:
            continue
        field = f"{f}.weightDevice[{i}].weight"
        if bfq:
            writes.append(("io.bfq.weight", f"{wd.major}:{wd.minor} {wd.weight}", field))
        else:
            w = _io_weight(wd.weight, field)
            writes.append(("io.weight", f"{wd.major}:{wd.minor} {w}", field))
    # io.max: one line per device carrying every limit for it (the kernel merges the keys of
    # separate lines the same way; one line is atomic). rate 0 meant "no limit" in v1 and is
    # written as "max" (the kernel refuses 0 in io.max).
    lines: dict[tuple[int, int], tuple[dict[str, str], list[str]]] = {}
    for key, name, devs in (
        ("rbps", "throttleReadBpsDevice", bio.throttle_read_bps_device),
        ("wbps", "throttleWriteBpsDevice", bio.throttle_write_bps_device),
        ("riops", "throttleReadIOPSDevice", bio.throttle_read_iops_device),
        ("wiops", "throttleWriteIOPSDevice", bio.throttle_write_iops_device),
    ):
        for i, td in enumerate(devs):
            if td.rate is None:
                raise ConfigError(f"{f}.{name}[{i}].rate: required")
            keys, fields = lines.setdefault((td.major, td.minor), ({}, []))
            keys[key] = str(td.rate) if td.rate else "max"
            fields.append(f"{f}.{name}[{i}]")
    for (major, minor), (keys, fields) in lines.items():
        value = f"{major}:{minor} " + " ".join(f"{k}={v}" for k, v in keys.items())
        writes.append(("io.max", value, " + ".join(fields)))


def _io_weight(weight: int, field: str) -> int:
    try:
        return blkio_weight_to_io_weight(weight)
    except ValueError as e:
        raise ConfigError(f"{field}: {e}") from None


def _plan_hugetlb(
    limits: list[spec.HugepageLimit], cgroup_dir: str | None, writes: list[Write]
) -> None:
    # runc fs2/hugetlb.go: hugetlb.<size>.max, and .rsvd.max too where the kernel has
    # reservation accounting (5.7+); runc stops trying rsvd after the first ENOENT.
    for i, hl in enumerate(limits):
        field = f"{R}.hugepageLimits[{i}]"
        try:
            size = hugepage_size_name(hl.page_size)
        except ValueError as e:
            raise ConfigError(f"{field}.pageSize: {e}") from None
        writes.append((f"hugetlb.{size}.max", str(hl.limit), field))
        if _exists(cgroup_dir, f"hugetlb.{size}.rsvd.max"):
            writes.append((f"hugetlb.{size}.rsvd.max", str(hl.limit), field))


def _plan_rdma(rdma: dict[str, spec.Rdma], writes: list[Write]) -> None:
    # fscommon/rdma.go: "<device> hca_handle=N hca_object=M", only the limits given.
    for dev, lim in rdma.items():
        field = f"{R}.rdma.{dev}"
        if not dev or any(c.isspace() for c in dev) or "/" in dev:
            raise ConfigError(f"{field}: {dev!r} is not an RDMA device name")
        parts = [dev]
        if lim.hca_handles is not None:
            parts.append(f"hca_handle={lim.hca_handles}")
        if lim.hca_objects is not None:
            parts.append(f"hca_object={lim.hca_objects}")
        if len(parts) == 1:
            raise ConfigError(f"{field}: at least one of hcaHandles or hcaObjects is required")
        writes.append(("rdma.max", " ".join(parts), field))


def _available_controllers(cgroup_dir: str) -> set[str] | None:
    """cgroup.controllers of the directory, or of its parent while it does not exist yet."""
    for d in (cgroup_dir, os.path.dirname(cgroup_dir)):
        if os.path.isdir(d):
            try:
                with open(os.path.join(d, "cgroup.controllers")) as fh:
                    return set(fh.read().split())
            except OSError:
                return None
    return None


def _plan_unified(unified: dict[str, str], cgroup_dir: str | None, writes: list[Write]) -> None:
    """runc fs2.go setUnified / crun write_unified_resources: each key is a file name in the
    container's cgroup; values are written line by line, after everything else.

    Checked here: the key is a plain file name of the form CONTROLLER.PARAMETER (or an existing
    file); in an existing directory, a missing file whose controller is already enabled there
    (or a missing ``cgroup.*`` core file) is refused. A controller that is not enabled yet is
    checked by :func:`enable_controllers`, which refuses one that cannot be enabled.
    """
    exists = cgroup_dir is not None and os.path.isdir(cgroup_dir)
    available = _available_controllers(cgroup_dir) if exists and cgroup_dir else None
    for key, value in unified.items():
        field = f'{R}.unified["{key}"]'
        if not key or "/" in key or key in (".", "..") or "\0" in key:
            raise ConfigError(f"{field}: the key must be a cgroup file name (no '/', not '..')")
        if not _exists(cgroup_dir, key):
            ctrl, dot, param = key.partition(".")
            if not dot or not ctrl or not param:
                raise ConfigError(
                    f"{field}: not a file in the cgroup and not of the form CONTROLLER.PARAMETER"
                )
            if exists and (ctrl == "cgroup" or (available is not None and ctrl in available)):
                raise UnsupportedError(f"{field}: no such cgroup file {key} in {cgroup_dir}")
        writes.append((key, value, field))


# ---------------------------------------------------------------------------------------------
# Controllers
# ---------------------------------------------------------------------------------------------


def _controller_of(filename: str) -> str | None:
    ctrl, dot, _ = filename.partition(".")
    if not dot or ctrl == "cgroup":
        return None
    return ctrl


def controllers_by_field(writes: Iterable[Write]) -> dict[str, str]:
    """{controller: the first spec field that needs it}, in :data:`CONTROLLER_ORDER`."""
    found: dict[str, str] = {}
    for name, _value, field in writes:
        ctrl = _controller_of(name)
        if ctrl is not None and ctrl not in found:
            found[ctrl] = _field_root(field)
    return {c: found[c] for c in _ordered(found)}


def _field_root(field: str) -> str:
    """ "linux.resources.memory.swap" -> "linux.resources.memory" (unified keys kept whole)."""
    if field.startswith(f"{R}.unified"):
        return field.split(" + ")[0]
    parts = field.split(" + ")[0].split(".")
    return ".".join(parts[:3]).split("[")[0]


def _ordered(ctrls: Iterable[str]) -> list[str]:
    rank = {c: i for i, c in enumerate(CONTROLLER_ORDER)}
    return sorted(set(ctrls), key=lambda c: (rank.get(c, len(rank)), c))


def _read_set(path: str) -> set[str]:
    with open(path) as fh:
        return set(fh.read().split())


def enable_controllers(
    cgroup2_root: str,
    cgroup_dir: str,
    controllers: Iterable[str] | Mapping[str, str],
) -> list[tuple[str, str]]:
    """Make ``controllers`` available in ``cgroup_dir``: from the cgroup2 root down to the
    container's parent, write ``+ctrl`` to each ``cgroup.subtree_control`` lacking it.

    ``controllers`` may map each controller to the spec field that needs it (see
    :func:`controllers_by_field`), for the error message. A controller missing from an
    ancestor's ``cgroup.controllers`` raises :class:`UnsupportedError` before anything is
    written. Returns the ``(subtree_control path, "+ctrl")`` writes made, in order.
    """
    root = os.path.normpath(cgroup2_root)
    target = os.path.normpath(cgroup_dir)
    if not target.startswith(root + os.sep):
        raise ConfigError(f"cgroups: {cgroup_dir} is not below the cgroup2 root {cgroup2_root}")
    fields = dict(controllers) if isinstance(controllers, Mapping) else {}
    wanted = _ordered(controllers)
    if not wanted:
        return []
    ancestors = [root]
    for part in os.path.relpath(os.path.dirname(target), root).split(os.sep):
        if part and part != ".":
            ancestors.append(os.path.join(ancestors[-1], part))
    # Check first, so a refusal leaves the hierarchy untouched. Every ancestor must list the
    # controller in cgroup.controllers - except those below the first one we will enable it in,
    # which gain it only once the write above them is done (a real kernel does that).
    todo: list[tuple[str, str]] = []
    for ctrl in wanted:
        pending = False
        for anc in ancestors:
            if not pending:
                try:
                    available = _read_set(os.path.join(anc, "cgroup.controllers"))
                except FileNotFoundError:
                    available = set()
                if ctrl not in available:
                    field = fields.get(ctrl) or _CONTROLLER_FIELD.get(ctrl, f"{R}.unified")
                    hint = " (hybrid cgroup layout?)" if _is_hybrid(root) else ""
                    raise UnsupportedError(
                        f"{field}: the {ctrl} controller is not available in {anc}{hint}"
                    )
            try:
                enabled = _read_set(os.path.join(anc, "cgroup.subtree_control"))
            except FileNotFoundError:
                enabled = set()
            if ctrl not in enabled:
                todo.append((anc, ctrl))
                pending = True
    # Top-down: a controller can only be enabled where the parent has enabled it.
    depth = {a: i for i, a in enumerate(ancestors)}
    todo.sort(key=lambda t: (depth[t[0]], wanted.index(t[1])))
    done: list[tuple[str, str]] = []
    for anc, ctrl in todo:
        path = os.path.join(anc, "cgroup.subtree_control")
        try:
            _write_file(path, f"+{ctrl}")
        except OSError as e:
            field = fields.get(ctrl) or _CONTROLLER_FIELD.get(ctrl, f"{R}.unified")
            why = e.strerror or str(e)
            if e.errno == _errno.EBUSY:
                why += " (that cgroup has processes of its own: no internal processes rule)"
            raise UnsupportedError(
                f"{field}: cannot enable the {ctrl} controller: write '+{ctrl}' to {path}: {why}"
            ) from None
        done.append((path, f"+{ctrl}"))
    return done


def _is_hybrid(root: str) -> bool:
    return os.path.basename(root) == "unified"


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _write_file(path: str, data: str) -> None:
    """One write(2) on an existing file: O_TRUNC as runc, no O_CREAT (cgroupfs files are never
    created)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def _write_lines(path: str, value: str) -> None:
    """Each non-empty line as its own write(2) on one fd, as runc WriteFileByLine and crun do
    (cgroupfs parses one record per write). A single-line value is one write."""
    lines = [ln for ln in value.split("\n") if ln] or [value]
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        for line in lines:
            os.write(fd, line.encode())
    finally:
        os.close(fd)


def _write_error(cgroup_dir: str, name: str, value: str, field: str, e: OSError) -> Exception:
    shown = value if len(value) <= 60 else value[:57] + "..."
    shown = shown.replace("\n", "\\n")
    why = e.strerror or str(e)
    msg = f"{field}: cannot write {shown!r} to {name} in {cgroup_dir}: {why}"
    if e.errno in (_errno.ENOENT, _errno.EOPNOTSUPP, _errno.ENOTSUP):
        ctrl = _controller_of(name)
        if ctrl is not None:
            msg += f" (is the {ctrl} controller enabled, and does this kernel have {name}?)"
        return UnsupportedError(msg)
    if e.errno in (_errno.EINVAL, _errno.ERANGE):
        return ConfigError(msg + " (the kernel rejected the value)")
    return ContainerkitError(msg)


def apply(cgroup_dir: str, writes: Iterable[Write]) -> None:
    """Write the plan into ``cgroup_dir``, in order.

    ``cpu.max.burst`` refused with EINVAL before a planned ``cpu.max`` is retried after it
    (runc: a larger burst can exceed the old quota). Errors name file, value and spec field.
    """
    deferred: list[Write] = []
    plan = list(writes)
    cpu_max_later = {i for i, w in enumerate(plan) if w[0] == "cpu.max"}
    for i, (name, value, field) in enumerate(plan):
        path = os.path.join(cgroup_dir, name)
        try:
            _write_lines(path, value)
        except OSError as e:
            if (
                name == "cpu.max.burst"
                and e.errno == _errno.EINVAL
                and any(j > i for j in cpu_max_later)
            ):
                deferred.append((name, value, field))
                continue
            raise _write_error(cgroup_dir, name, value, field, e) from None
        if name == "cpu.max" and deferred:
            for d_name, d_value, d_field in deferred:
                try:
                    _write_lines(os.path.join(cgroup_dir, d_name), d_value)
                except OSError as e:
                    raise _write_error(cgroup_dir, d_name, d_value, d_field, e) from None
            deferred.clear()


# ---------------------------------------------------------------------------------------------
# Stats (runc `events --stats` "data" object, types/events.go, filled as fs2 does)
# ---------------------------------------------------------------------------------------------

_U64_MAX = 2**64 - 1


def _read(cgroup_dir: str, name: str) -> str | None:
    try:
        with open(os.path.join(cgroup_dir, name)) as fh:
            return fh.read()
    except OSError:
        return None


def _uint(text: str | None) -> int | None:
    """A single-value file: "max" is 2**64-1 (GetCgroupParamUint)."""
    if text is None:
        return None
    t = text.strip()
    if t == "max":
        return _U64_MAX
    try:
        return int(t)
    except ValueError:
        return None


def _kv(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def stats(cgroup_dir: str) -> dict[str, Any]:
    """cgroup statistics in the shape of runc's ``events --stats`` ``data`` (types.Stats).

    Best effort: a missing or unparsable file leaves its part at zero/empty.
    """
    out: dict[str, Any] = {
        "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
        "cpuset": {
            "cpu_exclusive": 0,
            "mem_hardwall": 0,
            "mem_exclusive": 0,
            "memory_migrate": 0,
            "memory_spread_page": 0,
            "memory_spread_slab": 0,
            "memory_pressure": 0,
            "sched_load_balance": 0,
            "sched_relax_domain_level": 0,
        },
        "memory": {
            "usage": {"limit": 0, "failcnt": 0},
            "swap": {"limit": 0, "failcnt": 0},
            "kernel": {"limit": 0, "failcnt": 0},
            "kernelTCP": {"limit": 0, "failcnt": 0},
            "event_count": {},
        },
        "pids": {},
        "blkio": {},
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": None,
    }
    _stats_cpu(cgroup_dir, out)
    _stats_cpuset(cgroup_dir, out)
    _stats_memory(cgroup_dir, out)
    _stats_pids(cgroup_dir, out)
    _stats_io(cgroup_dir, out)
    _stats_hugetlb(cgroup_dir, out)
    return out


def _stats_cpu(d: str, out: dict[str, Any]) -> None:
    st = _kv(_read(d, "cpu.stat"))
    usage = out["cpu"]["usage"]
    thr = out["cpu"]["throttling"]
    if "usage_usec" in st:
        usage["total"] = st["usage_usec"] * 1000
    usage["user"] = st.get("user_usec", 0) * 1000
    usage["kernel"] = st.get("system_usec", 0) * 1000
    for src, dst, scale in (
        ("nr_periods", "periods", 1),
        ("nr_throttled", "throttledPeriods", 1),
        ("throttled_usec", "throttledTime", 1000),
    ):
        if st.get(src):
            thr[dst] = st[src] * scale


def _parse_list(text: str | None) -> list[int]:
    """A cpuset list ("0-3,7") -> [0, 1, 2, 3, 7]."""
    out: list[int] = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            return []
    return out


def _stats_cpuset(d: str, out: dict[str, Any]) -> None:
    cpus = _parse_list(_read(d, "cpuset.cpus.effective"))
    mems = _parse_list(_read(d, "cpuset.mems.effective"))
    if cpus:
        out["cpuset"]["cpus"] = cpus
    if mems:
        out["cpuset"]["mems"] = mems


def _stats_memory(d: str, out: dict[str, Any]) -> None:
    mem = out["memory"]
    raw = _kv(_read(d, "memory.stat"))
    if raw:
        mem["raw"] = raw
        if raw.get("file"):
            mem["cache"] = raw["file"]
    current = _uint(_read(d, "memory.current"))
    if current is not None:
        mem["usage"]["usage"] = current
        mem["usage"]["limit"] = _uint(_read(d, "memory.max")) or 0
        peak = _uint(_read(d, "memory.peak"))
        if peak:
            mem["usage"]["max"] = peak
    events = _kv(_read(d, "memory.events"))
    if events:
        mem["usage"]["failcnt"] = events.get("max", 0)
        mem["event_count"] = {
            k: events.get(k, 0) for k in ("low", "high", "max", "oom", "oom_kill")
        }
    swap = _uint(_read(d, "memory.swap.current"))
    if swap is not None:
        # fs2 reports v1-style memory+swap for compatibility.
        swap_limit = _uint(_read(d, "memory.swap.max")) or 0
        mem_limit = mem["usage"]["limit"]
        total = swap + (current or 0)
        mem["swap"]["usage"] = total
        if swap_limit != _U64_MAX:
            swap_limit = min(swap_limit + mem_limit, _U64_MAX)
        mem["swap"]["limit"] = swap_limit
        mem["swap"]["failcnt"] = _kv(_read(d, "memory.swap.events")).get("max", 0)


def _stats_pids(d: str, out: dict[str, Any]) -> None:
    current = _uint(_read(d, "pids.current"))
    if current is None:
        procs = _read(d, "cgroup.procs")
        if procs is not None:
            out["pids"]["current"] = len(procs.split())
        return
    out["pids"]["current"] = current
    limit = _uint(_read(d, "pids.max"))
    if limit and limit != _U64_MAX:  # "max" is reported as 0 (no limit), as runc does
        out["pids"]["limit"] = limit


def _stats_io(d: str, out: dict[str, Any]) -> None:
    text = _read(d, "io.stat")
    if not text:
        return
    nbytes: list[dict[str, Any]] = []
    nios: list[dict[str, Any]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        major_s, _, minor_s = parts[0].partition(":")
        try:
            major, minor = int(major_s), int(minor_s)
        except ValueError:
            continue
        for item in parts[1:]:
            key, _, val = item.partition("=")
            table = {"rbytes": nbytes, "wbytes": nbytes, "rios": nios, "wios": nios}.get(key)
            if table is None:
                continue
            try:
                value = int(val)
            except ValueError:
                continue
            op = "Read" if key[0] == "r" else "Write"
            table.append({"major": major, "minor": minor, "op": op, "value": value})
    if nbytes:
        out["blkio"]["ioServiceBytesRecursive"] = nbytes
    if nios:
        out["blkio"]["ioServicedRecursive"] = nios


def _stats_hugetlb(d: str, out: dict[str, Any]) -> None:
    try:
        names = os.listdir(d)
    except OSError:
        return
    sizes = sorted(
        {
            n.split(".")[1]
            for n in names
            if n.startswith("hugetlb.") and n.endswith(".current") and n.count(".") == 2
        }
    )
    for size in sizes:
        entry: dict[str, int] = {"failcnt": _kv(_read(d, f"hugetlb.{size}.events")).get("max", 0)}
        usage = _uint(_read(d, f"hugetlb.{size}.current"))
        if usage:
            entry["usage"] = usage
        out["hugetlb"][size] = entry
