"""BindGraphDriver: an existing directory is the rootfs (the container bind-mounts it
privately in its own mount namespace, so nothing is mounted on the host)."""

from __future__ import annotations

import os

from ..errors import ConfigError
from .mount import Mount

TYPE_CHECKING = False  # typing is not imported at run time: the CLI would pay ~2 ms
if TYPE_CHECKING:
    from typing import Any


class BindGraphDriver:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))

    def mount(self, container_id: str) -> Mount:
        if not os.path.isdir(self.path):
            raise ConfigError(f"rootfs {self.path}: not a directory")
        return Mount(self.path)

    def unmount(self, container_id: str) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"type": "bind", "path": self.path}
