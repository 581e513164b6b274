"""OverlayGraphDriver: read-only lower layers shared by many containers, and a
per-container upper/work directory, mounted on the host and removed on unmount."""

from __future__ import annotations

import os

from ..errors import ConfigError
from ..state import check_id
from .mount import Mount

TYPE_CHECKING = False  # typing is not imported at run time: the CLI would pay ~2 ms
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/var/lib/containerkit/overlay"


class OverlayGraphDriver:
    def __init__(self, lowers: list[str] | str, root: str = DEFAULT_ROOT) -> None:
        layers = [lowers] if isinstance(lowers, str) else lowers
        self.lowers = [os.path.abspath(p) for p in layers]
        self.root = os.path.abspath(root)
        if not self.lowers:
            raise ConfigError("overlay: at least one lower layer is needed")

    def _dir(self, container_id: str) -> str:
        return os.path.join(self.root, check_id(container_id))

    def mount(self, container_id: str) -> Mount:
        for lower in self.lowers:
            if not os.path.isdir(lower):
                raise ConfigError(f"overlay lower layer {lower}: not a directory")
            if "," in lower or ":" in lower:
                raise ConfigError(f"overlay lower layer {lower}: ',' and ':' are not allowed")
        base = self._dir(container_id)
        upper, work, merged = (os.path.join(base, n) for n in ("upper", "work", "merged"))
        for d in (upper, work, merged):
            os.makedirs(d, mode=0o755, exist_ok=True)
        # the first lower is the top layer, as overlayfs orders lowerdir
        from .. import syscalls  # the native module, only when an overlay is really mounted

        data = f"lowerdir={':'.join(self.lowers)},upperdir={upper},workdir={work}"
        try:
            syscalls.mount(b"overlay", merged.encode(), b"overlay", 0, data.encode())
        except OSError as e:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
            raise ConfigError(f"overlay mount on {merged}: {e.strerror}") from None
        return Mount(merged)

    def unmount(self, container_id: str) -> None:
        base = self._dir(container_id)
        merged = os.path.join(base, "merged")
        if os.path.ismount(merged):
            from .. import syscalls

            syscalls.umount2(merged.encode(), syscalls.MNT_DETACH)
        import shutil

        shutil.rmtree(base, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        return {"type": "overlay", "lowers": self.lowers, "root": self.root}
