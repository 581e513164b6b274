"""Build the plan of a process exec'd into a running container (runc's setns init).

The child is cloned by the parent straight into the container's cgroup (CLONE_INTO_CGROUP)
and pid namespace (the parent thread's pid_for_children, ``syscalls.spawn(pidns_fd=)``),
then, in C:

1. PR_SET_DUMPABLE 0, before anything of the container's is joined: until execve this
   child is a copy of the caller (its /proc/<pid>/exe is the host's interpreter, its fds
   the host's). Non-dumpable, /proc/<pid>/{exe,fd,mem,...} and ptrace need
   CAP_SYS_PTRACE over it, which a process of the container lacks unless it was given
   it (the CVE-2019-5736 class). Dumpable is per mm: never the shared-mm child.
2. oom_score_adj (with the caller's capabilities still), then setns(pidfd of the init,
   all the namespaces it has that differ from ours): one call that joins them together,
   the user namespace first (Linux 5.8). Joining the mount namespace moves root and cwd
   to its root, which is the container's ``/`` (it was pivoted into). The pidfd is
   closed right after. A terminal is made then, from the container's /dev/ptmx.
3. The process's own identity, as for the init (``identity.process_steps``): cwd,
   rlimits, bounding set, user and groups, capabilities, no_new_privs, and the
   container's ``linux.seccomp`` (as runc applies it to exec'd processes).
4. The executable looked up with the process's PATH inside the container; execve.

The parent learns the outcome on the sync socket: ERROR, or end of file at execve.
"""

from __future__ import annotations

import posix

from .. import spec as oci
from .. import syscalls as s
from ..errors import ContainerkitError
from . import ops, userns
from .identity import process_steps
from .plan import Plan, check_process, program_steps

# numa, console and seccomp are imported where a process needs them: each costs every
# exec ~0.2 ms (console's fd passing brought array and collections, ~1.4 ms)

PR_SET_DUMPABLE = 4

# /proc/<pid>/ns/<name> -> setns flag, in no particular order: the kernel orders them
NAMESPACE_FILES = {
    "user": s.CLONE_NEWUSER, "mnt": s.CLONE_NEWNS, "net": s.CLONE_NEWNET,
    "ipc": s.CLONE_NEWIPC, "uts": s.CLONE_NEWUTS, "cgroup": s.CLONE_NEWCGROUP,
    "time": s.CLONE_NEWTIME,
}


def build_exec(spec: oci.Spec, proc: oci.Process, *, init_pidfd: int, ns_flags: int,
               sync_fd: int, stdio: tuple[int, int, int], placed_in_cgroup: bool = True,
               preserve_fds: int = 0, listen_fds: int = 0, hold_fd: int = -1,
               fork_into_pidns: bool = False, keyring: str | None = None) -> Plan:
    """The exec'd child's steps. ``spec`` is the container's (for ``linux.seccomp`` and
    ``linux.personality``), ``proc`` the process to run; ``ns_flags`` the namespaces of
    the init (``init_pidfd``) to join, the pid namespace excepted (joined at the clone).

    ``preserve_fds``: fds 3..3+N-1 of the caller cross over (runc's --preserve-fds), the
    first ``listen_fds`` of them socket-activation fds (LISTEN_FDS). ``proc.terminal``:
    a pty from the container's /dev/ptmx becomes the process's controlling terminal and
    stdio, its master goes to the parent (CONSOLE); unlike the init's, no /dev/console.

    ``proc.execCPUAffinity``: ``initial`` from the first step, ``final`` right before
    execve (with only ``initial``, back to the CPUs the child was born with).

    ``hold_fd`` (tests only): after every step but the final affinity, seccomp (with
    no_new_privs) and execve, send CREATED on the sync socket and wait for one byte on
    ``hold_fd``, so that a test can look at the process while it is inside the
    container and has not exec'd yet.

    ``fork_into_pidns`` (a rootless caller, which cannot join the pid namespace itself):
    the child joins it with the others (pid_for_children), becomes root of the user
    namespace and forks the process (INIT, as ``plan.py``'s two stages).

    ``keyring``: the init's session keyring, joined (runc's setns init) unless the
    container keeps the caller's (--no-new-keyring: None).
    """
    check_process(proc)
    plan = Plan(clone_flags=0)
    plan.sync_fd = sync_fd
    passed = range(3, 3 + preserve_fds)
    if not 0 <= listen_fds <= preserve_fds:
        raise ContainerkitError(f"listen_fds {listen_fds}: must be among the "
                                f"{preserve_fds} preserved fds")
    keep = (sync_fd,) if hold_fd < 0 else (sync_fd, hold_fd)
    try:
        return _build_exec(plan, spec, proc, keep, passed, init_pidfd=init_pidfd,
                           ns_flags=ns_flags, sync_fd=sync_fd, stdio=stdio,
                           placed_in_cgroup=placed_in_cgroup, preserve_fds=preserve_fds,
                           listen_fds=listen_fds, hold_fd=hold_fd,
                           fork_into_pidns=fork_into_pidns, keyring=keyring)
    except BaseException:
        plan.close()
        raise


