"""The native front end (_native/launcher.c, installed as .venv/bin/containerkit) answers
``state`` itself: its output must be byte-identical to the Python launcher's
(.venv/bin/containerkit-py) in every status, and everything else (errors included) must
be the Python launcher's, reached through the fallback.

A "strict" build of the same source, whose fallback is a script that only says so, shows
the happy path really is answered in C (and that a stale or missing companion file is
not used)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

BIN = Path(sys.executable).parent
NATIVE = BIN / "containerkit"
PYTHON = BIN / "containerkit-py"
SOURCE = Path(__file__).resolve().parents[2] / "_native" / "launcher.c"
LOOP = "while :; do sleep 0.05; done"
FALLBACK_STATUS = 99


def _built() -> bool:
    try:
        with open(NATIVE, "rb") as f:
            return f.read(4) == b"\x7fELF" and PYTHON.exists()
    except OSError:
        return False


if not _built():
    pytest.skip("the native front end is not built (./dev setup found no gcc)",
                allow_module_level=True)


def run(cmd: list[str], tmp: Path, env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    out, err = tmp / f"out-{uuid.uuid4().hex}", tmp / f"err-{uuid.uuid4().hex}"
    with open(out, "wb+") as fo, open(err, "wb+") as fe:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, env=env,
                              cwd="/", timeout=60)
        fo.seek(0)
        fe.seek(0)
        return proc.returncode, fo.read(), fe.read()


def _untimed(result: tuple[int, bytes, bytes]) -> tuple[int, bytes, bytes]:
    """``--debug`` log lines carry the second they were written: two calls may straddle one."""
    code, out, err = result
    return code, out, re.sub(rb'time="[^"]*"', b'time="T"', err)


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> str:
    """launcher.c built with a fallback that prints "fallback" and exits 99."""
    tmp = tmp_path_factory.mktemp("fast-strict")
    script = tmp / "fallback"
    script.write_text(f"#!/bin/sh\necho fallback >&2\nexit {FALLBACK_STATUS}\n")
    script.chmod(0o755)
    binary = tmp / "containerkit-strict"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", f'-DCK_FALLBACK="{script}"',
                    "-o", str(binary), str(SOURCE)], check=True)
    return str(binary)


class Ctx:
    def __init__(self, tmp: Path, root: str, strict: str) -> None:
        self.tmp, self.root, self.strict = tmp, root, strict

    def py(self, *args: str) -> tuple[int, bytes, bytes]:
        return run([str(PYTHON), "--root", self.root, *args], self.tmp)

    def same(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
        """The native front end and the Python launcher give the same bytes and status."""
        native = run([str(NATIVE), "--root", self.root, *args], self.tmp, env)
        python = run([str(PYTHON), "--root", self.root, *args], self.tmp, env)
        assert _untimed(native) == _untimed(python), (native, python)
        return native

    def in_c(self, cid: str) -> bytes:
        """``state`` answered by C (no fallback), identical to the Python launcher's."""
        python = run([str(PYTHON), "--root", self.root, "state", cid], self.tmp)
        for argv in (["--root", self.root], [f"--root={self.root}", "--log-format", "json",
                                             "--log", str(self.tmp / "log")]):
            native = run([self.strict, *argv, "state", cid], self.tmp, env={})
            assert native == python, (native, python)
        assert run([str(NATIVE), "--root", self.root, "state", cid], self.tmp) == python
        assert python[0] == 0
        return python[1]


@pytest.fixture
def ctx(tmp_path: Path, state_root: str, strict: str, leak_check: object):
    c = Ctx(tmp_path, state_root, strict)
    yield c
    for cid in os.listdir(state_root):
        c.py("delete", "--force", cid)


def _status(out: bytes) -> str:
    import json

    return json.loads(out)["status"]  # type: ignore[no-any-return]


