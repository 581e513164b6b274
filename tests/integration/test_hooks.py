"""OCI hooks at every stage: where they run (namespaces, cwd, before or after
pivot_root), in which order, with which state on stdin; failures and timeouts.

prestart and createRuntime run in the runtime (here: this process's mount namespace),
createContainer in the container's namespaces before pivot_root (cwd: the rootfs),
startContainer in the container after `start`, before the user's program.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from containerkit import Bundle, ContainerkitError, NativeDriver, new_container

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

# one line per run: stage, mount ns, pid ns, cwd, env, state (stdin)
RECORD = """#!/bin/sh
state=$(cat)
echo "$1|$(readlink /proc/self/ns/mnt)|$(readlink /proc/self/ns/pid)|$(pwd)|$HOOKENV|$state" \\
    >> "$2"
"""


def _script(path: Path, body: str) -> str:
    path.write_text(body)
    path.chmod(0o755)
    return str(path)


def _setup(tmp_path: Path) -> tuple[Path, Path, str]:
    """hooks/ (bound at /hooks in the container), shared/ (at /shared), the recorder."""
    hooks, shared = tmp_path / "hooks", tmp_path / "shared"
    hooks.mkdir()
    shared.mkdir()
    return hooks, shared, _script(hooks / "record.sh", RECORD)


def _binds(cfg: dict[str, Any], tmp_path: Path) -> None:
    for name in ("hooks", "shared"):
        cfg["mounts"].append({"destination": f"/{name}", "type": "bind",
                              "source": str(tmp_path / name), "options": ["rbind", "rw"]})


def _records(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text().splitlines():
        if line == "user":
            out.append({"stage": "user"})
            continue
        stage, mnt, pidns, cwd, env, state = line.split("|", 5)
        out.append({"stage": stage, "mnt": mnt, "pidns": pidns, "cwd": cwd, "env": env,
                    "state": json.loads(state)})
    return out


def test_every_stage_runs_where_and_when_the_spec_says(
        make_bundle: Callable[..., str], state_root: str, tmp_path: Path,
        leak_check: Callable[[], None]) -> None:
    _, shared, record = _setup(tmp_path)
    host_log = str(shared / "log")

    def hook(stage: str, inside: bool = False) -> dict[str, Any]:
        path = "/hooks/record.sh" if inside else record
        return {"path": path, "args": ["record", stage, "/shared/log" if inside else host_log],
                "env": [f"HOOKENV=env-{stage}"], "timeout": 30}

    def edit(cfg: dict[str, Any]) -> None:
        _binds(cfg, tmp_path)
        cfg["hooks"] = {"prestart": [hook("prestart")],
                        "createRuntime": [hook("createRuntime"), hook("createRuntime2")],
                        "createContainer": [hook("createContainer")],
                        "startContainer": [hook("startContainer", inside=True)]}

    bundle = make_bundle(["sh", "-c", "echo user >> /shared/log"], edit)
    config = Bundle(bundle, id="hk-stages", root=state_root)
    host_mnt = os.readlink("/proc/self/ns/mnt")
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c_mnt = os.readlink(f"/proc/{c.pid}/ns/mnt")
        c_pidns = os.readlink(f"/proc/{c.pid}/ns/pid")
        created = _records(shared / "log")
        assert [r["stage"] for r in created] == [
            "prestart", "createRuntime", "createRuntime2", "createContainer"]
        c.start()
        assert c.wait(timeout=30) == 0
        rootfs = c.rootfs
    recs = _records(shared / "log")
    assert [r["stage"] for r in recs] == ["prestart", "createRuntime", "createRuntime2",
                                          "createContainer", "startContainer", "user"]
    by = {r["stage"]: r for r in recs}
    for stage in ("prestart", "createRuntime", "createRuntime2"):
        assert by[stage]["mnt"] == host_mnt, stage                  # runtime namespace
        assert by[stage]["pidns"] != c_pidns
    cc = by["createContainer"]
    assert (cc["mnt"], cc["pidns"]) == (c_mnt, c_pidns)             # container namespaces
    assert cc["cwd"] == rootfs                                      # before pivot_root
    sc = by["startContainer"]
    assert (sc["mnt"], sc["pidns"], sc["cwd"]) == (c_mnt, c_pidns, "/")   # pivoted
    for stage, status in (("prestart", "creating"), ("createRuntime", "creating"),
                          ("createContainer", "creating"), ("startContainer", "created")):
        state = by[stage]["state"]
        assert (state["id"], state["status"], state["pid"]) == ("hk-stages", status,
                                                                 created_pid(recs)), stage
        assert state["bundle"] == bundle
        assert by[stage]["env"] == f"env-{stage}"


def created_pid(recs: list[dict[str, Any]]) -> int:
    """Every hook saw the same host pid: the init's."""
    pids = {r["state"]["pid"] for r in recs if "state" in r}
    assert len(pids) == 1, pids
    return pids.pop()


