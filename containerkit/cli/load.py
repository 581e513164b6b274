"""Loading a container for a verb, with no more imports than the verb needs."""

from __future__ import annotations

from ..errors import UnsupportedError
from .args import SimpleNamespace  # types.SimpleNamespace, without importing types

TYPE_CHECKING = False  # typing is not imported at run time: it costs ~2 ms of start-up
if TYPE_CHECKING:
    from typing import Any

    from ..container import Container


class NoDriver:
    """The driver of a container that is only looked at or signalled (``state``, ``list``,
    ``kill``): those use the state file and the init's pidfd, never the driver, and
    importing NativeDriver (cffi, the init plan) would add ~5 ms to calls podman makes
    often."""

    def _refuse(self, container: Container) -> Any:
        raise UnsupportedError(f"container {container.id!r}: loaded read-only")

    create = start = delete = exec = _refuse


def load(root: str, container_id: str, *, native: bool = True) -> Container:
    """``load_container`` for ``id`` under ``root``; ``native=False`` for verbs that
    neither start nor delete. ContainerNotFound if there is no such container."""
    from ..container import load_container

    if native:
        from ..native.driver import NativeDriver

        driver: Any = NativeDriver()
    else:
        driver = NoDriver()
    return load_container(SimpleNamespace(id=container_id, root=root), driver)
