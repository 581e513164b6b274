"""Container start-to-exit latency: containerkit (library and CLI) beside runc, crun and
the kernel floor (``unshare -fpmuin true``).

    .venv/bin/python tests/bench.py [-n N] [--json FILE]      (as root)

Each row runs ``/bin/true`` in a busybox bundle (the default runc-style config.json,
root read-only); the ``state`` rows query one created container, the
``create+start+del`` rows make the three calls a shim makes for one container. The CLI
rows run with an empty environment (``env -i``, as podman calls the runtime), each tool
by absolute path; their "x runc" column is against the same calls to runc. After
warm-up runs, the rows are measured round-robin, one run of each per round, so that
machine noise hits every row alike. A row whose tool is missing or
fails is reported as unavailable instead of timed. Each row also has its CPU time (user +
system, of the commands and what they waited for; the library row's own process too):
on a loaded machine the wall times of a one-thread Python command and of a Go one that
spreads over both CPUs say less than their CPU times. The targets printed at the end are
informational: the exit status is 0 whenever the benchmark itself ran.

In the VM (``vagrant/run-vm-tests --bench``), where cgroup v2 has every controller and crun
works, ``--vm`` adds the crun target, and ``--memory-min`` finds the smallest ``memory.max``
at which each runtime runs ``/bin/true`` (see :func:`memory_min`). crun 1.8 refuses
``ociVersion`` 1.2.0 and 1.3.0: it gets a copy of the bundle's config.json that says 1.1.0.

Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from containerkit import BindGraphDriver, Bundle, Container, NativeDriver, new_container
from containerkit.busybox import make_bundle

WARMUP = 3
TARGETS = (  # (row, reference row, at most this ratio)
    ("library lifecycle", "runc run", 0.15),
    ("library lifecycle", "kernel floor", 2.0),
    ("containerkit run", "runc run", 0.8),
    ("containerkit state", "runc state", 1.0),
    ("ck create+start+del", "runc create+start+del", 1.0),
)
VM_TARGETS = (("library lifecycle", "crun run", 1.0),)
CRUN_OCI_VERSION = "1.1.0"      # crun 1.8.1 refuses 1.2.0 and 1.3.0 ("unknown version")
# the CLI rows run as podman/conmon run the runtime: no environment at all (no PATH, no
# HOME), the tool given by absolute path
EMPTY_ENV: dict[str, str] = {}


@dataclass
class Row:
    """One measured thing: ``run(i)`` does run number ``i`` and returns seconds."""

    name: str
    run: Callable[[int], float]
    check: Callable[[], str | None] = lambda: None  # error text when unavailable
    ref: str = "runc run"                           # the "x runc" column's reference row
    in_process: bool = False                        # its CPU time is this process's too
    samples: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # CPU seconds of each sample
    error: str | None = None

    def stats(self) -> dict[str, float] | None:
        if self.error is not None or not self.samples:
            return None
        ms = sorted(s * 1000 for s in self.samples)
        if len(ms) >= 2:
            deciles = statistics.quantiles(ms, n=10, method="inclusive")
            p10, p90 = deciles[0], deciles[-1]
        else:
            p10 = p90 = ms[0]
        return {"median_ms": statistics.median(ms), "p10_ms": p10, "p90_ms": p90,
                "mean_ms": statistics.fmean(ms), "min_ms": ms[0], "max_ms": ms[-1],
                "cpu_median_ms": statistics.median(c * 1000 for c in self.cpu)
                if self.cpu else float("nan")}


def first_line(text: str | bytes | None, default: str = "no error output") -> str:
    """The first non-empty line; for a Python traceback the last one (the exception)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return default
    return lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]


def timed_command(argv: list[str], env: dict[str, str] | None = None) -> Callable[[], float]:
    """Wall time of fork + exec + wait, output discarded; a failure raises."""
    return timed_sequence([argv], env)


def timed_sequence(argvs: list[list[str]], env: dict[str, str] | None = None
                   ) -> Callable[[], float]:
    """Wall time of several commands one after the other (e.g. create, start, delete)."""

    def run() -> float:
        t0 = time.perf_counter()
        for argv in argvs:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=env, cwd="/")
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)}: exit status {proc.returncode}")
        return time.perf_counter() - t0

    return run


def probe_sequence(argvs: list[list[str]], env: dict[str, str] | None = None) -> str | None:
    for argv in argvs:
        error = probe(argv, env)
        if error is not None:
            return error
    return None


