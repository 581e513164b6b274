"""The init's process identity steps: cwd, rlimits, the bounding set, personality, I/O
priority, scheduler, seccomp (without no_new_privs), user and groups, capabilities,
no_new_privs. Run after pivot_root, before the executable lookup.
"""

from __future__ import annotations

from .. import spec as oci
from .. import syscalls
from ..errors import SpecError, UnsupportedError
from . import capabilities as caps
from . import ops

# numa and seccomp are imported where used: each module on the create path costs ~0.2 ms
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .plan import Plan

# linux/resource.h (what Python's resource module has, RLIMIT_OFILE too: a test checks;
# not imported for it, an extension module that create would load for this table)
RLIMITS = {"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
           "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
           "RLIMIT_OFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
           "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
           "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15}
PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}


def _identity_steps(plan: Plan, linux: oci.Linux | None, proc: oci.Process) -> None:
    """personality, I/O priority and scheduler: per-task settings made before the
    capabilities are dropped (an RT policy needs CAP_SYS_NICE)."""
    pol = linux.memory_policy if linux is not None else None
    if pol is not None:
        from . import numa

        op, detail = numa.mempolicy_op(pol)
        plan.add("memoryPolicy", op, detail=detail)
    pers = linux.personality if linux is not None else None
    if pers is not None:
        if pers.flags:
            raise UnsupportedError("linux.personality.flags: not supported (runc has none)")
        if pers.domain:
            plan.add("personality", ops.personality(PERSONALITIES[pers.domain]),
                     detail=pers.domain)
    io = proc.io_priority
    if io is not None:
        level = io.priority or 0
        if not 0 <= level <= 7:
            raise SpecError(f"config.json: process.ioPriority.priority: {level} not in 0..7")
        plan.add("ioPriority", ops.ioprio(IOPRIO_CLASSES[io.class_] << 13 | level),
                 detail=f"{io.class_} {level}")
    sch = proc.scheduler
    if sch is not None:
        policy = SCHED_POLICIES.get(sch.policy)
        if policy is None:
            raise UnsupportedError(f"process.scheduler.policy: {sch.policy} is not in the "
                                   "Linux kernel")
        flags = 0
        for name in sch.flags:
            flags |= SCHED_FLAGS[name]
        plan.add("scheduler", ops.scheduler(policy, flags, sch.nice or 0, sch.priority or 0,
                                            sch.runtime or 0, sch.deadline or 0,
                                            sch.period or 0), detail=sch.policy)



CAP_SYS_RESOURCE = 24


def _check_raisable(num: int, hard: int, field: str, name: str,
                    in_userns: bool = False) -> None:
    """A hard limit above ours needs CAP_SYS_RESOURCE; say so before the clone, not as an
    EPERM from the init (these machines' bounding set lacks it, for one; an init in a
    user namespace never has it where it counts, in the host's)."""
    _, ours = syscalls.getrlimit(num)
    if ours == syscalls.RLIM_INFINITY or 0 <= hard <= ours:
        return
    if in_userns:
        raise UnsupportedError(
            f"{field}: {name} hard limit {hard} is above this process's {ours} and an "
            "init in a user namespace cannot raise it (no host CAP_SYS_RESOURCE)")
    from .userns import effective_caps

    if not effective_caps() >> CAP_SYS_RESOURCE & 1:
        raise UnsupportedError(
            f"{field}: {name} hard limit {hard} is above this process's {ours} and "
            "raising it needs CAP_SYS_RESOURCE, which this process does not have")



def process_steps(plan: Plan, spec: oci.Spec, proc: oci.Process) -> None:
    add = plan.add
    cwd = proc.cwd or "/"
    if not cwd.startswith("/"):
        raise SpecError(f"config.json: process.cwd: {cwd!r} must be an absolute path")
    add("cwd", ops.chdir(cwd.encode()), detail=cwd)

    for i, rl in enumerate(proc.rlimits):
        num = RLIMITS.get(rl.type)
        if num is None:
            raise SpecError(f"config.json: process.rlimits[{i}].type: unknown {rl.type!r}")
        if rl.soft > rl.hard:
            raise SpecError(f"config.json: process.rlimits[{i}]: soft {rl.soft} above hard "
                            f"{rl.hard}")
        _check_raisable(num, rl.hard, f"process.rlimits[{i}]", rl.type, plan.in_userns)
        add("rlimits", ops.setrlimit(num, rl.soft, rl.hard), detail=rl.type)

    c = proc.capabilities
    all_caps = (1 << (caps.last_cap() + 1)) - 1
    if c is not None:
        bounding = caps.mask(c.bounding, "process.capabilities.bounding") \
            if c.bounding is not None else all_caps
        eff = caps.mask(c.effective, "process.capabilities.effective")
        perm = caps.mask(c.permitted, "process.capabilities.permitted")
        inh = caps.mask(c.inheritable, "process.capabilities.inheritable")
        amb = caps.mask(c.ambient, "process.capabilities.ambient")
        drop = all_caps & ~bounding
    else:  # no capabilities object: the process keeps none (as runc)
        eff = perm = inh = amb = 0
        drop = all_caps
    if drop:
        add("capabilities", ops.capbset_drop(drop), detail="bounding")

    u = proc.user
    change_ids = bool(u.uid or u.gid or u.additional_gids)
    linux = spec.linux
    _identity_steps(plan, linux, proc)
    if linux is not None and linux.seccomp is not None and not proc.no_new_privileges:
        # without no_new_privs seccomp(2) needs CAP_SYS_ADMIN: load before the user and
        # capability ops drop it (runc does the same), so the filter must allow them
        from .seccomp import load_op

        add("seccomp", load_op(linux.seccomp, plan), detail="load filter")
    # the caller's pipes become the user's, so that it can reopen /dev/stdout (runc)
    add("stdio owner", ops.stdio_owner(u.uid), detail=str(u.uid))
    add("user", ops.set_user(u.uid, u.gid, list(u.additional_gids), change_ids,
                             plan.setgroups_denied),
        detail=f"{u.uid}:{u.gid}")
    add("capabilities", ops.set_caps(eff, perm, inh, amb),
        detail="effective/permitted/inheritable/ambient")
    if proc.no_new_privileges:
        add("noNewPrivileges", ops.no_new_privs())

