"""BindGraphDriver: an existing directory is the rootfs (the container bind-mounts it
privately in its own mount namespace, so nothing is mounted on the host)."""

from __future__ import annotations

import posix

from .. import pathnames
from ..errors import ConfigError
from .mount import Mount

TYPE_CHECKING = False  # typing is not imported at run time: the CLI would pay ~2 ms
if TYPE_CHECKING:
    from os import PathLike
    from typing import Any


class BindGraphDriver:
    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = pathnames.abspath(posix.fspath(path))

    def mount(self, container_id: str) -> Mount:
        if not pathnames.isdir(self.path):
            raise ConfigError(f"rootfs {self.path}: not a directory")
        return Mount(self.path)

    def unmount(self, container_id: str) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"type": "bind", "path": self.path}
