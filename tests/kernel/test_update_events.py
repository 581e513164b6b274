"""update, stats and events on a pure cgroup v2 kernel (run in the VM): limits changed on a
live container are seen inside it, stats report usage, an OOM kill is reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from containerkit import Bundle, NativeDriver, new_container
from containerkit import spec as oci
from containerkit.busybox import make_bundle

_SCRIPT = Path(sys.executable).with_name("containerkit")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "containerkit"]

# inside: publish the limits the container sees; start a memory hog when /dev/shm/go appears
WATCH = ("while :; do cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max > /dev/shm/l.new;"
         " mv /dev/shm/l.new /dev/shm/l;"
         " if [ -e /dev/shm/go ]; then rm /dev/shm/go;"
         " dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo $? > /dev/shm/dd; fi;"
         " sleep 0.05; done")


def _bundle(tmp_path: Any, resources: dict[str, Any]) -> str:
    bundle = make_bundle(str(tmp_path / "b"), args=["/bin/sh", "-c", WATCH])
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    cfg["linux"]["resources"].update(resources)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    return bundle


def _inside(pid: int, name: str, want: str | None = None, timeout: float = 20) -> str:
    path = f"/proc/{pid}/root/dev/shm/{name}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = Path(path).read_text()
            if text and (want is None or text == want):
                return text
        except FileNotFoundError:
            text = None
        assert time.monotonic() < deadline, (name, text, want)
        time.sleep(0.05)


def test_update_changes_limits_live(tmp_path: Any) -> None:
    config = Bundle(_bundle(tmp_path, {"memory": {"limit": 64 << 20}, "pids": {"limit": 32}}),
                    id="upd1", root=str(tmp_path / "state"))
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        assert _inside(c.pid, "l", f"{64 << 20}\n32\n")
        c.update(oci.Resources(memory=oci.Memory(limit=96 << 20), pids=oci.Pids(limit=20)))
        assert _inside(c.pid, "l", f"{96 << 20}\n20\n")
        with open(os.path.join(c.path, "config.json")) as f:
            saved = json.load(f)["linux"]["resources"]
        assert saved["memory"]["limit"] == 96 << 20 and saved["pids"]["limit"] == 20
        # a later update keeps what the earlier one set (merged), through the CLI
        res = subprocess.run([*CLI, "--root", str(tmp_path / "state"), "update",
                              "--pids-limit", "12", "upd1"], capture_output=True, text=True)
        assert res.returncode == 0, res
        assert _inside(c.pid, "l", f"{96 << 20}\n12\n")
        stats = c.stats()
        assert stats["memory"]["usage"]["usage"] > 0
        assert stats["memory"]["usage"]["limit"] == 96 << 20
        assert stats["pids"]["current"] >= 1 and stats["pids"]["limit"] == 12
        c.pause()
        assert c.status == "paused"
        c.update(oci.Resources(pids=oci.Pids(limit=16)))   # a paused container is updated too
        with open(os.path.join(c.cgroup_path, "pids.max")) as f:
            assert f.read() == "16\n"
        c.resume()
        assert _inside(c.pid, "l", f"{96 << 20}\n16\n")


def test_oom_kill_is_reported(tmp_path: Any) -> None:
    root = str(tmp_path / "state")
    config = Bundle(_bundle(tmp_path, {"memory": {"limit": 24 << 20, "swap": 24 << 20}}),
                    id="oom1", root=root)
    with new_container(config, config.graph_driver(), NativeDriver()) as c:
        c.create()
        c.start()
        _inside(c.pid, "l")
        out = tmp_path / "events.out"
        with open(out, "w") as fo:
            events = subprocess.Popen([*CLI, "--root", root, "events", "--interval", "200ms",
                                       "oom1"], stdout=fo, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while '"stats"' not in out.read_text():
                assert time.monotonic() < deadline and events.poll() is None, out.read_text()
                time.sleep(0.05)
            Path(f"/proc/{c.pid}/root/dev/shm/go").write_text("")
            assert _inside(c.pid, "dd") == "137\n"          # dd was SIGKILLed
            while '"oom"' not in out.read_text():
                assert time.monotonic() < deadline and events.poll() is None, out.read_text()
                time.sleep(0.05)
            assert c.status == "running"                      # only the hog died
            assert c.stats()["memory"]["event_count"]["oom_kill"] >= 1
            c.signal(9)
            assert events.wait(timeout=20) == 0               # ends with the container
        finally:
            if events.poll() is None:
                events.kill()
                events.wait()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"type": "oom", "id": "oom1"} in lines
    stats = [e for e in lines if e["type"] == "stats"]
    assert stats and stats[0]["data"]["memory"]["usage"]["limit"] == 24 << 20
