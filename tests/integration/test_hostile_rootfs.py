"""A rootfs full of hostile symlinks: every container path stays inside the rootfs.

Each test plants symlinks in a private copy of the busybox rootfs that point at a host
directory (absolute, or climbing with ``..``), loops, or a directory swapped with a
symlink while containers are created. Then: the host directory is untouched (nothing
made in it, nothing mounted), and the container either did its work inside its own
root (checked from inside) or failed with a one-line error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ckhelpers import run_container as run
from ckhelpers import sh
from conftest import copy_rootfs

from containerkit import Bundle, NativeDriver, SetupError, new_container

pytestmark = pytest.mark.usefixtures("leak_check")

UP = "../../../../../../../../.."


@pytest.fixture
def hostile(tmp_path: Path, rootfs: str) -> tuple[str, Path]:
    """(copy of the rootfs, an empty host directory that must stay untouched)."""
    root = copy_rootfs(rootfs, str(tmp_path / "hostile-rootfs"))
    target = tmp_path / "host-target"
    target.mkdir()
    return root, target


def _host_mounts() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


def _untouched(target: Path) -> None:
    assert os.listdir(target) == [], f"made on the host: {os.listdir(target)}"
    assert f" {target} " not in _host_mounts()


def _bundle(make_bundle: Callable[..., str], root: str, args: list[str],
            edit: Callable[[dict[str, Any]], None] | None = None) -> str:
    def full(cfg: dict[str, Any]) -> None:
        cfg["root"]["path"] = root
        cfg["root"]["readonly"] = False
        if edit is not None:
            edit(cfg)

    return make_bundle(args, full)


def test_mount_destinations_through_symlinks_stay_inside(
        make_bundle: Callable[..., str], state_root: str, hostile: tuple[str, Path]) -> None:
    root, target = hostile
    os.symlink("/", os.path.join(root, "evil"))
    os.symlink(UP + str(target), os.path.join(root, "up"))     # climbs to the host dir
    os.symlink(str(target), os.path.join(root, "abs"))         # absolute host path
    source = Path(root).parent / "src"
    source.mkdir()
    (source / "file").write_text("from the host\n")

    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"] += [
            {"destination": "/evil/mnt-evil", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/up/made-dir", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/abs/made-file", "type": "bind", "source": str(source / "file"),
             "options": ["bind", "ro"]},
        ]

    bundle = _bundle(make_bundle, root, sh(f"""
        awk '$9 == "tmpfs" {{print $5}}' /proc/self/mountinfo
        cat {target}/made-file
        """), edit)
    status, out = run(bundle, state_root, "hostile-dest")
    assert status == 0, out
    mounts = out.splitlines()
    assert "/mnt-evil" in mounts                      # "/" is the container's root
    assert f"{target}/made-dir" in mounts             # inside: <rootfs>/<host path>
    assert "from the host" in out
    _untouched(target)
    assert os.path.isdir(os.path.join(root, str(target).lstrip("/"), "made-dir"))


def test_symlink_loop_is_a_clear_error(make_bundle: Callable[..., str], state_root: str,
                                       hostile: tuple[str, Path]) -> None:
    root, target = hostile
    os.symlink("loop2", os.path.join(root, "loop1"))
    os.symlink("loop1", os.path.join(root, "loop2"))
    bundle = _bundle(make_bundle, root, ["true"], lambda c: c["mounts"].append(
        {"destination": "/loop1/x", "type": "tmpfs", "source": "tmpfs"}))
    config = Bundle(bundle, id="hostile-loop", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        with pytest.raises(SetupError, match=r"mount tmpfs on /loop1/x: Too many levels of "
                                             r"symbolic links") as info:
            c.create()
    assert "\n" not in str(info.value)
    _untouched(target)


def test_device_node_through_a_symlink_stays_inside(
        make_bundle: Callable[..., str], state_root: str, hostile: tuple[str, Path]) -> None:
    root, target = hostile
    os.symlink(str(target), os.path.join(root, "dev", "evil"))

    def edit(cfg: dict[str, Any]) -> None:
        # the rootfs's own /dev (no tmpfs over it), so that the planted link is seen
        cfg["mounts"] = [m for m in cfg["mounts"] if not m["destination"].startswith("/dev")]
        cfg["linux"]["devices"] = [{"path": p, "type": "c", "major": 1, "minor": 3,
                                    "fileMode": 0o666} for p in ("/dev/evil/null", "/dev/null")]
        # a listed /dev/null replaces runc's default one, rule included: allow it (as
        # clients do for the nodes they list)
        cfg["linux"]["resources"] = {"devices": [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}

    bundle = _bundle(make_bundle, root, sh(f"ls -l {target}/null; echo hi > /dev/evil/null"),
                     edit)
    status, out = run(bundle, state_root, "hostile-dev")
    assert status == 0, out
    assert out.startswith("crw-rw-rw-"), out
    _untouched(target)
    made = os.path.join(root, str(target).lstrip("/"), "null")
    assert os.path.exists(made)
    os.unlink(made)


def test_masked_readonly_paths_and_cwd_through_symlinks(
        make_bundle: Callable[..., str], state_root: str, hostile: tuple[str, Path]) -> None:
    root, target = hostile
    os.makedirs(os.path.join(root, "data"))
    Path(root, "data", "secret").write_text("s3cret\n")
    os.makedirs(os.path.join(root, "writable"))
    os.symlink(UP + "/data", os.path.join(root, "mask-link"))
    os.symlink("/writable", os.path.join(root, "ro-link"))
    os.symlink(UP + "/writable", os.path.join(root, "cwd-link"))
    os.symlink(str(target), os.path.join(root, "host-link"))

    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["maskedPaths"] += ["/mask-link", "/host-link"]
        cfg["linux"]["readonlyPaths"] += ["/ro-link", "/host-link/x"]
        cfg["process"]["cwd"] = "/cwd-link"

    bundle = _bundle(make_bundle, root, sh("""
        echo cwd=$(pwd -P)
        ls /data | wc -l
        touch /writable/f 2>/dev/null && echo rw || echo ro
        """), edit)
    status, out = run(bundle, state_root, "hostile-paths")
    assert status == 0, out
    assert out.splitlines() == ["cwd=/writable", "0", "ro"]
    _untouched(target)


def test_symlink_into_proc_is_refused(make_bundle: Callable[..., str], state_root: str,
                                      hostile: tuple[str, Path]) -> None:
    """/sneaky -> /proc/sys: the lexical check passes, the child sees procfs and refuses
    (a mount there could hide what readonlyPaths protect)."""
    root, target = hostile
    os.symlink("/proc/sys", os.path.join(root, "sneaky"))
    bundle = _bundle(make_bundle, root, ["true"], lambda c: c["mounts"].append(
        {"destination": "/sneaky", "type": "tmpfs", "source": "tmpfs"}))
    config = Bundle(bundle, id="hostile-proc", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        with pytest.raises(SetupError, match=r"mount tmpfs on /sneaky \(the destination is "
                                             r"inside /proc\): Operation not permitted"):
            c.create()
    _untouched(target)


def test_swapping_a_directory_for_a_symlink_never_escapes(
        make_bundle: Callable[..., str], state_root: str, hostile: tuple[str, Path]) -> None:
    """Another process swaps <rootfs>/race between a directory and a symlink to the host
    dir as fast as it can while containers make directories and files under it: each
    container either mounts inside its root or fails in one line; the host dir stays
    empty. (Both the directory and the symlink get used: the symlink's target is made
    inside the rootfs.)"""
    root, target = hostile
    race = os.path.join(root, "race")
    os.makedirs(race)
    os.symlink(UP + str(target), os.path.join(root, "race-link"))
    source = Path(root).parent / "src-file"
    source.write_text("x")
    # renameat2(RENAME_EXCHANGE): "race" is always there, a directory or the symlink
    swapper = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        race, link = {race!r}.encode(), {race + "-link"!r}.encode()
        while True:
            libc.renameat2(-100, race, -100, link, 2)
        """)])

    def edit(cfg: dict[str, Any]) -> None:
        for k in range(20):
            cfg["mounts"] += [
                {"destination": f"/race/d{k}/sub", "type": "tmpfs", "source": "tmpfs"},
                {"destination": f"/race/f{k}", "type": "bind", "source": str(source),
                 "options": ["bind"]},
            ]

    bundle = _bundle(make_bundle, root, ["true"], edit)
    try:
        for n in range(40):
            try:
                run(bundle, state_root, f"hostile-race{n}")
            except SetupError as e:     # refused: fine, in one line
                assert "\n" not in str(e)
    finally:
        swapper.kill()
        swapper.wait()
    _untouched(target)         # it ran or was refused (either is fine): the host is intact


