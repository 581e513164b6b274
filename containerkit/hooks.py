"""OCI hooks that run here, in the runtime's namespaces: ``prestart`` (deprecated),
``createRuntime`` (while the init waits before pivot_root), ``poststart``, ``poststop``.

Each hook gets the container's state JSON on stdin, its own ``args`` (argv, ``path``
when empty) and ``env`` (nothing else), and its ``timeout``. ``createContainer`` and
``startContainer`` run inside the container: the init itself forks and execs them
(``ops.hook``, as runc does), with the same stdin, args, env and timeout."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from typing import Any

from . import spec as oci
from .errors import ContainerkitError

log = logging.getLogger("containerkit")


def run(stage: str, hooks: list[oci.Hook], state: dict[str, Any]) -> None:
    """Run ``hooks`` in order; the first failure raises with the stage, index and path."""
    data = json.dumps(state).encode()
    for i, hook in enumerate(hooks):
        where = f"hooks.{stage}[{i}]: {hook.path}"
        env = dict(e.split("=", 1) for e in hook.env if "=" in e)
        try:
            # a process group of its own: a timeout kills what the hook started too
            proc = subprocess.Popen(hook.args or [hook.path], executable=hook.path, env=env,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, close_fds=True,
                                    process_group=0)
        except OSError as e:
            raise ContainerkitError(f"{where}: {e.strerror.lower()}") from None
        try:
            _, err = proc.communicate(data, timeout=hook.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise ContainerkitError(f"{where}: timed out after {hook.timeout}s") from None
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        if proc.returncode != 0:
            said = err.decode(errors="replace").strip().splitlines()
            detail = f": {said[-1]}" if said else ""
            if proc.returncode < 0:
                raise ContainerkitError(f"{where}: killed by signal {-proc.returncode}")
            raise ContainerkitError(f"{where}: exited with status {proc.returncode}{detail}")


def run_logged(stage: str, hooks: list[oci.Hook], state: dict[str, Any]) -> None:
    """poststop: a failure is logged and the operation goes on (runtime-spec)."""
    try:
        run(stage, hooks, state)
    except ContainerkitError as e:
        log.warning("%s", e)
