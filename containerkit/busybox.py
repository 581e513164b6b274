"""A tiny root filesystem from Debian's busybox-static: one static binary + symlinks.

Used by the README demo, the tests and the benchmark. Also ``python -m
containerkit.busybox DIR`` makes a whole bundle (rootfs + default config.json).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
        "var", "run", "home")


def find_busybox() -> str:
    for path in BUSYBOX_PATHS:
        if os.path.isfile(path):
            return path
    raise FileNotFoundError("busybox not found: apt-get install busybox-static")


def make_rootfs(dest: str) -> str:
    """Fill ``dest`` with busybox and a symlink per applet; returns ``dest``."""
    busybox = find_busybox()
    for d in DIRS:
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    os.chmod(dest, 0o755)                      # "/" must be searchable by every user
    os.chmod(os.path.join(dest, "tmp"), 0o1777)
    target = os.path.join(dest, "bin", "busybox")
    shutil.copy2(busybox, target)
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        link = os.path.join(dest, applet)
        if not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink("/bin/busybox", link)
    with open(os.path.join(dest, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(dest, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    return dest


def make_bundle(bundle: str, args: list[str] | None = None) -> str:
    """A bundle directory: ``rootfs/`` from busybox and the default ``config.json``."""
    from . import spec as oci

    os.makedirs(bundle, exist_ok=True)
    make_rootfs(os.path.join(bundle, "rootfs"))
    config = oci.default_spec()
    if args is not None:
        assert config.process is not None
        config.process.args = list(args)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write(config.to_json())
    return bundle


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m containerkit.busybox BUNDLE_DIR")
    print(make_bundle(sys.argv[1]))