def test_dev_console_symlink_is_refused(make_bundle: Callable[..., str], state_root: str,
                                        hostile: tuple[str, Path]) -> None:
    """The image's own /dev (no tmpfs on it) with /dev/console a symlink into /proc: the
    pty was bound over /proc/sys/kernel/core_pattern before the read-only paths were
    applied (runc's CVE-2025-52565). Refused, nothing mounted in /proc."""
    root, _ = hostile
    dev = Path(root, "dev")
    dev.mkdir(exist_ok=True)
    (dev / "pts").mkdir(exist_ok=True)
    os.mknod(dev / "null", 0o020666, os.makedev(1, 3))
    os.symlink("pts/ptmx", dev / "ptmx")
    os.symlink("/proc/sys/kernel/core_pattern", dev / "console")

    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["terminal"] = True
        cfg["mounts"] = [m for m in cfg["mounts"]
                         if m["destination"] not in ("/dev", "/dev/shm", "/dev/mqueue")]

    bundle = _bundle(make_bundle, root, ["true"], edit)
    with pytest.raises(SetupError, match=r"^container init: terminal /dev/console \(a symlink"):
        run(bundle, state_root, "hostile-console")


def test_masked_file_without_dev_null_names_it(make_bundle: Callable[..., str],
                                               state_root: str,
                                               hostile: tuple[str, Path]) -> None:
    """The image's own /dev without a null device: a masked file cannot be covered, and
    the error says why (it said only "/proc/keys: no such file or directory")."""
    root, _ = hostile
    Path(root, "dev").mkdir(exist_ok=True)

    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"] = [m for m in cfg["mounts"]
                         if m["destination"] not in ("/dev", "/dev/shm", "/dev/mqueue")]

    bundle = _bundle(make_bundle, root, ["true"], edit)
    with pytest.raises(SetupError, match=r"maskedPaths /proc/\w+ \(the container has no "
                                         r"/dev/null to mask it with\)"):
        run(bundle, state_root, "hostile-nonull")
