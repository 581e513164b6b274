"""The CLI's hot paths import only what they use: every verb podman and the containerd
shim call (create, start, state, exec, kill, delete, run) runs without typing, json, re, enum
and the other stdlib modules whose import costs milliseconds, on the default config.json
(start-up time is most of what a CLI call costs: issue 5's targets against runc).

Each call runs as the installed launcher runs it (``python -I -S``, the paths baked in)
and writes the names in ``sys.modules`` at exit to a file; nothing is timed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

# each costs a CLI call 0.5 to 5 ms of import (with what it imports in turn)
HEAVY = ("typing", "json", "re", "enum", "dataclasses", "functools", "collections",
         "socket", "weakref", "contextlib", "inspect", "logging", "argparse", "subprocess",
         "signal", "importlib", "warnings", "tempfile", "shutil", "pathlib", "types",
         # os builds _collections_abc's ABCs (~0.9 ms): posix and containerkit.pathnames
         "os", "posixpath", "_collections_abc",
         # cheaper (~0.1 ms each), but nothing of the default config needs them
         "struct", "resource", "containerkit.native.timens", "containerkit.native.idmap")
# what only `create`/`run` need: the spec model, the init's plan, the cffi module
CREATE_ONLY = ("containerkit.spec", "containerkit.native.plan", "_cffi_backend",
               "containerkit.cgroups.resources")


def _call(argv: list[str], out: Path) -> tuple[int, set[str], str]:
    """``containerkit argv`` as the launcher runs it; the modules it had at exit."""
    paths = [p for p in sys.path if p]
    code = (f"import sys\nsys.path[:0] = {paths!r}\n"
            "from containerkit.cli.main import main\n"
            "rc = main()\n"
            f"with open({str(out)!r}, 'w') as f:\n"
            "    f.write(' '.join(sys.modules))\n"
            "sys.exit(rc)\n")
    # stderr in a file, not a pipe: a created init inherits it (a pipe would not see EOF)
    with open(out.with_suffix(".err"), "w+") as err:
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, *argv], env={},
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=err, timeout=120, cwd="/")
        err.seek(0)
        return proc.returncode, set(out.read_text().split()), err.read()


def test_lifecycle_verbs_import_no_heavy_module(make_bundle: Callable[..., str],
                                                state_root: str, tmp_path: Path,
                                                leak_check: Callable[[], None]) -> None:
    bundle = make_bundle(["/bin/sleep", "10"])
    cid = f"perf-imports-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "modules"
    verbs = [["create", "-b", bundle, cid], ["state", cid], ["start", cid],
             ["exec", cid, "/bin/true"], ["kill", cid, "KILL"], ["delete", "--force", cid],
             ["run", "-b", make_bundle(["/bin/true"]), cid]]
    try:
        for verb in verbs:
            rc, modules, err = _call(["--root", state_root, *verb], out)
            assert rc == 0, (verb, err)
            assert sorted(modules.intersection(HEAVY)) == [], verb[0]
            if verb[0] == "exec":   # the spec model and the plan's helpers, no mounts
                assert "containerkit.native.rootfs" not in modules
                assert not {"array", "containerkit.native.console",
                            "containerkit.native.seccomp"} & modules
            elif verb[0] not in ("create", "run"):
                assert sorted(modules.intersection(CREATE_ONLY)) == [], verb[0]
            else:   # the default config's resources are device rules only: no planner
                assert "containerkit.cgroups.resources" not in modules, verb[0]
    finally:
        subprocess.run([sys.executable, "-m", "containerkit", "--root", state_root,
                        "delete", "--force", cid], capture_output=True, timeout=120)
    leak_check()
