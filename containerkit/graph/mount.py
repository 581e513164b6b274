"""Mount: what a GraphDriver hands to the ContainerConfig (the seed's *Mount)."""

from __future__ import annotations

from typing import NamedTuple


class Mount(NamedTuple):
    """A root filesystem ready on the host: ``path`` becomes the container's root.path.

    A NamedTuple, not a dataclass: importing dataclasses costs the CLI ~6 ms."""

    path: str
    readonly: bool = False
