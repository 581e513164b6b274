"""GraphDrivers: turn a container id into a mounted root filesystem (a ``Mount``)."""

from __future__ import annotations

from .bind import BindGraphDriver
from .mount import Mount

TYPE_CHECKING = False  # typing is not imported at run time: the CLI would pay ~2 ms
if TYPE_CHECKING:
    from typing import Any

    from ..protocols import GraphDriver
    from .overlay import OverlayGraphDriver


def __getattr__(name: str) -> object:
    if name == "GraphDriver":       # the Protocol lives in protocols (it needs typing)
        from ..protocols import GraphDriver

        return GraphDriver
    if name == "OverlayGraphDriver":    # on first use: `create` of a bundle never needs it
        from .overlay import OverlayGraphDriver

        return OverlayGraphDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def from_description(desc: dict[str, Any]) -> GraphDriver | None:
    kind = desc.get("type")
    if kind == "bind":
        return BindGraphDriver(desc["path"])
    if kind == "overlay":
        from .overlay import OverlayGraphDriver

        return OverlayGraphDriver(desc["lowers"], root=desc["root"])
    return None


__all__ = ["BindGraphDriver", "GraphDriver", "Mount", "OverlayGraphDriver", "from_description"]
