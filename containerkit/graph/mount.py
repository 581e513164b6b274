"""Mount: what a GraphDriver hands to the ContainerConfig (the seed's *Mount)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing/collections cost the CLI ~4 ms: records has a light one
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from ..records import NamedTuple


class Mount(NamedTuple):
    """A root filesystem ready on the host: ``path`` becomes the container's root.path."""

    path: str
    readonly: bool = False