def _build_exec(plan: Plan, spec: oci.Spec, proc: oci.Process, keep: tuple[int, ...],
                passed: range, *, init_pidfd: int, ns_flags: int, sync_fd: int,
                stdio: tuple[int, int, int], placed_in_cgroup: bool, preserve_fds: int,
                listen_fds: int, hold_fd: int, fork_into_pidns: bool,
                keyring: str | None) -> Plan:
    linux = spec.linux
    add = plan.add
    image = plan.open_image()
    held = keep                             # what the process keeps once in the container
    if proc.oom_score_adj is not None:
        keep = (*keep, plan.proc_fd())      # until the oomScoreAdj write, below
    ours = [fd for fd in (*keep, init_pidfd, image) if fd in passed]
    if ours:
        raise ContainerkitError(f"preserved fds 3..{2 + preserve_fds}: fd {ours[0]} is the "
                                "runtime's own, not the caller's (was it open?)")
    initial = final = None
    if proc.exec_cpu_affinity is not None:
        from . import numa

        initial, final = numa.exec_cpus(proc.exec_cpu_affinity)
        if initial is not None and final is None:
            final = posix.sched_getaffinity(0)    # what the kernel gave the child: ours
    add("reset signals", ops.reset_signals())
    if initial is not None:     # the setup runs on these CPUs (runtime-spec)
        add("execCPUAffinity", ops.affinity(numa.mask_words(initial)), detail="initial")
    add("dumpable", ops.prctl(PR_SET_DUMPABLE, 0), detail="PR_SET_DUMPABLE 0")
    if not proc.terminal:           # with a terminal, the pty's peer becomes 0, 1 and 2
        add("stdio", ops.stdio(stdio))
    if not placed_in_cgroup:
        add("wait for cgroup", ops.wait_parent(sync_fd))
    add("fds", ops.close_fds_except((*keep, init_pidfd, image, *passed)))
    # ck-init from here on, before joining anything of the container's: the process is
    # born outside its pid namespace and forked into it (driver.exec), so no process of
    # the container ever sees this one as a copy of the caller (its /proc/<pid>/exe the
    # host's interpreter), not even one with CAP_SYS_PTRACE
    plan.steps.append(plan.reexec_step((*keep, init_pidfd, *passed)))
    # execve made the process dumpable again: not while it is still setting up
    add("dumpable", ops.prctl(PR_SET_DUMPABLE, 0), detail="PR_SET_DUMPABLE 0")
    if proc.oom_score_adj is not None:
        # while this process has the caller's capabilities (a joined user namespace
        # would leave it none over the host's)
        add("oomScoreAdj", ops.write_proc(plan.proc_fd(), b"self/oom_score_adj",
                                          str(proc.oom_score_adj).encode()),
            detail=str(proc.oom_score_adj))
    if fork_into_pidns:
        ns_flags |= s.CLONE_NEWPID
    if ns_flags:
        add("setns", ops.setns(init_pidfd, ns_flags), detail="the container's namespaces")
    if ns_flags & s.CLONE_NEWUSER:
        userns.enter_steps(plan, init_pidfd)     # root there, as the init (userns.py)
    if fork_into_pidns:
        plan.forks_init = True
        add("fork", ops.fork_init(0, sync_fd), detail="into the pid namespace")
    add("fds", ops.close_fds_except((*held, *passed)))  # not the pidfd (the host's handle)
    add("setsid", ops.setsid())         # a session of its own, as runc's exec'd processes
    if keyring is not None:
        add("keyring", ops.join_keyring(keyring.encode(), 0), detail=keyring)
    if proc.terminal:
        from .console import console_steps

        plan.steps += console_steps(proc, sync_fd, console=False)  # /dev/console: init's
    process_steps(plan, spec, proc)
    env = program_steps(plan, proc, preserve_fds, listen_fds, "")
    if hold_fd >= 0:
        add("hold", ops.report_created_and_wait(sync_fd, hold_fd), detail="test hold")
    if final is not None:       # inside the container's cgroup, before execve (numa: above)
        add("execCPUAffinity", ops.affinity(numa.mask_words(final)), detail="final")
    if linux is not None and linux.seccomp is not None and proc.no_new_privileges:
        from .seccomp import load_op

        add("seccomp", load_op(linux.seccomp, plan), detail="load filter")
    umask = proc.user.umask if proc.user.umask is not None else 0o022
    add("exec", ops.execve(tuple(a.encode() for a in proc.args),
                           tuple(k + b"=" + v for k, v in env.items()), umask),
        detail=repr(proc.args[0]))
    return plan