def probe(argv: list[str], env: dict[str, str] | None = None,
          timeout: float = 60.0) -> str | None:
    """Run once with stderr captured: None when it worked, else the first error line.

    stderr goes to a file, not a pipe: a ``create`` leaves an init that inherits it, and
    reading a pipe to EOF would wait for that container to exit."""
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=err, timeout=timeout, env=env)
        except FileNotFoundError:
            return f"{argv[0]}: not installed"
        except subprocess.TimeoutExpired:
            return f"{argv[0]}: no exit after {timeout:.0f}s"
        if proc.returncode != 0:
            err.seek(0)
            return f"{first_line(err.read())} (exit {proc.returncode})"
    return None


class Bench:
    def __init__(self, workdir: str) -> None:
        self.work = workdir
        self.bundle = make_bundle(os.path.join(workdir, "bundle"), args=["/bin/true"])
        self.rootfs = os.path.join(self.bundle, "rootfs")
        self.crun_bundle = _bundle_copy(self.bundle, os.path.join(workdir, "bundle-crun"),
                                        oci_version=CRUN_OCI_VERSION)
        self.roots = {k: os.path.join(workdir, f"state-{k}") for k in ("lib", "ck", "runc",
                                                                          "crun")}
        self.prefix = f"ckbench{os.getpid()}"
        self.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.cli = os.path.join(os.path.dirname(sys.executable), "containerkit")
        # The CLI rows run with an empty environment, as podman does, and use the bytecode
        # ./dev compiled into the tree. Clean-up uses the caller's environment minus
        # PYTHONDONTWRITEBYTECODE, with caches in the work dir.
        self.cli_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.cli_env["PYTHONPYCACHEPREFIX"] = os.path.join(workdir, "pycache")
        self.live: list[Container] = []  # library containers not yet deleted

    def cid(self, kind: str, i: int | str) -> str:
        return f"{self.prefix}-{kind}-{i}"

    # -- rows --------------------------------------------------------------------------
    def library(self, i: int) -> float:
        t0 = time.perf_counter()
        c = new_container(Bundle(self.bundle, id=self.cid("lib", i), root=self.roots["lib"]),
                          BindGraphDriver(self.rootfs), NativeDriver())
        self.live.append(c)
        c.stdin = c.stdout = c.stderr = self.devnull
        c.create()
        c.start()
        rc = c.wait()
        c.delete()
        elapsed = time.perf_counter() - t0
        self.live.remove(c)
        if rc != 0:
            raise RuntimeError(f"container exit status {rc}")
        return elapsed

    def rows(self) -> list[Row]:
        def command(name: str, kind: str, make: Callable[[str], list[str]],
                    env: dict[str, str] | None = None) -> Row:
            return Row(name=name, run=lambda i: timed_command(make(self.cid(kind, i)), env)(),
                       check=lambda: probe(make(self.cid(kind, "probe")), env))

        def run_argv(tool: str, kind: str) -> Callable[[str], list[str]]:
            bundle = self.crun_bundle if tool == "crun" else self.bundle
            return lambda cid: [tool, "--root", self.roots[kind], "run", "-b", bundle, cid]

        ck = command("containerkit run", "ck", run_argv(self.cli, "ck"), EMPTY_ENV)
        runc = shutil.which("runc") or "runc"
        rows = [
            Row(name="library lifecycle", run=self.library, in_process=True),
            ck,
            command("runc run", "runc", run_argv(runc, "runc"), EMPTY_ENV),
            command("crun run", "crun", run_argv("crun", "crun")),
            command("kernel floor", "floor", lambda cid: ["unshare", "-fpmuin", "true"]),
            self.state_row("containerkit state", self.cli, "ck"),
            self.state_row("runc state", runc, "runc"),
            self.lifecycle_row("ck create+start+del", self.cli, "ck"),
            self.lifecycle_row("runc create+start+del", runc, "runc"),
        ]
        if not os.access(self.cli, os.X_OK):
            for row in rows:
                if row.name.startswith(("containerkit ", "ck ")):
                    row.check = lambda: f"{self.cli}: no console script installed"
        return rows

    def state_row(self, name: str, tool: str, kind: str) -> Row:
        """``state`` of one created container (what podman and the shim poll)."""
        cid = self.cid(kind, "state")
        root = self.roots[kind]
        create = [tool, "--root", root, "create", "-b", self.bundle, cid]
        state = [tool, "--root", root, "state", cid]
        return Row(name=name, run=lambda i: timed_command(state, EMPTY_ENV)(),
                   check=lambda: probe_sequence([create, state], EMPTY_ENV),
                   ref="runc state")

    def lifecycle_row(self, name: str, tool: str, kind: str) -> Row:
        """create, start, delete --force: the calls a shim makes for one container."""
        def argvs(cid: str) -> list[list[str]]:
            root = self.roots[kind]
            return [[tool, "--root", root, "create", "-b", self.bundle, cid],
                    [tool, "--root", root, "start", cid],
                    [tool, "--root", root, "delete", "--force", cid]]

        return Row(name=name,
                   run=lambda i: timed_sequence(argvs(self.cid(kind + "csd", i)), EMPTY_ENV)(),
                   check=lambda: probe_sequence(argvs(self.cid(kind + "csd", "probe")),
                                                EMPTY_ENV),
                   ref="runc create+start+del")

    # -- cleanup -----------------------------------------------------------------------
    def cleanup(self) -> None:
        from containerkit import load_container

        for c in list(self.live):
            with contextlib.suppress(Exception):
                c.delete(force=True)
        root = self.roots["lib"]
        for name in _listdir(root):
            with contextlib.suppress(Exception):
                load_container(Bundle(self.bundle, id=name, root=root),
                               NativeDriver()).delete(force=True)
        for name in _listdir(self.roots["ck"]):  # the CLI first, the library if that fails
            try:
                deleted = subprocess.run(
                    [self.cli, "--root", self.roots["ck"], "delete", "--force", name],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, env=self.cli_env, timeout=60).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                deleted = False
            if not deleted:
                with contextlib.suppress(Exception):
                    load_container(Bundle(self.bundle, id=name, root=self.roots["ck"]),
                                   NativeDriver()).delete(force=True)
        for tool in ("runc", "crun"):
            if not _listdir(self.roots[tool]) or shutil.which(tool) is None:
                continue
            listed = subprocess.run([tool, "--root", self.roots[tool], "list", "-q"],
                                    capture_output=True, text=True, timeout=60).stdout.split()
            for name in listed:
                subprocess.run([tool, "--root", self.roots[tool], "delete", "-f", name],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        self._remove_stray_cgroups()
        os.close(self.devnull)

    def _remove_stray_cgroups(self) -> None:
        """containerkit cgroups of this run whose state directory was already gone."""
        try:
            from containerkit.cgroups import Cgroup
            from containerkit.cgroups.v2 import cgroup2_mountpoint
            parent = os.path.join(cgroup2_mountpoint(), "containerkit")
        except Exception:
            return
        for name in _listdir(parent):
            if name.startswith(self.prefix + "-"):
                with contextlib.suppress(Exception):
                    Cgroup(os.path.join(parent, name)).remove()


def fs_type(path: str) -> str:
    """Filesystem type under ``path`` (state writes fsync: ext4 and tmpfs differ a lot)."""
    best, kind = "", "?"
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                mnt = fields[1]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and \
                        len(mnt) >= len(best):
                    best, kind = mnt, fields[2]
    except OSError:
        pass
    return kind


def _bundle_copy(src: str, dest: str, oci_version: str | None = None,
                 edit: Callable[[dict[str, Any]], None] | None = None) -> str:
    """A bundle whose config.json is ``src``'s (edited), its root the same rootfs."""
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    cfg["root"]["path"] = os.path.join(os.path.abspath(src), cfg["root"]["path"])
    if oci_version is not None:
        cfg["ociVersion"] = oci_version
    if edit is not None:
        edit(cfg)
    with open(os.path.join(dest, "config.json"), "w") as f:
        json.dump(cfg, f)
    return dest


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def cpu_seconds(own: bool) -> float:
    """User + system time of the waited-for children (and of this process if ``own``)."""
    total = 0.0
    for who in (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF) if own else \
            (resource.RUSAGE_CHILDREN,):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def measure(rows: list[Row], n: int, warmup: int) -> None:
    """Warm-up runs, then ``n`` rounds, one run of every available row per round; the
    starting row rotates each round so no row always follows the same one."""
    for row in rows:
        row.error = row.check()
    for i in range(warmup + n):
        active = [r for r in rows if r.error is None]
        if not active:
            return
        k = i % len(active)
        for row in active[k:] + active[:k]:
            cpu0 = cpu_seconds(row.in_process)
            try:
                t = row.run(i)
            except Exception as e:
                row.error = f"failed in run {i}: {type(e).__name__}: {e}"
                row.samples.clear()
                row.cpu.clear()
                continue
            if i >= warmup:
                row.samples.append(t)
                row.cpu.append(cpu_seconds(row.in_process) - cpu0)


def report(rows: list[Row], n: int, warmup: int, workdir: str,
           vm: bool = False) -> dict[str, Any]:
    stats = {r.name: r.stats() for r in rows}

    def median(name: str) -> float | None:
        s = stats.get(name)
        return s["median_ms"] if s else None

    refs = {"runc": median("runc run"), "crun": median("crun run"),
            "floor": median("kernel floor")}
    results: dict[str, Any] = {}
    for r in rows:
        s = stats[r.name]
        entry: dict[str, Any] = {"available": s is not None, "error": r.error}
        if s is not None:
            entry.update(s)
            for key, ref in refs.items():
                if key == "runc":
                    ref = median(r.ref)
                entry[f"ratio_vs_{key}"] = s["median_ms"] / ref if ref else None
            ref_cpu = stats.get(r.ref)
            entry["cpu_ratio_vs_runc"] = (s["cpu_median_ms"] / ref_cpu["cpu_median_ms"]
                                          if ref_cpu and ref_cpu["cpu_median_ms"] else None)
            entry["samples_ms"] = [round(x * 1000, 4) for x in r.samples]
            entry["cpu_samples_ms"] = [round(x * 1000, 4) for x in r.cpu]
        results[r.name] = entry

    targets = []
    for name, ref_name, limit in TARGETS + (VM_TARGETS if vm else ()):
        a, b = median(name), median(ref_name)
        ratio = a / b if a is not None and b else None
        verdict = "n/a" if ratio is None else ("PASS" if ratio <= limit else "MISS")
        targets.append({"row": name, "reference": ref_name, "limit": limit, "ratio": ratio,
                        "verdict": verdict})

    print(f"containerkit bench: /bin/true in a busybox bundle, N={n} after {warmup} warm-up "
          f"runs, round-robin")
    state_fs = fs_type(workdir)
    print(f"host: Linux {platform.release()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}; bundle and state roots in {workdir} "
          f"({state_fs})")
    head = (f"{'name':<21} {'median ms':>9} {'p10':>8} {'p90':>8} {'x runc':>7} "
            f"{'x crun':>7} {'x floor':>7} {'cpu ms':>7} {'x runc':>7}")
    print(head)
    print("-" * len(head))

    def ratio(x: float | None) -> str:
        return f"{x:7.3f}" if x is not None else f"{'-':>7}"

    for r in rows:
        e = results[r.name]
        if not e["available"]:
            print(f"{r.name:<21} unavailable: {r.error}")
            continue
        print(f"{r.name:<21} {e['median_ms']:9.2f} {e['p10_ms']:8.2f} {e['p90_ms']:8.2f} "
              f"{ratio(e['ratio_vs_runc'])} {ratio(e['ratio_vs_crun'])} "
              f"{ratio(e['ratio_vs_floor'])} {e['cpu_median_ms']:7.2f} "
              f"{ratio(e['cpu_ratio_vs_runc'])}")
    print("\ntargets (informational):")
    for t in targets:
        got = f"{t['ratio']:.3f}x" if t["ratio"] is not None else "unavailable"
        print(f"  {t['verdict']:<4}  {t['row']} <= {t['limit']}x {t['reference']}: {got}")
    return {"n": n, "warmup": warmup, "kernel": platform.release(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "state_fs": state_fs,
            "cli_bytecode_cache": "PYTHONPYCACHEPREFIX in the work dir",
            "results": results, "targets": targets}


# -- the smallest memory.max -------------------------------------------------------------
MEM_STEP = 64 << 10
MEM_HI = 32 << 20
MEM_PARENT = "ckbench-mem"      # under the cgroup2 root: limits the shared-mm library runs


def memory_min(bench: Bench) -> dict[str, int | None | str]:
    """The smallest ``memory.max`` (a multiple of 64 KiB, binary search up to 32 MiB) at
    which ``/bin/true`` exits 0, per runtime. Needs the memory controller (the VM).

    - library fork-like: ``linux.resources.memory.limit`` in the spec; the init then never
      shares the caller's mm (NativeDriver's rule), so this is what a limited container gets.
    - library shared-mm: no limit in the spec (so the init runs on the caller's mm until its
      execve) and the container's cgroup under a parent whose ``memory.max`` is the probe:
      the same charges, seen from the parent.
    - runc run / crun run: the limit in the spec.
    """
    from containerkit.cgroups.v2 import cgroup2_mountpoint

    root = cgroup2_mountpoint()
    parent = os.path.join(root, MEM_PARENT)
    n = [0]

    def limited(cfg: dict[str, Any], limit: int) -> None:
        cfg["linux"].setdefault("resources", {})["memory"] = {"limit": limit, "swap": limit}

    def library(limit: int, shared: bool) -> bool:
        # in a forked process: an OOM kill of an init that shares its caller's mm kills
        # every process on that mm (the caller too; why NativeDriver never shares the mm
        # of a container with a memory limit)
        pid = os.fork()
        if pid == 0:
            try:
                os._exit(0 if library_run(limit, shared) else 1)
            finally:
                os._exit(2)
        n[0] += 1
        return os.waitpid(pid, 0)[1] == 0

    def library_run(limit: int, shared: bool) -> bool:
        n[0] += 1
        cid = bench.cid("mem", n[0])
        if shared:
            _write(os.path.join(parent, "memory.max"), str(limit))
            with contextlib.suppress(OSError):         # no swap accounting: no swap file
                _write(os.path.join(parent, "memory.swap.max"), "0")
            b = _bundle_copy(bench.bundle, os.path.join(bench.work, f"mem{n[0]}"),
                             edit=lambda c: c["linux"].update(cgroupsPath=f"/{MEM_PARENT}/{cid}"))
        else:
            b = _bundle_copy(bench.bundle, os.path.join(bench.work, f"mem{n[0]}"),
                             edit=lambda c: limited(c, limit))
        try:
            with new_container(Bundle(b, id=cid, root=bench.roots["lib"]),
                               BindGraphDriver(bench.rootfs), NativeDriver(shared)) as c:
                c.stdin = c.stdout = c.stderr = bench.devnull
                c.create()
                c.start()
                return c.wait(timeout=60) == 0
        except Exception:
            return False
        finally:
            shutil.rmtree(b, ignore_errors=True)

    def tool(name: str, limit: int) -> bool:
        n[0] += 1
        cid = bench.cid("mem", n[0])
        b = _bundle_copy(bench.bundle, os.path.join(bench.work, f"mem{n[0]}"),
                         oci_version=CRUN_OCI_VERSION if name == "crun" else None,
                         edit=lambda c: limited(c, limit))
        state = bench.roots[name]
        try:
            return subprocess.run([name, "--root", state, "run", "-b", b, cid],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=120).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False
        finally:
            subprocess.run([name, "--root", state, "delete", "-f", cid], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=120)
            shutil.rmtree(b, ignore_errors=True)

    _write(os.path.join(root, "cgroup.subtree_control"), "+memory")
    os.makedirs(parent, exist_ok=True)
    _write(os.path.join(parent, "cgroup.subtree_control"), "+memory")
    subjects: dict[str, Callable[[int], bool]] = {
        "library fork-like": lambda x: library(x, False),
        "library shared-mm": lambda x: library(x, True),
    }
    for name in ("runc", "crun"):
        if shutil.which(name):
            subjects[f"{name} run"] = lambda x, name=name: tool(name, x)
    out: dict[str, int | None | str] = {}
    try:
        for name, works in subjects.items():
            out[name] = _smallest(works)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(parent)
    print(f"\nsmallest memory.max for /bin/true (swap off; {MEM_STEP >> 10} KiB steps):")
    for name, v in out.items():
        text = f"> {MEM_HI >> 10} KiB" if v is None else f"{v >> 10} KiB"
        print(f"  {name:<18} {text}")
    return out


def _smallest(works: Callable[[int], bool]) -> int | None:
    """Binary search, assuming a run that works at X works above X (checked at the end)."""
    if not works(MEM_HI):
        return None
    lo, hi = 0, MEM_HI // MEM_STEP          # works(hi * STEP); lo: not known to work
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if works(mid * MEM_STEP):
            hi = mid
        else:
            lo = mid
    # confirm: a second run at the answer (a racy success would mislead)
    while not works(hi * MEM_STEP):
        hi += 1
    return hi * MEM_STEP


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=30, help="measured runs per row (default 30)")
    parser.add_argument("--warmup", type=int, default=WARMUP, help=argparse.SUPPRESS)
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    parser.add_argument("--vm", action="store_true",
                        help="in the VM: add the target library lifecycle <= 1.0x crun run")
    parser.add_argument("--memory-min", action="store_true",
                        help="also find the smallest memory.max per runtime (cgroup v2 "
                             "with the memory controller: the VM)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("-n must be at least 1")
    if os.geteuid() != 0:
        print("bench.py: needs root (namespaces, mounts, cgroups)", file=sys.stderr)
        return 2

    work = tempfile.mkdtemp(prefix="ckbench-")
    bench: Bench | None = None
    try:
        bench = Bench(work)
        rows = bench.rows()
        measure(rows, args.n, args.warmup)
        doc = report(rows, args.n, args.warmup, work, vm=args.vm)
        if args.memory_min:
            doc["memory_min_bytes"] = memory_min(bench)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(doc, f, indent=2)
                f.write("\n")
    finally:
        if bench is not None:
            bench.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
