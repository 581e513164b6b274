"""NativeDriver: the in-process ExecutionDriver (parent side).

create: plan -> cgroup dir -> exec FIFO + sync socket -> clone3 into the cgroup with
the new namespaces, the child running the plan in C (``syscalls.spawn``) -> wait for
CREATED. start: release the FIFO; when this process created the init, wait until
execve closed the sync socket. delete: kill what is left in the cgroup, reap, remove
the cgroup.
"""

from __future__ import annotations

import os
import signal
from typing import IO, TYPE_CHECKING

from .. import syscalls
from ..cgroups import Cgroup, container_cgroup_path
from ..errors import ContainerkitError
from ..process import Process
from . import sync
from .ops import OpArray
from .plan import build

if TYPE_CHECKING:
    from ..container import Container

Stdio = IO[bytes] | IO[str] | int | None


def _fd(stream: Stdio, default: int) -> int:
    if stream is None:
        return default
    if isinstance(stream, int):
        return stream
    return stream.fileno()


class NativeDriver:
    """Runs containers from this Python process: no runtime binary involved."""

    def cgroup_for(self, container: Container) -> Cgroup:
        linux = container.spec.linux
        return Cgroup(container_cgroup_path(container.id,
                                            linux.cgroups_path if linux else None))

    def create(self, container: Container) -> Process:
        fifo = container.statedir.fifo_path
        os.mkfifo(fifo, 0o600)
        fifo_fd = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)  # a reader+writer: reads block
        parent_sock, child_sock = sync.channel()
        cgroup_fd = -1
        plan = None
        cgroup = self.cgroup_for(container)
        try:
            stdio = (_fd(container.stdin, 0), _fd(container.stdout, 1), _fd(container.stderr, 2))
            into_cgroup = syscalls.clone3_into_cgroup()
            plan = build(container.spec, rootfs=container.rootfs, bundle=container.bundle,
                         cgroup_dir=cgroup.path, sync_fd=child_sock.fileno(), fifo_fd=fifo_fd,
                         stdio=stdio, placed_in_cgroup=into_cgroup)
            ops = OpArray(plan.steps)
            cgroup_fd = cgroup.create()
            # recorded before anything runs in it: a create killed half-way is cleaned up
            # by remove_abandoned (delete --force) through this link
            os.symlink(cgroup.path, os.path.join(container.statedir.path, "cgroup"))
            linux = container.spec.linux
            if linux is not None and linux.resources is not None:
                cgroup.set_resources(linux.resources)   # limits hold from the first instruction
            pid, pidfd, placed = syscalls.spawn(plan.clone_flags,
                                                cgroup_fd if into_cgroup else -1,
                                                ops.ops, child_sock.fileno())
        except BaseException:
            parent_sock.close()
            if cgroup_fd >= 0:
                cgroup.remove()
            raise
        finally:
            child_sock.close()
            os.close(fifo_fd)
            if plan is not None:
                plan.close()
            if cgroup_fd >= 0:
                os.close(cgroup_fd)
        process = Process(pid, pidfd, is_child=True)
        try:
            if placed != into_cgroup:   # clone3 vanished since the probe: the plan is wrong
                raise ContainerkitError("clone3: CLONE_INTO_CGROUP was probed but not "
                                        "available at the clone")
            if not placed:              # the child waits in "wait for cgroup"
                cgroup.add(pid)
                parent_sock.send(sync.CGROUP)
            sync.expect_created(parent_sock)
        except BaseException:
            parent_sock.close()
            process.signal(signal.SIGKILL)
            process.wait()
            cgroup.remove()
            raise
        container.cgroup_path = cgroup.path
        container._sync = parent_sock
        return process

    def start(self, container: Container) -> None:
        sync.release(container.statedir.fifo_path)
        sock = container._sync
        if sock is not None:  # we created the init: learn whether execve worked
            container._sync = None
            try:
                sync.raise_if_error(sync.read_message(sock))
            finally:
                sock.close()

    def delete(self, container: Container) -> None:
        if container._sync is not None:
            container._sync.close()
            container._sync = None
        init = container.init
        if init is not None and init.alive():
            try:
                init.signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        if container.cgroup_path:
            Cgroup(container.cgroup_path).remove()
        if init is not None and init.is_child:
            init.wait()