@pytest.mark.parametrize("stage", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_leaves_nothing(
        make_bundle: Callable[..., str], state_root: str, tmp_path: Path,
        leak_check: Callable[[], None], stage: str) -> None:
    bad = _script(tmp_path / "bad.sh", "#!/bin/sh\necho 'first line' >&2\n"
                                       "echo 'no network for you' >&2\nexit 3\n")
    config = Bundle(make_bundle(["true"], lambda c: c.update(
        hooks={stage: [{"path": "/bin/true"}, {"path": bad}]})),
        id=f"hk-fail-{stage.lower()}", root=state_root)
    with pytest.raises(ContainerkitError) as info:
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()
    assert str(info.value) == (f"hooks.{stage}[1]: {bad}: exited with status 3: "
                               "no network for you")


def test_create_container_hook_timeout_and_missing_path(
        make_bundle: Callable[..., str], state_root: str, tmp_path: Path,
        leak_check: Callable[[], None]) -> None:
    slow = _script(tmp_path / "slow.sh", "#!/bin/sh\nsleep 60\n")
    config = Bundle(make_bundle(["true"], lambda c: c.update(
        hooks={"createContainer": [{"path": slow, "timeout": 1}]})),
        id="hk-slow", root=state_root)
    with pytest.raises(ContainerkitError,
                       match=r"^hooks.createContainer\[0\]: .*/slow.sh: timed out after 1s$"):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()
    config = Bundle(make_bundle(["true"], lambda c: c.update(
        hooks={"createContainer": [{"path": "/no/such/hook"}]})),
        id="hk-missing", root=state_root)
    with pytest.raises(ContainerkitError, match=r"^hooks.createContainer\[0\]: /no/such/hook: "
                                                "no such file or directory$"):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()


def test_failing_start_container_hook_fails_start_and_stops_the_container(
        make_bundle: Callable[..., str], state_root: str, tmp_path: Path,
        leak_check: Callable[[], None]) -> None:
    hooks, shared, _ = _setup(tmp_path)
    _script(hooks / "bad.sh", "#!/bin/sh\necho 'not today' >&2\nexit 7\n")

    def edit(cfg: dict[str, Any]) -> None:
        _binds(cfg, tmp_path)
        cfg["hooks"] = {"startContainer": [{"path": "/hooks/bad.sh"}]}

    config = Bundle(make_bundle(["sh", "-c", "echo user >> /shared/log"], edit),
                    id="hk-badstart", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        with pytest.raises(ContainerkitError, match=r"^hooks.startContainer\[0\]: "
                                                    r"/hooks/bad.sh: exited with status 7: "
                                                    "not today$"):
            c.start()
        assert c.wait(timeout=30) == 1
        assert c.status == "stopped"
    assert not (shared / "log").exists()                  # the user's program never ran


def test_cli_start_reports_a_failing_start_container_hook(
        make_bundle: Callable[..., str], state_root: str, tmp_path: Path) -> None:
    hooks, shared, _ = _setup(tmp_path)
    _script(hooks / "bad.sh", "#!/bin/sh\necho 'not from the cli either' >&2\nexit 2\n")

    def edit(cfg: dict[str, Any]) -> None:
        _binds(cfg, tmp_path)
        cfg["hooks"] = {"startContainer": [{"path": "/hooks/bad.sh"}]}

    bundle = make_bundle(["sh", "-c", "echo user >> /shared/log"], edit)
    cli = [sys.executable, "-m", "containerkit", "--root", state_root]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], capture_output=True, text=True, timeout=60)

    try:
        # the init keeps the stdio it is given: no pipe that would wait for its end
        assert subprocess.run([*cli, "create", "--bundle", bundle, "hk-cli"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=60).returncode == 0
        done = run("start", "hk-cli")
        assert done.returncode == 1
        assert done.stderr.strip().endswith(
            "hooks.startContainer[0]: /hooks/bad.sh: exited with status 2: "
            "not from the cli either"), done.stderr
        assert json.loads(run("state", "hk-cli").stdout)["status"] == "stopped"
    finally:
        run("delete", "--force", "hk-cli")
    assert not (shared / "log").exists()


def _gone(pid: int) -> bool:
    """Dead: no such process, or a zombie nobody reaped yet."""
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_timeout_kills_what_the_hook_started(make_bundle: Callable[..., str],
                                             state_root: str, tmp_path: Path,
                                             leak_check: Callable[[], None]) -> None:
    pidfile = tmp_path / "bg.pid"
    slow = _script(tmp_path / "bg.sh", f"#!/bin/sh\nsleep 300 &\necho $! > {pidfile}\nwait\n")
    config = Bundle(make_bundle(["true"], lambda c: c.update(
        hooks={"createRuntime": [{"path": slow, "timeout": 1}]})),
        id="hk-bg", root=state_root)
    with pytest.raises(ContainerkitError, match=r"^hooks.createRuntime\[0\]: .* timed out"):
        with new_container(config, config.graph_driver(), NativeDriver()) as c:
            c.create()
    assert _gone(int(pidfile.read_text()))


def test_runtime_hooks_see_the_containers_network_namespace(
        make_bundle: Callable[..., str], state_root: str, tmp_path: Path,
        leak_check: Callable[[], None]) -> None:
    """prestart/createRuntime hooks (CNI's place) find the container's network namespace
    through the state's pid: the init makes it itself (after the clone), before it stops
    for the runtime's hooks."""
    _, shared, _ = _setup(tmp_path)
    netns_hook = _script(tmp_path / "hooks" / "netns.sh", """#!/bin/sh
pid=$(cat | sed -n 's/.*"pid": *\\([0-9]*\\).*/\\1/p')
readlink /proc/$pid/ns/net > "$1"
""")

    def edit(cfg: dict[str, Any]) -> None:
        _binds(cfg, tmp_path)
        cfg["hooks"] = {stage: [{"path": netns_hook, "args": ["netns", str(shared / stage)]}]
                        for stage in ("prestart", "createRuntime")}

    bundle = make_bundle(["sh", "-c", "readlink /proc/self/ns/net > /shared/inside"], edit)
    config = Bundle(bundle, id="hk-netns", root=state_root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        assert c.wait(timeout=30) == 0
    inside = (shared / "inside").read_text()
    assert inside != os.readlink("/proc/self/ns/net") + "\n"
    for stage in ("prestart", "createRuntime"):
        assert (shared / stage).read_text() == inside, stage
