"""GraphDrivers: turn a container id into a mounted root filesystem (a ``Mount``)."""

from __future__ import annotations

from typing import Any, Protocol

from .bind import BindGraphDriver
from .mount import Mount
from .overlay import OverlayGraphDriver


class GraphDriver(Protocol):
    """The seed's GraphDriver: ``mount(id) -> Mount`` and ``unmount(id)``.

    ``describe()`` returns a JSON-able dict that ``from_description`` turns back into
    an equal driver, so a container loaded by another process can still unmount.
    """

    def mount(self, container_id: str) -> Mount: ...

    def unmount(self, container_id: str) -> None: ...

    def describe(self) -> dict[str, Any]: ...


def from_description(desc: dict[str, Any]) -> GraphDriver | None:
    kind = desc.get("type")
    if kind == "bind":
        return BindGraphDriver(desc["path"])
    if kind == "overlay":
        return OverlayGraphDriver(desc["lowers"], root=desc["root"])
    return None


__all__ = ["BindGraphDriver", "GraphDriver", "Mount", "OverlayGraphDriver", "from_description"]
