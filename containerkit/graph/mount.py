"""Mount: what a GraphDriver hands to the ContainerConfig (the seed's *Mount)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mount:
    """A root filesystem ready on the host: ``path`` becomes the container's root.path."""

    path: str
    readonly: bool = False
