"""Writes the fast ``containerkit`` launcher: ``python -m containerkit.cli.launcher PATH``.

pip's console script starts the interpreter with ``site``: it processes every ``.pth``
file of the environment (setuptools' distutils hack, the editable install's path),
imports ``sitecustomize`` (Debian's apport hook) and reads the environment — ~1.5 ms of
the ~10 ms a ``state`` call costs, paid on every call podman and the containerd shim make.
This launcher runs the same ``main`` with ``-I -S`` (isolated, no site) and the import
paths ``site`` would have added baked in, so it also needs no environment at all (podman
calls the runtime with no PATH and no HOME). ``./dev`` writes it over pip's script.

It also raises the cyclic garbage collector's first threshold (700 allocations by
default): importing the ~50 modules of ``create`` ran ~15 collections that find nothing
(~0.8 ms of CPU). Collections still happen, rarely, in the verbs that run long.
"""

from __future__ import annotations

import os
import sys
import sysconfig

TEMPLATE = """#!{python} -IS
# containerkit's launcher, written by `python -m containerkit.cli.launcher` (./dev setup):
# isolated and without site (no .pth files, no sitecustomize, no environment); the import
# paths site would add are baked in below.
import gc
import sys
gc.set_threshold(50000, 20, 20)  # (see containerkit/cli/launcher.py)
sys.path[:0] = {paths!r}
from containerkit.cli.main import run
run()
"""


def launcher_text(python: str = sys.executable) -> str:
    """The launcher for this interpreter and this installation of containerkit."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    paths: list[str] = []
    for path in (package_parent, sysconfig.get_paths()["purelib"],
                 sysconfig.get_paths()["platlib"]):
        if path not in paths:
            paths.append(path)
    return TEMPLATE.format(python=os.path.abspath(python), paths=paths)


def write(path: str) -> None:
    """Replace ``path`` atomically with the launcher (mode 0755)."""
    from ..state import write_atomic

    write_atomic(path, launcher_text().encode(), 0o755)
    os.chmod(path, 0o755)                 # the umask may have taken bits off the mode


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m containerkit.cli.launcher PATH")
    write(sys.argv[1])
