"""Helpers shared by the integration tests (tests/ is on sys.path: conftest.py is here)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

# the installed command (./dev writes it beside the venv's python), else the module
CLI_SCRIPT = Path(sys.executable).with_name("containerkit")
CLI = [str(CLI_SCRIPT)] if CLI_SCRIPT.exists() else [sys.executable, "-m", "containerkit"]

# a container that counts, so freezing can be seen from outside
COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /dev/shm/n; sleep 0.02; done"


def counter(pid: int) -> str:
    """The container's counter, read from outside through /proc/<pid>/root."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with open(f"/proc/{pid}/root/dev/shm/n") as f:
                value = f.read().strip()
            if value:
                return value
        except FileNotFoundError:
            pass
        assert time.monotonic() < deadline, "the counter never appeared"
        time.sleep(0.02)


def advances(pid: int) -> bool:
    first = counter(pid)
    time.sleep(0.3)
    return counter(pid) != first


def sh(script: str) -> list[str]:
    """A shell script as process.args (dedented: tests write it indented)."""
    return ["/bin/sh", "-c", textwrap.dedent(script)]


def run_container(bundle: str, root: str, cid: str = "t1", driver: Any = None, *,
                  stdin: int | None = None, timeout: float = 30) -> tuple[int, str]:
    """Create, start, wait and delete through the library: (exit status, what the
    container wrote on stdout and stderr). The output goes to a file in the bundle, not
    a pipe, so that a process left holding it cannot make the reader wait."""
    from containerkit import Bundle, NativeDriver, new_container

    config = Bundle(bundle, id=cid, root=root)
    out = os.path.join(bundle, f"{cid}.out")
    with open(out, "w+b") as f:
        with new_container(config, config.graph_driver(), driver or NativeDriver()) as c:
            c.stdout = f
            c.stderr = f
            if stdin is not None:
                c.stdin = stdin
            c.create()
            c.start()
            status = c.wait(timeout=timeout)
        f.seek(0)
        return status or 0, f.read().decode()


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def assert_one_error_line(res: Any, *needles: str) -> None:
    """A refused command (anything with returncode and stderr): nonzero, no traceback,
    one line "containerkit: ..." that contains each of ``needles``."""
    assert res.returncode != 0, res
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("containerkit: "), lines
    for needle in needles:
        assert needle in lines[0], lines


def run_to_files(cmd: list[str], out: Any, err: Any, *, stdin: bytes | None = None,
                 env: dict[str, str] | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with stdout and stderr to the files ``out`` and ``err``, not pipes: a
    created container (or conmon) keeps the caller's stdio open and would make a pipe
    reader wait for it. stdin: the bytes to feed, else /dev/null."""
    with open(out, "w+") as fo, open(err, "w+") as fe:
        proc = subprocess.run(cmd, input=stdin, stdout=fo, stderr=fe, env=env,
                              timeout=timeout,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
        fo.seek(0)
        fe.seek(0)
        return subprocess.CompletedProcess(proc.args, proc.returncode, fo.read(), fe.read())


def is_cgroup2(path: str) -> bool:
    """Whether ``path`` is a cgroup2 mount point (in this process's mount namespace)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if pre.split()[4] == path:
                return post.startswith("cgroup2 ")
    return False