def test_every_status_byte_identical(ctx: Ctx, make_bundle) -> None:
    def annotate(config: dict) -> None:
        config["annotations"] = {"qu\"ote": "back\\slash \"q\" \u00e9t\u00e9 \U0001f600",
                                 "ctl": "tab\there\nnl", "plain": "x"}

    cid = f"fast-{uuid.uuid4().hex[:8]}"
    bundle = make_bundle(["sh", "-c", LOOP], annotate)
    assert ctx.py("create", "-b", bundle, cid)[0] == 0
    assert _status(ctx.in_c(cid)) == "created"
    assert ctx.py("start", cid)[0] == 0
    assert _status(ctx.in_c(cid)) == "running"
    assert ctx.py("pause", cid)[0] == 0
    assert _status(ctx.in_c(cid)) == "paused"
    assert ctx.py("resume", cid)[0] == 0
    assert _status(ctx.in_c(cid)) == "running"
    assert ctx.py("kill", cid, "KILL")[0] == 0
    _stopped(ctx, cid)
    out = ctx.in_c(cid)
    assert _status(out) == "stopped" and b'"pid": 0,' in out
    assert ctx.py("delete", cid)[0] == 0
    ctx.same("state", cid)


def test_created_without_annotations(ctx: Ctx, make_bundle) -> None:
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    assert ctx.py("create", "-b", make_bundle(["sh", "-c", LOOP]), cid)[0] == 0
    out = ctx.in_c(cid)
    assert _status(out) == "created" and b"annotations" not in out


