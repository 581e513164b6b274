"""The ``containerkit`` command line, run as a separate process like podman/containerd do.

Needs root (real namespaces and cgroups). Every test uses its own ``--root`` under a tmp
dir and its own container ids; a fixture deletes (``delete --force``) every id a test used,
even when the test fails. Failure cases also check that nothing is left behind: no state
directory, no cgroup, no process that mentions the id, no mount of the bundle.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from ckhelpers import CLI, CLI_SCRIPT, COUNTER, advances, assert_one_error_line, counter

from containerkit import spec as oci
from containerkit.busybox import make_bundle

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

STATE_KEYS = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]
LOOP = "while :; do sleep 0.05; done"


def _cgroup_root() -> str:
    from containerkit.cgroups import cgroup2_mountpoint

    return cgroup2_mountpoint()


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"<rc={self.returncode} out={self.stdout!r} err={self.stderr!r}>"

    def json(self) -> object:
        return json.loads(self.stdout)


class CK:
    """The CLI with one test's private state root; remembers ids to clean up."""

    def __init__(self, tmp: Path, rootfs: str) -> None:
        self.tmp = tmp
        self.root = str(tmp / "state")
        self.rootfs = rootfs
        self.ids: list[str] = []
        self.bundles: list[str] = []
        self._n = 0

    def new_id(self) -> str:
        cid = f"ckt-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def bundle(self, args: list[str], *, pid_ns: bool = True, raw: str | None = None) -> str:
        """A bundle dir whose config.json runs ``args`` on the shared busybox rootfs."""
        self._n += 1
        path = self.tmp / f"bundle{self._n}"
        path.mkdir()
        if raw is None:
            config = oci.default_spec()
            assert config.process is not None and config.root is not None and config.linux
            config.process.args = list(args)
            config.root.path = self.rootfs
            if not pid_ns:
                config.linux.namespaces = [n for n in config.linux.namespaces or []
                                           if n.type != "pid"]
            raw = config.to_json()
        (path / "config.json").write_text(raw)
        self.bundles.append(str(path))
        return str(path)

    def __call__(self, *args: str, root: bool = True, timeout: float = 30,
                 env: dict[str, str] | None = None) -> Result:
        """Run the CLI; stdout/stderr go to files, not pipes: a created container keeps
        the caller's stdio open and would make a pipe reader wait for it."""
        cmd = [*CLI, "--root", self.root, *args] if root else [*CLI, *args]
        self._n += 1
        out, err = self.tmp / f"out{self._n}", self.tmp / f"err{self._n}"
        with open(out, "w+") as fo, open(err, "w+") as fe:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                                  timeout=timeout, env=env, cwd="/" if env == {} else None)
        return Result(proc.returncode, out.read_text(), err.read_text())

    def popen(self, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        self._n += 1
        out = self.tmp / f"out{self._n}"
        with open(out, "w") as fo:
            proc = subprocess.Popen([*CLI, "--root", self.root, *args],
                                    stdin=subprocess.DEVNULL, stdout=fo,
                                    stderr=subprocess.STDOUT)
        return proc, out

    def state(self, cid: str) -> dict:
        res = self("state", cid)
        assert res.returncode == 0, res
        return res.json()  # type: ignore[return-value]

    def wait_status(self, cid: str, status: str, timeout: float = 10) -> dict:
        """Poll ``state`` (the container may not even exist yet) until it shows ``status``."""
        deadline = time.monotonic() + timeout
        while True:
            res = self("state", cid)
            doc = res.json() if res.returncode == 0 else {}
            if doc.get("status") == status:  # type: ignore[union-attr]
                return doc  # type: ignore[return-value]
            assert time.monotonic() < deadline, res
            time.sleep(0.05)

    def root_entries(self) -> set[str]:
        try:
            return set(os.listdir(self.root))
        except FileNotFoundError:
            return set()


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def assert_nothing_left(ck: CK, cid: str, before: set[str] | None = None) -> None:
    entries = ck.root_entries()
    if before is not None:
        assert entries == before, f"new state entries: {entries - before}"
    assert cid not in entries
    assert not os.path.exists(os.path.join(_cgroup_root(), "containerkit", cid))
    assert processes_mentioning(cid) == []
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    for bundle in ck.bundles:
        assert bundle not in mounts
    assert ck.rootfs not in mounts


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a CLI process this test started: SIGTERM first (it cleans up), then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_output(out: Path, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in out.read_text():
        assert time.monotonic() < deadline, out.read_text()
        time.sleep(0.02)


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> str:
    bundle = tmp_path_factory.mktemp("busybox")
    make_bundle(str(bundle))
    return str(bundle / "rootfs")


@pytest.fixture
def ck(tmp_path: Path, rootfs: str):
    cli = CK(tmp_path, rootfs)
    yield cli
    for cid in cli.ids:
        cli("delete", "--force", cid)
    for cid in cli.ids:
        assert_nothing_left(cli, cid)


# -- global flags --------------------------------------------------------------------------

def test_version(ck: CK) -> None:
    res = ck("--version", root=False)
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    # runc's layout: "<name> version X", then "key: value" lines (commit, spec, runtime)
    assert lines[0] == "containerkit version 0.1.0"
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert fields["spec"] == "1.3.0"
    assert fields["commit"] and fields["python"] == sys.version.split()[0]
    assert "+SECCOMP" in fields["features"] and "-CRIU" in fields["features"]
    module = subprocess.run([sys.executable, "-m", "containerkit", "--version"],
                            capture_output=True, text=True)
    assert module.returncode == 0 and module.stdout == res.stdout


def test_help(ck: CK) -> None:
    res = ck("--help", root=False)
    assert res.returncode == 0 and "create" in res.stdout and "--root" in res.stdout
    res = ck("create", "--help")
    assert res.returncode == 0 and "--pid-file" in res.stdout and res.stderr == ""


# -- spec ------------------------------------------------------------------------------------

def test_spec_writes_config_that_loads(ck: CK, tmp_path: Path) -> None:
    bundle = tmp_path / "specbundle"
    bundle.mkdir()
    res = ck("spec", "--bundle", str(bundle))
    assert res.returncode == 0, res
    text = (bundle / "config.json").read_text()
    config = oci.load(str(bundle / "config.json"))
    assert config.process is not None and config.process.args == ["sh"]
    assert config.oci_version == "1.3.0"

    again = ck("spec", "-b", str(bundle))
    assert_one_error_line(again, "File config.json exists. Remove it first.")
    assert (bundle / "config.json").read_text() == text


def test_spec_rootless_and_cwd(ck: CK, tmp_path: Path) -> None:
    bundle = tmp_path / "rl"
    bundle.mkdir()
    proc = subprocess.run([*CLI, "spec", "--rootless"], cwd=bundle, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    config = oci.load(str(bundle / "config.json"))
    assert config.linux is not None and config.linux.uid_mappings


# -- run -------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, pid_ns, code", [
    (["true"], True, 0),
    (["sh", "-c", "exit 3"], True, 3),
    # as pid 1 of its own pid namespace, sh cannot SIGKILL itself (the kernel protects a
    # namespace init from its own members); without one, it can
    (["sh", "-c", "kill -9 $$"], False, 137),
], ids=["true", "exit3", "kill9"])
def test_run_exit_codes(ck: CK, args: list[str], pid_ns: bool, code: int) -> None:
    cid = ck.new_id()
    res = ck("run", "--bundle", ck.bundle(args, pid_ns=pid_ns), cid)
    assert res.returncode == code, res
    assert res.stderr == ""
    assert_nothing_left(ck, cid)


def test_run_killed_from_outside_exits_137(ck: CK) -> None:
    cid = ck.new_id()
    proc, out = ck.popen("run", "-b", ck.bundle(["sh", "-c", LOOP, cid]), cid)
    try:
        ck.wait_status(cid, "running")
        assert ck("kill", cid, "KILL").returncode == 0
        assert proc.wait(timeout=10) == 137, out.read_text()
    finally:
        _stop(proc)
    assert_nothing_left(ck, cid)


def test_run_output_goes_to_callers_stdout(ck: CK) -> None:
    cid = ck.new_id()
    res = ck("run", "-b", ck.bundle(["sh", "-c", "echo out-$0; echo err-$0 >&2", cid]), cid)
    assert res.returncode == 0, res
    assert res.stdout == f"out-{cid}\n"
    assert res.stderr == f"err-{cid}\n"


def test_run_forwards_signals(ck: CK) -> None:
    cid = ck.new_id()
    script = (f'trap "echo got-winch" WINCH; trap "echo got-usr1" USR1; '
              f'trap "echo got-term; exit 7" TERM; echo ready; {LOOP}')
    proc, out = ck.popen("run", "-b", ck.bundle(["sh", "-c", script, cid]), cid)
    try:
        ck.wait_status(cid, "running")
        _wait_output(out, "ready")
        proc.send_signal(signal.SIGWINCH)
        _wait_output(out, "got-winch")
        proc.send_signal(signal.SIGUSR1)
        _wait_output(out, "got-usr1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 7
    finally:
        _stop(proc)
    assert out.read_text() == "ready\ngot-winch\ngot-usr1\ngot-term\n"
    assert_nothing_left(ck, cid)


def test_run_detach_and_keep(ck: CK) -> None:
    cid = ck.new_id()
    pidfile = ck.tmp / "run.pid"
    res = ck("run", "-d", "--pid-file", str(pidfile), "-b", ck.bundle(["sh", "-c", LOOP, cid]),
             cid)
    assert res.returncode == 0, res
    doc = ck.state(cid)
    assert doc["status"] == "running"
    assert pidfile.read_text() == str(doc["pid"])

    kept = ck.new_id()
    res = ck("run", "--keep", "-b", ck.bundle(["true"]), kept)
    assert res.returncode == 0, res
    doc = ck.state(kept)
    assert doc["status"] == "stopped" and doc["pid"] == 0
    assert ck("delete", kept).returncode == 0
    assert_nothing_left(ck, kept)


# -- create / start / state / kill / delete ----------------------------------------------------

def test_create_then_start_from_separate_processes(ck: CK) -> None:
    cid = ck.new_id()
    bundle = ck.bundle(["sh", "-c", LOOP, cid])
    pidfile = ck.tmp / "sub" / "c.pid"
    pidfile.parent.mkdir()
    res = ck("create", "--bundle", bundle, "--pid-file", str(pidfile), cid)
    assert res.returncode == 0 and res.stdout == "" and res.stderr == "", res

    doc = ck.state(cid)
    assert list(doc) == STATE_KEYS
    assert doc["id"] == cid and doc["status"] == "created" and doc["bundle"] == bundle
    assert doc["rootfs"] == ck.rootfs and doc["owner"] == "" and doc["created"]
    assert pidfile.read_text() == str(doc["pid"])            # no newline, like runc
    assert os.path.exists(f"/proc/{doc['pid']}")             # outlived `create`
    assert os.listdir(pidfile.parent) == ["c.pid"]           # no temp file left

    assert ck("start", cid).returncode == 0
    running = ck.state(cid)
    assert running["status"] == "running" and running["pid"] == doc["pid"]

    assert ck("kill", cid, "KILL").returncode == 0
    stopped = ck.wait_status(cid, "stopped")
    assert stopped["pid"] == 0
    assert ck("delete", cid).returncode == 0
    assert_nothing_left(ck, cid)


def test_state_agrees_with_library(ck: CK) -> None:
    """`state` and `list` compute the live status without importing container.py (for
    speed); they must say what Container.state() says at every step of the lifecycle."""
    from types import SimpleNamespace

    from containerkit import NativeDriver, load_container

    def library(cid: str) -> tuple[str, int]:
        doc = load_container(SimpleNamespace(id=cid, root=ck.root), NativeDriver()).state()
        return doc["status"], doc.get("pid", 0)

    def cli(cid: str) -> tuple[str, int]:
        doc = ck.state(cid)
        listed = {d["id"]: d for d in ck("list", "-f", "json").json()}[cid]  # type: ignore
        assert (listed["status"], listed["pid"]) == (doc["status"], doc["pid"])
        return doc["status"], doc["pid"]

    cid = ck.new_id()
    assert ck("create", "-b", ck.bundle(["sh", "-c", LOOP, cid]), cid).returncode == 0
    assert cli(cid) == library(cid) and cli(cid)[0] == "created"
    assert ck("start", cid).returncode == 0
    assert cli(cid) == library(cid) and cli(cid)[0] == "running"
    assert ck("kill", cid, "KILL").returncode == 0
    ck.wait_status(cid, "stopped")
    assert cli(cid) == library(cid) == ("stopped", 0)


def test_short_lived_container_stops(ck: CK) -> None:
    cid = ck.new_id()
    assert ck("create", "-b", ck.bundle(["true"]), cid).returncode == 0
    assert ck("start", cid).returncode == 0
    ck.wait_status(cid, "stopped")
    assert ck("delete", cid).returncode == 0
    assert_nothing_left(ck, cid)


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9", "kill"])
def test_kill_created_container(ck: CK, sig: str) -> None:
    cid = ck.new_id()
    assert ck("create", "-b", ck.bundle(["sh", "-c", LOOP, cid]), cid).returncode == 0
    assert ck("kill", cid, sig).returncode == 0
    ck.wait_status(cid, "stopped")
    res = ck("kill", cid, "KILL")                 # nobody left to signal
    assert_one_error_line(res, "stopped")
    assert ck("delete", cid).returncode == 0
    assert_nothing_left(ck, cid)


def test_kill_running_container_default_sigterm(ck: CK) -> None:
    cid = ck.new_id()
    script = f'trap "exit 0" TERM; {LOOP}'
    assert ck("run", "-d", "-b", ck.bundle(["sh", "-c", script, cid]), cid).returncode == 0
    assert ck("kill", cid).returncode == 0
    ck.wait_status(cid, "stopped")


def test_kill_all(ck: CK) -> None:
    cid = ck.new_id()
    script = f"sleep 1000 & {LOOP}"
    assert ck("run", "-d", "-b", ck.bundle(["sh", "-c", script, cid]), cid).returncode == 0
    ck.wait_status(cid, "running")
    assert ck("kill", "--all", cid, "KILL").returncode == 0
    ck.wait_status(cid, "stopped")
    assert ck("kill", "-a", cid, "TERM").returncode == 0   # stopped: nothing to do, no error
    cgroup = os.path.join(_cgroup_root(), "containerkit", cid, "cgroup.procs")
    if os.path.exists(cgroup):
        assert open(cgroup).read() == ""


def test_delete_running_needs_force(ck: CK) -> None:
    cid = ck.new_id()
    assert ck("run", "-d", "-b", ck.bundle(["sh", "-c", LOOP, cid]), cid).returncode == 0
    pid = ck.state(cid)["pid"]
    res = ck("delete", cid)
    assert_one_error_line(res, "running")
    assert ck.state(cid)["status"] == "running"
    assert ck("delete", "--force", cid).returncode == 0
    assert not os.path.exists(f"/proc/{pid}/cmdline") or \
        open(f"/proc/{pid}/cmdline").read() == ""
    assert_nothing_left(ck, cid)


def test_list(ck: CK) -> None:
    empty = ck("list", "--format", "json")
    assert empty.returncode == 0 and empty.json() == []
    a, b = ck.new_id(), ck.new_id()
    assert ck("create", "-b", ck.bundle(["sh", "-c", LOOP, a]), a).returncode == 0
    assert ck("run", "-d", "-b", ck.bundle(["sh", "-c", LOOP, b]), b).returncode == 0

    quiet = ck("list", "-q")
    assert quiet.returncode == 0 and sorted(quiet.stdout.split()) == sorted([a, b])

    docs = {d["id"]: d for d in ck("list", "--format", "json").json()}   # type: ignore
    assert set(docs) == {a, b}
    assert docs[a]["status"] == "created" and docs[b]["status"] == "running"
    assert list(docs[a]) == STATE_KEYS and docs[a]["owner"] == "root"

    table = ck("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert sorted(line.split()[0] for line in table[1:]) == sorted([a, b])


# -- bad input: one line, nonzero, nothing left behind -----------------------------------------

def _fails_cleanly(ck: CK, cid: str, args: list[str], *needles: str) -> Result:
    before = ck.root_entries()
    res = ck(*args)
    assert_one_error_line(res, *needles)
    assert_nothing_left(ck, cid, before)
    return res


def test_missing_bundle(ck: CK) -> None:
    cid = ck.new_id()
    _fails_cleanly(ck, cid, ["create", "-b", str(ck.tmp / "nope"), cid], "nope")
    _fails_cleanly(ck, cid, ["run", "-b", str(ck.tmp / "nope"), cid], "nope")


def test_malformed_config(ck: CK) -> None:
    cid = ck.new_id()
    bundle = ck.bundle([], raw='{"ociVersion": "1.3.0", "process": ')
    _fails_cleanly(ck, cid, ["create", "-b", bundle, cid], "config.json")
    bundle = ck.bundle([], raw='{"ociVersion": "1.3.0", "root": {"path": 3}}')
    _fails_cleanly(ck, cid, ["run", "-b", bundle, cid], "root.path")


@pytest.mark.parametrize("verb", ["create", "run"])
def test_missing_executable(ck: CK, verb: str) -> None:
    cid = ck.new_id()
    bundle = ck.bundle([f"/no-such-program-{cid}"])
    _fails_cleanly(ck, cid, [verb, "-b", bundle, cid], "no such file or directory")
    bundle = ck.bundle([f"no-such-program-{cid}"])
    _fails_cleanly(ck, cid, [verb, "-b", bundle, cid], "no such file or directory")


def test_not_executable(ck: CK) -> None:
    cid = ck.new_id()
    bundle = ck.bundle(["/etc/passwd"])
    _fails_cleanly(ck, cid, ["create", "-b", bundle, cid], "permission denied")


def test_pid_file_in_missing_directory(ck: CK) -> None:
    cid = ck.new_id()
    pidfile = ck.tmp / "no-such-dir" / "c.pid"
    bundle = ck.bundle(["sh", "-c", LOOP, cid])
    for verb in ("create", "run"):
        _fails_cleanly(ck, cid, [verb, "--pid-file", str(pidfile), "-b", bundle, cid],
                       "--pid-file", "no such file or directory")


def test_list_skips_unreadable_state(ck: CK) -> None:
    good, bad = ck.new_id(), ck.new_id()
    assert ck("create", "-b", ck.bundle(["sh", "-c", LOOP, good]), good).returncode == 0
    os.makedirs(os.path.join(ck.root, bad))
    with open(os.path.join(ck.root, bad, "state.json"), "w") as f:
        f.write("{not json")
    res = ck("list", "-q")
    assert res.returncode == 0 and res.stdout == f"{good}\n"
    assert_one_error_line(Result(1, "", res.stderr), bad)
    assert_one_error_line(ck("state", bad), bad)
    assert_one_error_line(ck("delete", bad), bad)   # without force: reported, kept
    res = ck("delete", "--force", bad)            # with force: removed, as runc does
    assert res.returncode == 0 and res.stderr == ""
    assert not os.path.exists(os.path.join(ck.root, bad))


def test_delete_force_removes_abandoned_state_dir(ck: CK) -> None:
    cid = ck.new_id()
    os.makedirs(os.path.join(ck.root, cid))       # a create killed before it saved state
    assert_one_error_line(ck("delete", cid), "container does not exist")
    res = ck("delete", "--force", cid)
    assert res.returncode == 0 and res.stderr == ""
    assert ck.root_entries() == set()


def test_duplicate_id(ck: CK) -> None:
    cid = ck.new_id()
    bundle = ck.bundle(["sh", "-c", LOOP, cid])
    assert ck("create", "-b", bundle, cid).returncode == 0
    first = ck.state(cid)
    res = ck("create", "-b", bundle, cid)
    assert_one_error_line(res, cid, "exists")
    assert ck.state(cid) == first                 # the first one is untouched
    res = ck("run", "-b", bundle, cid)
    assert_one_error_line(res, "exists")
    assert ck.root_entries() == {cid}


@pytest.mark.parametrize("bad", ["a/b", "..", "../x", ".", "-x", ""])
def test_invalid_id(ck: CK, bad: str) -> None:
    bundle = ck.bundle(["true"])
    for verb in ("create", "run"):
        res = ck(verb, "-b", bundle, "--", bad) if bad.startswith("-") else ck(verb, "-b",
                                                                                bundle, bad)
        assert_one_error_line(res)
        assert ck.root_entries() == set()
    for verb in ("state", "start", "delete", "kill"):
        res = ck(verb, "--", bad)
        assert_one_error_line(res)


@pytest.mark.parametrize("verb", [["start"], ["state"], ["kill"], ["kill", "-a"], ["delete"]])
def test_unknown_id(ck: CK, verb: list[str]) -> None:
    cid = ck.new_id()
    _fails_cleanly(ck, cid, [*verb, cid], "container does not exist")


def test_delete_force_unknown_id_is_not_an_error(ck: CK) -> None:
    cid = ck.new_id()
    res = ck("delete", "--force", cid)
    assert res.returncode == 0 and res.stderr == ""


def test_start_twice(ck: CK) -> None:
    cid = ck.new_id()
    assert ck("run", "-d", "-b", ck.bundle(["sh", "-c", LOOP, cid]), cid).returncode == 0
    res = ck("start", cid)
    assert_one_error_line(res, "running")
    assert ck.state(cid)["status"] == "running"


@pytest.mark.parametrize("sig", ["FOO", "SIGFOO", "65", "-1", "9x", "RTMIN+99"])
def test_invalid_signal(ck: CK, sig: str) -> None:
    cid = ck.new_id()
    assert ck("create", "-b", ck.bundle(["sh", "-c", LOOP, cid]), cid).returncode == 0
    res = ck("kill", cid, "--", sig) if sig.startswith("-") else ck("kill", cid, sig)
    assert_one_error_line(res, "signal")
    assert ck.state(cid)["status"] == "created"


@pytest.mark.parametrize("argv, needle", [
    (["frobnicate", "x"], "unknown command"),
    (["--bogus", "state", "x"], "--bogus"),
    (["state", "--bogus", "x"], "--bogus"),
    (["create", "--pid-file"], "--pid-file"),
    (["create"], "container-id"),
    (["state"], "container-id"),
    (["state", "a", "b"], "unexpected argument"),
    (["--log-format", "xml", "state", "x"], "log-format"),
    (["--root"], "--root"),
    (["--systemd-cgroup", "state", "x"], "no systemd cgroup manager on this host"),
    (["--rootless", "maybe", "state", "x"], "rootless"),
    (["list", "--format", "yaml"], "yaml"),
    (["create", "--preserve-fds", "many", "x"], "preserve-fds"),
    (["kill", "-s", "KILL", "x"], "-s"),
])
def test_usage_errors(ck: CK, argv: list[str], needle: str) -> None:
    res = ck(*argv)
    assert_one_error_line(res, needle)
    assert res.stdout == ""
    assert ck.root_entries() == set()


@pytest.mark.parametrize("flags, needle", [
    (["--console-socket", "/tmp/no.sock"], "console"),
    (["--preserve-fds", "2"], "preserve-fds"),
])
def test_refused_create_flags(ck: CK, flags: list[str], needle: str) -> None:
    cid = ck.new_id()
    bundle = ck.bundle(["true"])
    _fails_cleanly(ck, cid, ["create", *flags, "-b", bundle, cid], needle)
    _fails_cleanly(ck, cid, ["run", *flags, "-b", bundle, cid], needle)


def test_accepted_compat_flags(ck: CK) -> None:
    cid = ck.new_id()
    res = ck("create", "--no-new-keyring", "--preserve-fds", "0", "-b", ck.bundle(["true"]), cid)
    assert res.returncode == 0, res
    res = ck("--rootless", "false", "--debug", "delete", "--force", cid)
    assert res.returncode == 0, res
    res = ck("--rootless=auto", "--criu", "criu", "list", "-q")
    assert res.returncode == 0 and res.stdout == ""


@pytest.mark.parametrize("argv", [["checkpoint", "x"], ["restore", "x"]])
def test_unsupported_verbs(ck: CK, argv: list[str]) -> None:
    res = ck(*argv)
    assert_one_error_line(res, argv[0], "not supported yet")
    assert res.returncode == 1


def test_checkpoint_refused_leaves_the_container_running(ck: CK) -> None:
    cid = ck.new_id()
    assert ck("run", "-d", "-b", ck.bundle(["sh", "-c", LOOP, cid]), cid).returncode == 0
    res = ck("--criu", "/usr/sbin/criu", "checkpoint", "--image-path", str(ck.tmp / "img"),
             cid)
    assert_one_error_line(res, "checkpoint", "CRIU")
    assert ck.state(cid)["status"] == "running"
    assert not (ck.tmp / "img").exists()


@pytest.mark.parametrize("value", ["true", "false", "auto", "1", "0"])
def test_rootless_values(ck: CK, value: str) -> None:
    """runc's --rootless: as root with cgroup access, every value runs the container."""
    cid = ck.new_id()
    res = ck("--rootless", value, "run", "-b", ck.bundle(["true"]), cid)
    assert res.returncode == 0, res


def test_empty_environment(ck: CK) -> None:
    """podman and conmon call the runtime with no PATH and no HOME (and cwd /)."""
    cid = ck.new_id()
    bundle = ck.bundle(["sh", "-c", LOOP, cid])
    for args in (["create", "-b", bundle, cid], ["start", cid], ["state", cid],
                 ["kill", cid, "KILL"], ["delete", "--force", cid],
                 ["run", "-b", ck.bundle(["true"]), cid], ["list", "-q"]):
        res = ck(*args, env={})
        assert res.returncode == 0 and res.stderr == "", (args, res)
    assert ck.root_entries() == set()


def test_kill_signal_0_checks_the_init(ck: CK) -> None:
    cid = ck.new_id()
    assert ck("create", "-b", ck.bundle(["sh", "-c", LOOP, cid]), cid).returncode == 0
    res = ck("kill", cid, "0")
    assert res.returncode == 0 and res.stderr == "", res
    assert ck.state(cid)["status"] == "created"


def test_runc_wordings_clients_parse(ck: CK) -> None:
    """Texts podman and containerd's shim match on (compared with runc 1.1.5)."""
    cid = ck.new_id()
    bundle = ck.bundle(["sh", "-c", "exit 0"])
    assert ck("create", "-b", bundle, cid).returncode == 0
    assert_one_error_line(ck("create", "-b", bundle, cid),
                          "container with given ID already exists")
    assert ck("start", cid).returncode == 0
    ck.wait_status(cid, "stopped")
    # containerd's shim takes "container not running" from kill as "already finished"
    assert_one_error_line(ck("kill", cid, "KILL"), "container not running")
    assert_one_error_line(ck("state", "nope-" + cid), "container does not exist")


# -- --log ----------------------------------------------------------------------------------

def test_log_file_that_cannot_be_opened(ck: CK) -> None:
    res = ck("--log", str(ck.tmp / "missing" / "x.log"), "list")
    assert_one_error_line(res, "--log", "no such file or directory")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_file(ck: CK, fmt: str) -> None:
    log = ck.tmp / "ck.log"
    log.write_text("earlier line\n")
    cid = ck.new_id()
    res = ck("--log", str(log), "--log-format", fmt, "state", cid)
    assert_one_error_line(res, "container does not exist")
    lines = log.read_text().splitlines()
    assert lines[0] == "earlier line" and len(lines) == 2
    if fmt == "json":
        record = json.loads(lines[1])
        assert record["level"] == "error"
        assert record["msg"] == "container does not exist"
        assert record["time"].endswith("Z")
    else:
        assert lines[1].startswith('time="') and "level=error" in lines[1]
        assert 'msg="container does not exist"' in lines[1]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_error_naming_a_path_that_is_not_utf8(ck: CK, fmt: str) -> None:
    """A bundle path that is not UTF-8: the one error line names it as the bytes it is on
    stderr and in a text --log record (as runc, and the native front end, write it), as
    json's \\udcff in a JSON one; no traceback (the text record used to fail to encode)."""
    log = ck.tmp / "ck.log"
    bad = os.fsencode(str(ck.tmp)) + b"/no\xffdir"
    proc = subprocess.run([*CLI, "--root", ck.root, "--log", str(log), "--log-format", fmt,
                           "create", "-b", bad, ck.new_id()], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=30)
    assert proc.returncode == 1 and proc.stdout == b""
    assert proc.stderr.startswith(b"containerkit: ") and proc.stderr.count(b"\n") == 1
    assert bad in proc.stderr
    record = log.read_bytes()
    assert record.count(b"\n") == 1
    if fmt == "text":
        assert bad in record
    else:
        assert os.fsdecode(bad) in json.loads(record)["msg"]


# -- pause / resume / update / events ---------------------------------------------------------



def _runcounter(ck: CK) -> tuple[str, int]:
    cid = ck.new_id()
    res = ck("run", "-d", "-b", ck.bundle(["sh", "-c", COUNTER, cid]), cid)
    assert res.returncode == 0, res
    pid = ck.wait_status(cid, "running")["pid"]
    counter(pid)
    return cid, pid


def test_pause_and_resume(ck: CK) -> None:
    cid, pid = _runcounter(ck)
    assert advances(pid)
    assert_one_error_line(ck("resume", cid), "it is running, not paused")
    res = ck("pause", cid)
    assert res.returncode == 0 and res.stdout == res.stderr == "", res
    assert ck.state(cid)["status"] == "paused"
    listed = ck("list", "--format", "json").json()
    assert [(d["id"], d["status"]) for d in listed] == [(cid, "paused")]  # type: ignore
    assert not advances(pid)
    assert_one_error_line(ck("pause", cid), "it is paused, not running")
    assert ck("resume", cid).returncode == 0
    assert ck.state(cid)["status"] == "running"
    assert advances(pid)


def test_pause_of_created_container_is_refused(ck: CK) -> None:
    cid = ck.new_id()
    assert ck("create", "-b", ck.bundle(["sh", "-c", LOOP, cid]), cid).returncode == 0
    assert_one_error_line(ck("pause", cid), "it is created, not running")
    assert ck.state(cid)["status"] == "created"


def test_delete_force_of_paused_container(ck: CK) -> None:
    cid, pid = _runcounter(ck)
    assert ck("pause", cid).returncode == 0
    assert_one_error_line(ck("delete", cid), "paused")
    assert ck("delete", "--force", cid).returncode == 0
    assert not os.path.exists(f"/proc/{pid}/cmdline") or \
        open(f"/proc/{pid}/cmdline").read() == ""
    assert_nothing_left(ck, cid)


def test_cgroup_verbs_on_unknown_and_stopped_containers(ck: CK) -> None:
    for verb in (["pause"], ["resume"], ["update", "--memory", "1"], ["events", "--stats"]):
        assert_one_error_line(ck(*verb, "nosuch"), "container does not exist")
    cid = ck.new_id()
    assert ck("run", "--keep", "-b", ck.bundle(["true"]), cid).returncode == 0
    assert_one_error_line(ck("pause", cid), "stopped")
    assert_one_error_line(ck("events", "--stats", cid), "stopped")
    assert_one_error_line(ck("update", "--pids-limit", "10", cid), "stopped")


@pytest.mark.skipif(_cgroup_root() != "/sys/fs/cgroup/unified",
                    reason="the hybrid host's refusal (controllers: tests/kernel)")
def test_update_refused_without_controllers(ck: CK) -> None:
    cid, _ = _runcounter(ck)
    assert_one_error_line(ck("update", "--memory", "67108864", cid),
                          "memory controller is not available")
    assert_one_error_line(ck("update", "--pids-limit", "10", cid),
                          "pids controller is not available")
    resources = ck.tmp / "res.json"
    resources.write_text('{"memory": {"limit": 67108864}}')
    assert_one_error_line(ck("update", "-r", str(resources), cid), "controller is not available")
    assert ck.state(cid)["status"] == "running"


def test_update_bad_input(ck: CK) -> None:
    cid, _ = _runcounter(ck)
    bad = ck.tmp / "bad.json"
    bad.write_text("{not json")
    assert_one_error_line(ck("update", "--resources", str(bad), cid), str(bad), "malformed")
    bad.write_text('{"memory": {"limit": "lots"}}')
    assert_one_error_line(ck("update", "--resources", str(bad), cid), str(bad), "memory.limit")
    assert_one_error_line(ck("update", "-r", str(ck.tmp / "missing.json"), cid),
                          "missing.json", "no such file or directory")
    assert_one_error_line(ck("update", "--memory", "lots", cid), "--memory")
    assert_one_error_line(ck("update", "--kernel-memory", "1", cid), "--kernel-memory")
    assert ck.state(cid)["status"] == "running"


def test_events_stats(ck: CK) -> None:
    cid, _ = _runcounter(ck)
    res = ck("events", "--stats", cid)
    assert res.returncode == 0 and res.stderr == "", res
    lines = res.stdout.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["type"] == "stats" and event["id"] == cid
    assert event["data"]["pids"]["current"] >= 1
    assert {"cpu", "memory", "pids", "blkio"} <= set(event["data"])


def test_events_stream_ends_when_the_container_stops(ck: CK) -> None:
    cid, _ = _runcounter(ck)
    assert_one_error_line(ck("events", "--interval", "soon", cid), "--interval")
    proc, out = ck.popen("events", "--interval", "100ms", cid)
    try:
        deadline = time.monotonic() + 10
        while out.read_text().count("\n") < 2:
            assert time.monotonic() < deadline and proc.poll() is None, out.read_text()
            time.sleep(0.05)
        assert ck("kill", cid, "KILL").returncode == 0
        assert proc.wait(timeout=10) == 0
    finally:
        _stop(proc)
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) >= 2 and {e["type"] for e in events} == {"stats"}
    assert all(e["id"] == cid for e in events)


def test_launcher_runs_without_site_or_environment(tmp_path: Path) -> None:
    """The launcher ./dev installs: -I -S, the import paths baked in, no environment."""
    launcher = tmp_path / "containerkit"
    subprocess.run([sys.executable, "-m", "containerkit.cli.launcher", str(launcher)],
                   check=True)
    first = launcher.read_text().splitlines()[0]
    assert first == f"#!{os.path.abspath(sys.executable)} -IS"
    proc = subprocess.run([str(launcher), "--version"], env={}, cwd="/",
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("containerkit version ")
    # the command ./dev installed is this launcher, or the native front end
    # (_native/launcher.c, tests/integration/test_cli_state_fast.py) in front of it
    if CLI_SCRIPT.exists():
        script = CLI_SCRIPT
        if CLI_SCRIPT.read_bytes()[:4] == b"\x7fELF":
            script = CLI_SCRIPT.with_name("containerkit-py")
        assert script.read_text().splitlines()[0].endswith(" -IS")


def test_long_container_id(ck: CK) -> None:
    """A 200-character id: its session keyring's description (_ses.<id>) did not fit the
    child's 128-byte KEYCTL_DESCRIBE buffer, which the kernel then leaves unwritten."""
    cid = ck.new_id() + "-" + "k" * (200 - 15)
    ck.ids[-1] = cid
    res = ck("run", "-b", ck.bundle(["sh", "-c", "echo ran"]), cid)
    assert (res.returncode, res.stdout, res.stderr) == (0, "ran\n", "")


def _line(fd: int, timeout: float = 30) -> bytes:
    """One line from a pipe, or what came before the deadline (never blocks forever)."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n") and select.select([fd], [], [],
                                                     max(0, deadline - time.monotonic()))[0]:
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    return data


def test_a_non_root_process_can_reopen_its_stdio_pipes(ck: CK) -> None:
    """runc's fixStdioPermissions: the caller's pipes (root's, mode 0600) become the
    container user's, so that `echo > /dev/stdout` works for uid 1000 too, in the init
    and in an exec'd process; /dev/null stays root's."""
    cid = ck.new_id()
    config = oci.default_spec()
    assert config.process is not None and config.root is not None
    config.process.args = ["sh", "-c", "echo init-ok > /dev/stdout; echo init-err > /dev/stderr; "
                           f"{LOOP}"]
    config.process.user.uid = config.process.user.gid = 1000
    config.root.path = ck.rootfs
    bundle = ck.bundle([], raw=config.to_json())
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    try:
        assert os.fstat(w_out).st_uid == 0 and os.fstat(w_out).st_mode & 0o777 == 0o600
        proc = subprocess.Popen([*CLI, "--root", ck.root, "run", "-d", "-b", bundle, cid],
                                stdin=subprocess.DEVNULL, stdout=w_out, stderr=w_err)
        os.close(w_out)
        os.close(w_err)
        w_out = w_err = -1
        assert proc.wait(timeout=60) == 0
        assert _line(r_out) == b"init-ok\n"
        assert _line(r_err) == b"init-err\n"
        assert os.fstat(r_out).st_uid == 1000      # one pipe inode, both ends
        res = subprocess.run([*CLI, "--root", ck.root, "exec", "--user", "1000:1000", cid,
                              "sh", "-c", "echo exec-ok > /dev/stdout"],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        assert res.returncode == 0 and res.stdout == b"exec-ok\n", res
        assert os.stat("/dev/null").st_uid == 0
    finally:
        for fd in (r_out, r_err, w_out, w_err):
            if fd >= 0:
                os.close(fd)
        ck("delete", "--force", cid)
