"""Process: a real pid and its pidfd.

The pidfd makes signals and waits immune to pid reuse. When this Python process is
the parent (it cloned the init), ``wait()`` reaps and gives the exit status; a
process attached later (``load_container``) can only be waited for, not reaped, so
its ``returncode`` stays None.
"""

from __future__ import annotations

import _signal  # not signal: its enums import enum (~3 ms for `state`/`kill`)
import posix
import select

TYPE_CHECKING = False  # typing is not imported at run time: the CLI would pay ~2 ms
if TYPE_CHECKING:
    from typing import IO


def proc_stat(pid: int) -> tuple[str, int]:
    """From one read of /proc/<pid>/stat: the one-letter state ('Z' is a zombie) and
    field 22, the start time in clock ticks since boot; ('', 0) if the pid is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return "", 0
    # the command name (field 2) may hold spaces and ')': split after the last ')'
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])


def proc_start_time(pid: int) -> int:
    return proc_stat(pid)[1]


def proc_state(pid: int) -> str:
    return proc_stat(pid)[0]


def status_from_wait(status: int) -> int:
    """Exit code, or 128+N when signal N ended the process (as shells and runc report)."""
    if posix.WIFSIGNALED(status):
        return 128 + posix.WTERMSIG(status)
    return posix.waitstatus_to_exitcode(status)


class Process:
    """A process of a container: ``pid``, ``start()``, ``wait()``, ``signal()``, ``returncode``."""

    def __init__(self, pid: int, pidfd: int, *, is_child: bool, start_time: int = 0) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.is_child = is_child
        self.start_time = start_time or proc_start_time(pid)
        self.returncode: int | None = None
        self.terminal: IO[bytes] | None = None   # an exec'd process's pty master (no socket)

    @classmethod
    def attach(cls, pid: int, start_time: int) -> Process | None:
        """Open a pidfd for ``pid`` if it is still the process that started at ``start_time``."""
        try:
            pidfd = posix.pidfd_open(pid)
        except (ProcessLookupError, OSError):
            return None
        # checked after opening the pidfd: if the start time matches now, the pidfd
        # refers to that very process even if the pid is recycled later.
        state, started = proc_stat(pid)
        if started != start_time or state in ("Z", "X", ""):
            posix.close(pidfd)
            return None
        return cls(pid, pidfd, is_child=False, start_time=start_time)

    def alive(self) -> bool:
        if self.returncode is not None or self.pidfd < 0:
            return False
        readable, _, _ = select.select([self.pidfd], [], [], 0)
        return not readable

    def signal(self, sig: int) -> None:
        if self.returncode is not None or self.pidfd < 0:
            raise ProcessLookupError(f"process {self.pid} has exited")
        _signal.pidfd_send_signal(self.pidfd, sig)

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the process exits. Returns the exit status (see ``status_from_wait``),
        or None for a process that is not our child (nobody can tell us its status)."""
        if self.returncode is not None:
            return self.returncode
        if self.pidfd < 0:
            return None
        if timeout is not None:
            readable, _, _ = select.select([self.pidfd], [], [], timeout)
            if not readable:
                raise TimeoutError(f"process {self.pid} still running after {timeout}s")
        if self.is_child:
            while True:
                try:
                    _, status = posix.waitpid(self.pid, 0)
                    break
                except InterruptedError:
                    continue
                except ChildProcessError:      # reaped elsewhere (e.g. a SIGCHLD handler)
                    status = -1
                    break
            self.returncode = status_from_wait(status) if status != -1 else -1
            self.close()
            return self.returncode
        select.select([self.pidfd], [], [])
        self.close()
        return None

    def close(self) -> None:
        if self.pidfd >= 0:
            posix.close(self.pidfd)
            self.pidfd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<Process pid={self.pid} returncode={self.returncode}>"