def test_library_containers_have_no_companion(ctx: Ctx, make_bundle) -> None:
    """state.fast is the CLI's: a container the library made has none (one write less
    per create) and the front end hands it to Python, which answers as for any other."""
    from containerkit import Bundle, NativeDriver, new_container

    cid = f"fast-{uuid.uuid4().hex[:8]}"
    config = Bundle(make_bundle(["sh", "-c", LOOP]), id=cid, root=ctx.root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        assert not (Path(ctx.root) / cid / "state.fast").exists()
        assert run([ctx.strict, "--root", ctx.root, "state", cid], ctx.tmp)[0] \
            == FALLBACK_STATUS
        code, out, _ = ctx.same("state", cid)
        assert code == 0 and _status(out) == "created"


def test_stale_or_missing_companion_falls_back(ctx: Ctx, make_bundle) -> None:
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    assert ctx.py("create", "-b", make_bundle(["sh", "-c", LOOP]), cid)[0] == 0
    ctx.in_c(cid)
    statedir = Path(ctx.root) / cid
    # a state.json the companion was not written with (another inode): Python answers
    data = (statedir / "state.json").read_bytes()
    (statedir / "state.json.new").write_bytes(data)
    os.rename(statedir / "state.json.new", statedir / "state.json")
    assert run([ctx.strict, "--root", ctx.root, "state", cid], ctx.tmp)[0] == FALLBACK_STATUS
    ctx.same("state", cid)
    os.unlink(statedir / "state.fast")
    assert run([ctx.strict, "--root", ctx.root, "state", cid], ctx.tmp)[0] == FALLBACK_STATUS
    ctx.same("state", cid)


@pytest.mark.parametrize("args", [
    ["state", "nosuch"], ["state"], ["state", "a", "b"], ["--bogus", "state", "x"],
    ["--debug", "state", "nosuch"], ["--log-format", "xml", "state", "x"], ["state", "-x"],
    ["state", "../etc"], ["--root"], ["state", "--help"], ["--version"], ["list"],
])
def test_everything_else_is_python(ctx: Ctx, args: list[str]) -> None:
    code, _, _ = ctx.same(*args)
    assert run([ctx.strict, "--root", ctx.root, *args], ctx.tmp)[0] == FALLBACK_STATUS
    ctx.same(*args, env={})
    if args == ["state", "nosuch"]:
        assert code != 0


def test_missing_root_is_python(ctx: Ctx) -> None:
    for root in (str(ctx.tmp / "no-such-root"), ""):
        native = run([str(NATIVE), "--root", root, "state", "x1"], ctx.tmp)
        python = run([str(PYTHON), "--root", root, "state", "x1"], ctx.tmp)
        assert native == python and native[0] != 0 and b"Traceback" not in native[2]


def test_root_with_dotdot_is_pythons(ctx: Ctx, make_bundle, tmp_path: Path) -> None:
    """Python takes os.path.abspath(--root): "link/../state" is the state root beside the
    link, where the kernel would walk up from the link's target to another root (holding
    a container of the same id here). C must not answer for that other one."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "inner").mkdir(parents=True)
    (tmp_path / "link").symlink_to(elsewhere / "inner")
    dotdot = f"{tmp_path}/link/../{Path(ctx.root).name}"
    assert os.path.abspath(dotdot) == ctx.root
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    decoy = str(elsewhere / "state")
    assert ctx.py("create", "-b", make_bundle(["sh", "-c", LOOP]), cid)[0] == 0
    assert run([str(PYTHON), "--root", decoy, "create", "-b", make_bundle(["true"]), cid],
               ctx.tmp)[0] == 0
    try:
        for args in (["state", cid], ["kill", cid, "CONT"], ["start", cid], ["delete", cid]):
            assert run([ctx.strict, "--root", dotdot, *args], ctx.tmp)[0] == FALLBACK_STATUS
        native = run([str(NATIVE), "--root", dotdot, "state", cid], ctx.tmp)
        assert native == run([str(PYTHON), "--root", dotdot, "state", cid], ctx.tmp)
        assert native[0] == 0 and _status(native[1]) == "created"
        assert str(elsewhere) not in native[1].decode()
    finally:
        run([str(PYTHON), "--root", decoy, "delete", "--force", cid], ctx.tmp)


@pytest.mark.parametrize("form", ["{root}/", "{root}/.", "{parent}/./{name}", "{parent}//{name}",
                                  "/{root}", "{rel}"])
def test_root_not_in_abspath_form_is_pythons(ctx: Ctx, make_bundle, form: str) -> None:
    """The paths in messages are built from --root: C answers only for a root already in
    the form Python gives it (absolute, no empty, "." or ".." component, no trailing
    slash), so that a failure C reports itself names the same path."""
    root = Path(ctx.root)
    text = form.format(root=root, parent=root.parent, name=root.name,
                       rel=os.path.relpath(root, "/"))     # run() works in "/"
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    assert ctx.py("create", "-b", make_bundle(["true"]), cid)[0] == 0
    assert run([ctx.strict, "--root", text, "state", cid], ctx.tmp)[0] == FALLBACK_STATUS
    native = run([str(NATIVE), "--root", text, "state", cid], ctx.tmp)
    assert native[0] == 0 and native == run([str(PYTHON), "--root", text, "state", cid],
                                            ctx.tmp)


# -- start --------------------------------------------------------------------------------

def _started(ctx: Ctx, cid: str) -> bool:
    return _status(ctx.py("state", cid)[1]) == "running"


def test_start_is_answered_in_c(ctx: Ctx, make_bundle, tmp_path: Path) -> None:
    """A created container another process made: released without Python, and from
    inside it is the very process that was waiting (it writes a file once running)."""
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    mark = "/dev/shm/started"
    bundle = make_bundle(["sh", "-c", f"echo up > {mark}; {LOOP}"])
    for argv in (["--root", ctx.root], [f"--root={ctx.root}", "--log-format", "json",
                                         "--log", str(tmp_path / "log")]):
        assert ctx.py("create", "-b", bundle, cid)[0] == 0
        pid = int(__import__("json").loads(ctx.py("state", cid)[1])["pid"])
        assert run([ctx.strict, *argv, "start", cid], ctx.tmp, env={}) == (0, b"", b"")
        assert _started(ctx, cid)
        assert not (Path(ctx.root) / cid / "exec.fifo").exists()
        for _ in range(200):        # the init's write is asynchronous: poll
            if os.path.exists(f"/proc/{pid}/root{mark}"):
                break
            subprocess.run(["sleep", "0.05"])
        assert Path(f"/proc/{pid}/root{mark}").read_text() == "up\n"
        assert ctx.py("delete", "--force", cid)[0] == 0


@pytest.mark.parametrize("hook", ["poststart", "startContainer"])
def test_start_with_hooks_is_python(ctx: Ctx, make_bundle, hook: str) -> None:
    def edit(config: dict) -> None:
        config["hooks"] = {hook: [{"path": "/bin/true"}]}

    cid = f"fast-{uuid.uuid4().hex[:8]}"
    assert ctx.py("create", "-b", make_bundle(["sh", "-c", LOOP], edit), cid)[0] == 0
    assert run([ctx.strict, "--root", ctx.root, "start", cid], ctx.tmp)[0] == FALLBACK_STATUS
    assert not _started(ctx, cid)
    assert run([str(NATIVE), "--root", ctx.root, "start", cid], ctx.tmp) == (0, b"", b"")
    assert _started(ctx, cid)


def test_start_refusals_are_pythons(ctx: Ctx, make_bundle) -> None:
    """Running, paused, stopped, unknown, stale companion: Python's messages, and the
    strict build shows none of them was decided in C."""
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    assert ctx.py("create", "-b", make_bundle(["sh", "-c", LOOP]), cid)[0] == 0
    statedir = Path(ctx.root) / cid
    data = (statedir / "state.json").read_bytes()       # stale: another inode
    (statedir / "state.json.new").write_bytes(data)
    os.rename(statedir / "state.json.new", statedir / "state.json")
    assert run([ctx.strict, "--root", ctx.root, "start", cid], ctx.tmp)[0] == FALLBACK_STATUS
    assert ctx.py("start", cid)[0] == 0
    assert ctx.py("pause", cid)[0] == 0
    for then in ("resume", None):       # paused, then running
        assert run([ctx.strict, "--root", ctx.root, "start", cid], ctx.tmp)[0] \
            == FALLBACK_STATUS
        code, _, err = ctx.same("start", cid)
        assert code != 0 and b"cannot start" in err, err
        if then:
            assert ctx.py(then, cid)[0] == 0
    assert ctx.py("kill", cid, "KILL")[0] == 0
    _stopped(ctx, cid)
    assert run([ctx.strict, "--root", ctx.root, "start", cid], ctx.tmp)[0] == FALLBACK_STATUS
    code, _, err = ctx.same("start", cid)
    assert code != 0 and b"stopped" in err, err
    for args in (["start", "nosuch"], ["--debug", "start", "nosuch"], ["start"]):
        assert run([ctx.strict, "--root", ctx.root, *args], ctx.tmp)[0] == FALLBACK_STATUS
        assert ctx.same(*args)[0] != 0


# -- delete -------------------------------------------------------------------------------

def _stopped(ctx: Ctx, cid: str) -> None:
    for _ in range(200):        # the init's end is asynchronous: poll, no timed assertion
        if _status(ctx.py("state", cid)[1]) == "stopped":
            return
        subprocess.run(["sleep", "0.05"])
    raise AssertionError(f"{cid} did not stop")


def _cgroup_of(ctx: Ctx, cid: str) -> str:
    import json

    return json.loads((Path(ctx.root) / cid / "state.json").read_text())["cgroup"]


@pytest.mark.parametrize("flags", [[], ["--force"], ["-f"]])
def test_delete_of_a_stopped_container_is_answered_in_c(ctx: Ctx, make_bundle,
                                                          flags: list[str]) -> None:
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    assert ctx.py("run", "-d", "-b", make_bundle(["true"]), cid)[0] == 0
    _stopped(ctx, cid)
    cgroup = _cgroup_of(ctx, cid)
    assert os.path.isdir(cgroup)
    assert run([ctx.strict, "--root", ctx.root, "delete", *flags, cid], ctx.tmp, env={}) \
        == (0, b"", b"")
    assert not (Path(ctx.root) / cid).exists() and not os.path.exists(cgroup)
    ctx.same("state", cid)                    # "container does not exist", from Python


def test_delete_of_a_created_container_whose_init_died_is_answered_in_c(
        ctx: Ctx, make_bundle) -> None:
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    assert ctx.py("create", "-b", make_bundle(["true"]), cid)[0] == 0
    assert ctx.py("kill", cid, "KILL")[0] == 0
    _stopped(ctx, cid)
    assert run([ctx.strict, "--root", ctx.root, "delete", cid], ctx.tmp) == (0, b"", b"")
    assert not (Path(ctx.root) / cid).exists()


def test_delete_with_work_for_python_falls_back(ctx: Ctx, make_bundle, tmp_path: Path) -> None:
    """A poststop hook, a running container, a process left in the cgroup, files that are
    not the plain state: the strict build defers each, and the real one deletes all."""
    mark = tmp_path / "poststop-ran"

    def poststop(config: dict) -> None:
        config["hooks"] = {"poststop": [{"path": "/bin/sh",
                                         "args": ["sh", "-c", f"echo ran > {mark}"]}]}

    cid = f"fast-{uuid.uuid4().hex[:8]}"
    assert ctx.py("run", "-d", "-b", make_bundle(["true"], poststop), cid)[0] == 0
    _stopped(ctx, cid)
    assert run([ctx.strict, "--root", ctx.root, "delete", cid], ctx.tmp)[0] == FALLBACK_STATUS
    assert run([str(NATIVE), "--root", ctx.root, "delete", cid], ctx.tmp)[0] == 0
    assert mark.read_text() == "ran\n"

    cid = f"fast-{uuid.uuid4().hex[:8]}"
    assert ctx.py("run", "-d", "-b", make_bundle(["sh", "-c", LOOP]), cid)[0] == 0
    assert run([ctx.strict, "--root", ctx.root, "delete", cid], ctx.tmp)[0] == FALLBACK_STATUS
    code, _, err = ctx.same("delete", cid)
    assert code != 0 and b"running" in err, err
    assert ctx.py("pause", cid)[0] == 0       # paused: Python thaws what it kills
    assert run([ctx.strict, "--root", ctx.root, "delete", "-f", cid], ctx.tmp)[0] \
        == FALLBACK_STATUS
    assert run([str(NATIVE), "--root", ctx.root, "delete", "-f", cid], ctx.tmp)[0] == 0

    # stopped, but a process of ours sits in its cgroup: Python kills it and waits
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    assert ctx.py("run", "-d", "-b", make_bundle(["true"]), cid)[0] == 0
    _stopped(ctx, cid)
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        Path(_cgroup_of(ctx, cid), "cgroup.procs").write_text(str(sleeper.pid))
        assert run([ctx.strict, "--root", ctx.root, "delete", cid], ctx.tmp)[0] \
            == FALLBACK_STATUS
        assert run([str(NATIVE), "--root", ctx.root, "delete", cid], ctx.tmp)[0] == 0
        assert sleeper.wait(timeout=60) == -9
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()

    # an entry that is not a plain state file (a directory)
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    assert ctx.py("run", "-d", "-b", make_bundle(["true"]), cid)[0] == 0
    _stopped(ctx, cid)
    (Path(ctx.root) / cid / "extra").mkdir()
    assert run([ctx.strict, "--root", ctx.root, "delete", cid], ctx.tmp)[0] == FALLBACK_STATUS
    (Path(ctx.root) / cid / "extra").rmdir()
    assert run([ctx.strict, "--root", ctx.root, "delete", cid], ctx.tmp)[0] == 0

    for args in (["delete", "nosuch"], ["delete", "--force", "nosuch"], ["delete", "-x", "a"],
                 ["delete", "--force=true", "a"], ["delete"], ["--debug", "delete", "nosuch"]):
        assert run([ctx.strict, "--root", ctx.root, *args], ctx.tmp)[0] == FALLBACK_STATUS
        ctx.same(*args)


@pytest.mark.parametrize("start", [False, True])
def test_forced_delete_kills_in_c(ctx: Ctx, make_bundle, start: bool) -> None:
    """delete --force of a created or running container: the init and everything else in
    its cgroup (an exec'd process here) killed, waited for, and all removed, in C."""
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    assert ctx.py("create", "-b", make_bundle(["sh", "-c", LOOP]), cid)[0] == 0
    if start:
        assert ctx.py("start", cid)[0] == 0
        assert ctx.py("exec", "-d", cid, "sleep", "600")[0] == 0
    import json

    pid = json.loads(ctx.py("state", cid)[1])["pid"]
    cgroup = _cgroup_of(ctx, cid)
    pidfd = os.pidfd_open(pid)
    try:
        assert run([ctx.strict, "--root", ctx.root, "delete", "--force", cid], ctx.tmp,
                   env={}) == (0, b"", b"")
        import select

        # the init exits (a pid namespace's init finishes once its namespace is empty,
        # a little after the cgroup is: a deadline, not a timed assertion)
        assert select.select([pidfd], [], [], 60)[0]
    finally:
        os.close(pidfd)
    assert not (Path(ctx.root) / cid).exists() and not os.path.exists(cgroup)


# -- kill ---------------------------------------------------------------------------------

def test_kill_is_answered_in_c(ctx: Ctx, make_bundle) -> None:
    """The init gets the signal (it reports each one it traps), created or running."""
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    script = ("trap 'echo USR1 >> /dev/shm/got' USR1; trap 'echo HUP >> /dev/shm/got' HUP; "
              "trap 'echo TERM >> /dev/shm/got; exit 3' TERM; "
              "while :; do sleep 0.05; done")
    assert ctx.py("create", "-b", make_bundle(["sh", "-c", script]), cid)[0] == 0
    import json

    pid = json.loads(ctx.py("state", cid)[1])["pid"]
    assert run([ctx.strict, "--root", ctx.root, "kill", cid, "CONT"], ctx.tmp) == (0, b"", b"")
    assert ctx.py("start", cid)[0] == 0
    got = Path(f"/proc/{pid}/root/dev/shm/got")
    for sig, seen in (("usr1", "USR1\n"), ("SIGHUP", "USR1\nHUP\n"), ("10", "USR1\nHUP\nUSR1\n")):
        assert run([ctx.strict, "--root", ctx.root, "kill", cid, sig], ctx.tmp, env={}) \
            == (0, b"", b"")
        for _ in range(200):       # the trap runs after the current sleep: poll
            if got.exists() and got.read_text() == seen:
                break
            subprocess.run(["sleep", "0.05"])
        assert got.read_text() == seen
    assert run([ctx.strict, "--root", ctx.root, "kill", cid], ctx.tmp) == (0, b"", b"")
    _stopped(ctx, cid)
    # stopped: Python's "container not running", from the real front end too
    assert run([ctx.strict, "--root", ctx.root, "kill", cid, "KILL"], ctx.tmp)[0] \
        == FALLBACK_STATUS
    code, _, err = ctx.same("kill", cid, "KILL")
    assert code != 0 and b"container not running" in err, err


@pytest.mark.parametrize("args", [
    ["kill", "--all", "ID", "KILL"], ["kill", "-a", "ID"], ["kill", "ID", "RTMIN+1"],
    ["kill", "ID", "0"], ["kill", "ID", " KILL"], ["kill", "ID", "NOSUCH"], ["kill", "ID", "65"],
    ["kill", "ID", "09"], ["kill", "ID", "KILL", "extra"], ["kill", "nosuch", "KILL"],
])
def test_other_kills_are_python(ctx: Ctx, make_bundle, args: list[str]) -> None:
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    assert ctx.py("run", "-d", "-b", make_bundle(["sh", "-c", LOOP]), cid)[0] == 0
    args = [cid if a == "ID" else a for a in args]
    assert run([ctx.strict, "--root", ctx.root, *args], ctx.tmp)[0] == FALLBACK_STATUS
    native = run([str(NATIVE), "--root", ctx.root, *args], ctx.tmp)
    assert b"Traceback" not in native[2]


_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_failures_met_in_c_read_and_log_as_pythons(ctx: Ctx, make_bundle, tmp_path: Path,
                                                   fmt: str) -> None:
    """Once ``start`` released the init, C cannot hand a failure to Python: unlinking
    exec.fifo fails here (the state dir is immutable: EPERM, root or not). C reports it
    itself, on stderr and in --log, with the words and the record format of Python's
    Log.error; the root's name needs escaping in JSON (non-ASCII, control characters,
    DEL) and has whitespace, ASCII and not, that error_message folds."""
    from containerkit.cli.main import Log

    root = tmp_path / "r\u00f6\u00f6t\x01 \t x\U0001f600\u00a0\u2003y\x7f"
    root.mkdir()
    cid = f"fast-{uuid.uuid4().hex[:8]}"
    log = tmp_path / f"log-{fmt}"
    py = [str(PYTHON), "--root", str(root)]
    assert run([*py, "create", "-b", make_bundle(["sh", "-c", LOOP]), cid], tmp_path)[0] == 0
    state = root / cid
    subprocess.run(["chattr", "+i", str(state)], check=True)
    try:
        result = run([ctx.strict, "--root", str(root), "--log-format", fmt, "--log", str(log),
                      "start", cid], tmp_path, env={})
        pid = int(__import__("json").loads(run([*py, "state", cid], tmp_path)[1])["pid"])
        for _ in range(200):    # released: the init exec's the program (asynchronously)
            released = os.readlink(f"/proc/{pid}/exe").endswith("busybox")
            if released:
                break
            subprocess.run(["sleep", "0.05"])
    finally:
        subprocess.run(["chattr", "-i", str(state)], check=True)
        run([*py, "delete", "--force", cid], tmp_path)
    msg = " ".join(f"{state}/exec.fifo: Operation not permitted".split())
    assert result == (1, b"", f"containerkit: {msg}\n".encode())
    assert released                         # before the failure
    python_log = Log()
    python_log.format = fmt
    expected = python_log._record("error", msg) + "\n"
    assert _STAMP.sub("T", log.read_text()) == _STAMP.sub("T", expected)
