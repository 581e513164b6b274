"""``python -m containerkit.demo``: one container on a busybox rootfs, through the library."""

from __future__ import annotations

import sys
import tempfile

from . import BindGraphDriver, Bundle, NativeDriver, new_container
from .busybox import make_bundle

SCRIPT = ("echo \"hello from $(hostname), I am pid $$ as $(id -un)\"; "
          "echo 'my mounts:'; cut -d' ' -f2,3 /proc/mounts | sed 's/^/  /'")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="containerkit-demo-") as tmp:
        bundle = make_bundle(tmp, args=sys.argv[1:] or ["sh", "-c", SCRIPT])
        config = Bundle(bundle, id="containerkit-demo")
        graph = BindGraphDriver(f"{bundle}/rootfs")
        with new_container(config, graph, NativeDriver()) as c:
            c.create()
            c.start()
            status = c.wait()
        print(f"container exited with status {status}")
        return status or 0


if __name__ == "__main__":
    sys.exit(main())
