"""Mount types and options, idmapped mounts, rootfs propagation and --no-pivot: each
checked from inside the container (write the read-only path, exec in the noexec one,
read /proc/self/mountinfo), and bad input refused in one line with nothing left."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ckhelpers import run_container as run
from ckhelpers import sh
from conftest import copy_rootfs

from containerkit import (
    Bundle,
    ContainerkitError,
    NativeDriver,
    SetupError,
    SpecError,
    UnsupportedError,
    new_container,
)
from containerkit import syscalls as s
from containerkit.busybox import make_rootfs

pytestmark = pytest.mark.usefixtures("leak_check")


def mounts_with(*extra: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"] += list(extra)

    return edit


def opts_of(out: str, point: str) -> set[str]:
    """The per-mount options of ``point`` in a mountinfo dump."""
    for line in out.splitlines():
        f = line.split()
        if len(f) > 5 and f[4] == point:
            return set(f[5].split(","))
    raise AssertionError(f"{point} not mounted: {out}")


@pytest.fixture
def submounted(tmp_path: Path) -> Iterator[Path]:
    """A host directory with a tmpfs mounted on its sub/ (for the recursive options)."""
    src = tmp_path / "ck-test-src"
    (src / "sub").mkdir(parents=True)
    (src / "file").write_text("top\n")
    s.mount(b"tmpfs", str(src / "sub").encode(), b"tmpfs", 0)
    try:
        yield src
    finally:
        s.umount2(str(src / "sub").encode(), s.MNT_DETACH)


def test_bind_options_from_inside(make_bundle: Callable[..., str], state_root: str,
                                  tmp_path: Path) -> None:
    src = tmp_path / "bindsrc"
    src.mkdir()
    (src / "f").write_text("hello\n")
    bundle = make_bundle(sh("""
        cat /ro/f; echo x > /ro/f 2>/dev/null && echo ro-writable || echo ro-refused
        echo x > /rw/new && echo rw-ok
        cat /file-ro; echo y > /file-ro 2>/dev/null && echo file-writable || echo file-refused
        cp /bin/busybox /exec/true && /exec/true && echo exec-ok
        cp /bin/busybox /noexec/true
        /noexec/true 2>/dev/null && echo noexec-ran || echo noexec-refused
        cat /proc/self/mountinfo
        """), mounts_with(
        {"destination": "/ro", "type": "bind", "source": str(src), "options": ["bind", "ro"]},
        {"destination": "/rw", "type": "bind", "source": str(src), "options": ["rbind", "rw"]},
        {"destination": "/file-ro", "source": str(src / "f"), "options": ["bind", "ro"]},
        {"destination": "/exec", "type": "tmpfs", "source": "tmpfs", "options": ["exec"]},
        {"destination": "/noexec", "type": "tmpfs", "source": "tmpfs",
         "options": ["noexec", "nosuid", "nodev", "noatime", "nodiratime", "defaults"]},
        {"destination": "/shared", "type": "bind", "source": str(src),
         "options": ["bind", "shared"]},
        {"destination": "/exec", "options": ["remount", "nodev"]},
    ))
    status, out = run(bundle, state_root, "mounts-bind")
    assert status == 0, out
    for word in ("ro-refused", "rw-ok", "file-refused", "exec-ok", "noexec-refused"):
        assert word in out, (word, out)
    assert out.count("hello") == 2
    assert (src / "new").read_text() == "x\n"
    assert {"ro"} <= opts_of(out, "/ro") and {"rw"} <= opts_of(out, "/rw")
    assert {"noexec", "nosuid", "nodev", "noatime", "nodiratime"} <= opts_of(out, "/noexec")
    assert "nodev" in opts_of(out, "/exec") and "noexec" not in opts_of(out, "/exec")
    shared = next(line for line in out.splitlines() if " /shared " in line)
    assert "shared:" in shared, shared


@pytest.mark.parametrize("option, submount_flag, top_flag", [
    ("rro", "ro", "ro"), ("ro", "rw", "ro"), ("rnosuid", "nosuid", "nosuid"),
    ("rnoexec", "noexec", "noexec"), ("rnodev", "nodev", "nodev"),
    ("rnoatime", "noatime", "noatime"), ("rnosymfollow", "nosymfollow", "nosymfollow"),
    ("rstrictatime", None, None),
])
def test_recursive_attributes_reach_submounts(make_bundle: Callable[..., str], state_root: str,
                                              submounted: Path, option: str,
                                              submount_flag: str | None,
                                              top_flag: str | None) -> None:
    bundle = make_bundle(["cat", "/proc/self/mountinfo"], mounts_with(
        {"destination": "/mnt", "type": "bind", "source": str(submounted),
         "options": ["rbind", option]}))
    status, out = run(bundle, state_root, "mounts-rattr")
    assert status == 0, out
    top, sub = opts_of(out, "/mnt"), opts_of(out, "/mnt/sub")
    if submount_flag is None:       # strictatime: neither relatime nor noatime shown
        assert not {"relatime", "noatime"} & (top | sub), out
    else:
        assert top_flag in top and submount_flag in sub, out


def test_nosymfollow_blocks_following(make_bundle: Callable[..., str], state_root: str) -> None:
    bundle = make_bundle(sh("""
        ln -s /etc /nofollow/l && ln -s /etc /follow/l
        cat /follow/l/passwd >/dev/null && echo follow-ok
        cat /nofollow/l/passwd 2>/dev/null && echo followed || echo refused
        """), mounts_with(
        {"destination": "/nofollow", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosymfollow"]},
        {"destination": "/follow", "type": "tmpfs", "source": "tmpfs"}))
    status, out = run(bundle, state_root, "mounts-nosym")
    assert status == 0, out
    assert out.split() == ["follow-ok", "refused"]


def test_tmpfs_size_mode_and_tmpcopyup(make_bundle: Callable[..., str], state_root: str,
                                       tmp_path: Path, rootfs: str) -> None:
    root = copy_rootfs(rootfs, str(tmp_path / "copy"))
    os.makedirs(os.path.join(root, "seed", "deep"))
    Path(root, "seed", "deep", "file").write_text("seeded\n")
    os.chmod(os.path.join(root, "seed", "deep", "file"), 0o640)
    os.symlink("deep/file", os.path.join(root, "seed", "link"))

    def edit(cfg: dict[str, Any]) -> None:
        cfg["root"]["path"] = root
        cfg["mounts"] += [
            {"destination": "/seed", "type": "tmpfs", "source": "tmpfs",
             "options": ["tmpcopyup", "mode=750"]},
            {"destination": "/small", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=1m", "mode=700"]},
        ]

    bundle = make_bundle(sh("""
        cat /seed/link; stat -c '%a' /seed/deep/file /seed /small
        echo new > /seed/new && echo writable
        df -k /small | tail -1 | awk '{print $2}'
        awk '$5 == "/seed" {print $9}' /proc/self/mountinfo
        """), edit)
    status, out = run(bundle, state_root, "mounts-tmpfs")
    assert status == 0, out
    assert out.split() == ["seeded", "640", "750", "700", "writable", "1024", "tmpfs"]
    assert not os.path.exists(os.path.join(root, "seed", "new"))   # the tmpfs got it


def test_filesystems_and_relative_destination(make_bundle: Callable[..., str],
                                              state_root: str, tmp_path: Path) -> None:
    lower, upper, work = (tmp_path / n for n in ("lower", "upper", "work"))
    for d in (lower, upper, work):
        d.mkdir()
    (lower / "l").write_text("lower\n")
    with open("/proc/filesystems") as f:
        if "\toverlay\n" not in f.read():
            pytest.skip("no overlay filesystem in this kernel (module not loaded)")
    bundle = make_bundle(sh("""
        cat /ov/l; echo up > /ov/u
        awk '{print $5, $9}' /proc/self/mountinfo
        """), mounts_with(
        {"destination": "ov", "type": "overlay", "source": "overlay",
         "options": [f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}"]},
        {"destination": "/m/q", "type": "mqueue", "source": "mqueue"},
        {"destination": "/m/pts", "type": "devpts", "source": "devpts",
         "options": ["newinstance", "ptmxmode=0666"]},
        {"destination": "/m/proc", "type": "proc", "source": "proc", "options": ["ro"]},
        {"destination": "/m/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
        {"destination": "/m/cg", "type": "cgroup2", "source": "cgroup2"}))
    status, out = run(bundle, state_root, "mounts-fs")
    assert status == 0, out
    assert "lower" in out and (upper / "u").read_text() == "up\n"
    for line in ("/ov overlay", "/m/q mqueue", "/m/pts devpts", "/m/proc proc",
                 "/m/sys sysfs", "/m/cg cgroup2"):
        assert line in out, (line, out)


def run_idmapped(bundle: str, root: str, cid: str) -> tuple[int, str]:
    """run(), skipped where the host refuses user namespaces (e.g. in a chroot)."""
    try:
        return run(bundle, root, cid)
    except UnsupportedError as e:
        if "this host refuses" not in str(e):
            raise
        pytest.skip(str(e))


def test_idmapped_bind_mount(make_bundle: Callable[..., str], state_root: str,
                             tmp_path: Path) -> None:
    src = tmp_path / "owned"
    src.mkdir()
    for name, uid in (("by1000", 1000), ("byroot", 0)):
        (src / name).write_text(name)
        os.chown(src / name, uid, uid)
    mapping = [{"containerID": 1000, "hostID": 0, "size": 1}]
    bundle = make_bundle(sh("""
        stat -c '%n %u %g' /idm/by1000 /idm/byroot /plain/by1000
        """), mounts_with(
        {"destination": "/idm", "type": "bind", "source": str(src), "options": ["rbind", "idmap"],
         "uidMappings": mapping, "gidMappings": mapping},
        {"destination": "/plain", "type": "bind", "source": str(src), "options": ["bind"]}))
    status, out = run_idmapped(bundle, state_root, "mounts-idmap")
    assert status == 0, out
    assert out.splitlines() == ["/idm/by1000 0 0", "/idm/byroot 65534 65534",
                                "/plain/by1000 1000 1000"]


@pytest.mark.parametrize("own_mapping", [True, False])
def test_idmapped_mount_in_a_user_namespace(make_bundle: Callable[..., str],
                                            state_root: str, own_mapping: bool) -> None:
    """The init's own user namespace cannot idmap the host's filesystem: the parent makes
    the tree. Host uid 0 -> 100000 on the mount -> 0 in the container's namespace; the
    same when the mount names no mapping and takes the container's (podman's :idmap)."""
    top = tempfile.mkdtemp(prefix="ck-test-idmap-")
    try:
        os.chmod(top, 0o755)
        root = make_rootfs(os.path.join(top, "rootfs"))
        for d in ("idm", "plain"):
            os.mkdir(os.path.join(root, d))
        src = Path(top, "src")
        src.mkdir()
        (src / "f").write_text("root's\n")
        mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]

        def edit(cfg: dict[str, Any]) -> None:
            cfg["root"]["path"] = root
            cfg["linux"]["namespaces"].append({"type": "user"})
            cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = mapping
            cfg["mounts"] += [
                {"destination": "/idm", "type": "bind", "source": str(src),
                 "options": ["bind", "idmap", "ro"],
                 **({"uidMappings": mapping, "gidMappings": mapping} if own_mapping else {})},
                {"destination": "/plain", "type": "bind", "source": str(src),
                 "options": ["bind"]}]

        bundle = make_bundle(sh("""
            stat -c '%u %g' /idm/f /plain/f
            (echo x > /idm/f) 2>/dev/null && echo writable || echo ro
            """), edit)
        status, out = run_idmapped(bundle, state_root, "mounts-idmap-userns")
        assert status == 0, out
        assert out.split("\n")[:3] == ["0 0", "65534 65534", "ro"], out
    finally:
        shutil.rmtree(top)


def test_rshared_root_propagation(make_bundle: Callable[..., str], state_root: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["rootfsPropagation"] = "rshared"

    bundle = make_bundle(["cat", "/proc/self/mountinfo"], edit)
    status, out = run(bundle, state_root, "mounts-shared")
    assert status == 0, out
    root_line = next(line for line in out.splitlines() if line.split()[4] == "/")
    assert "shared:" in root_line, root_line


def test_no_pivot_library_and_cli(make_bundle: Callable[..., str], state_root: str,
                                  tmp_path: Path, rootfs: str) -> None:
    root = copy_rootfs(rootfs, str(tmp_path / "np"))
    Path(root, "marker").write_text("inside\n")

    def edit(cfg: dict[str, Any]) -> None:
        cfg["root"]["path"] = root

    script = sh("cat /marker; awk '$5 == \"/\" {print $5}' /proc/self/mountinfo")
    bundle = make_bundle(script, edit)
    status, out = run(bundle, state_root, "mounts-nopivot", NativeDriver(no_pivot=True))
    assert status == 0, out
    assert out.startswith("inside\n/\n"), out
    cli = [sys.executable, "-m", "containerkit", "--root", state_root, "run", "--no-pivot",
           "-b", bundle, "mounts-nopivot-cli"]
    res = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res
    assert res.stdout.startswith("inside\n"), res


@pytest.mark.parametrize("mount, error, match", [
    ({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind", "bogus"]},
     SpecError, r"mounts\[7\].options: unknown mount option 'bogus'"),
    ({"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=huge"]},
     SpecError, r"mounts\[7\].options: 'size=huge': not a valid tmpfs size"),
    ({"destination": "/x", "type": "proc", "source": "proc", "options": ["tmpcopyup"]},
     SpecError, r"mounts\[7\].options: tmpcopyup is for tmpfs"),
    ({"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
      "uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]},
     UnsupportedError, r"mounts\[7\].options: idmapped mounts are for bind mounts"),
    ({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]},
     SpecError, r"mounts\[7\]: idmap without uidMappings/gidMappings needs the container's "
                r"own: a new user namespace"),
    ({"destination": "/dev", "type": "tmpfs", "options": ["remount", "size=1m"]},
     UnsupportedError, r"mounts\[7\].options: remount changes mount attributes only"),
    ({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind", "sync"]},
     UnsupportedError, r"mounts\[7\].options: 'sync' is a filesystem flag"),
    ({"destination": "/proc/sys", "type": "bind", "source": "/tmp", "options": ["bind"]},
     SpecError, r"mounts\[7\].destination: /proc/sys is inside /proc"),
    ({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"},
     SpecError, r"mounts\[7\].destination: /proc can only take a mount of type proc"),
])
def test_bad_mounts_refused_in_one_line(make_bundle: Callable[..., str], state_root: str,
                                        mount: dict[str, Any], error: type[Exception],
                                        match: str) -> None:
    config = Bundle(make_bundle(["true"], mounts_with(mount)), id="mounts-bad", root=state_root)
    with pytest.raises(error, match=match) as info:
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()
    assert "\n" not in str(info.value)
    assert os.listdir(state_root) == []


def test_kernel_refusal_names_the_mount_and_reason(make_bundle: Callable[..., str],
                                                  state_root: str) -> None:
    config = Bundle(make_bundle(["true"], mounts_with(
        {"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["nosuchopt"]})),
        id="mounts-kbad", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        with pytest.raises(SetupError, match=r"mount tmpfs on /x \(tmpfs: Unknown parameter "
                                             r"'nosuchopt'\): Invalid argument") as info:
            c.create()
    assert "\n" not in str(info.value)


def test_mount_label_refused_without_selinux(make_bundle: Callable[..., str],
                                             state_root: str) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0"

    config = Bundle(make_bundle(["true"], edit), id="mounts-label", root=state_root)
    with pytest.raises(ContainerkitError, match=r"linux.mountLabel: selinux is not enabled "
                                                r"on this host"):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()


def test_tmpcopyup_of_a_deep_tree(make_bundle: Callable[..., str], state_root: str,
                                  tmp_path: Path, rootfs: str) -> None:
    """tmpcopyup copies recursively on the child's fixed stack (no malloc there): a tree
    as deep as it allows (with a symlink at every level) is copied, a deeper one refused."""
    root = copy_rootfs(rootfs, str(tmp_path / "copy"))
    for name, depth in (("ok", 24), ("deep", 26)):
        path = os.path.join(root, name)
        for k in range(depth):
            path = os.path.join(path, f"d{k}")
            os.makedirs(path)
            os.symlink("../" * 40 + "x" * 200, os.path.join(path, "link"))
        Path(path, "leaf").write_text(f"{name}\n")

    def edit(cfg: dict[str, Any]) -> None:
        cfg["root"]["path"] = root
        cfg["mounts"].append({"destination": "/ok", "type": "tmpfs", "source": "tmpfs",
                              "options": ["tmpcopyup"]})

    leaf = "/ok/" + "/".join(f"d{k}" for k in range(24)) + "/leaf"
    status, out = run(make_bundle(["cat", leaf], edit), state_root, "mounts-deepcopy")
    assert (status, out) == (0, "ok\n")

    def deeper(cfg: dict[str, Any]) -> None:
        edit(cfg)
        cfg["mounts"][-1]["destination"] = "/deep"

    with pytest.raises(SetupError, match="/deep.*(too many levels|Too many levels)"):
        run(make_bundle(["true"], deeper), state_root, "mounts-deepcopy2")
