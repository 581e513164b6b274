"""Mount: what a GraphDriver hands to the ContainerConfig (the seed's *Mount)."""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing is not imported at run time: the CLI would pay ~2 ms
if TYPE_CHECKING:
    from typing import NamedTuple

    class Mount(NamedTuple):
        path: str
        readonly: bool = False
else:
    class Mount(namedtuple("Mount", ("path", "readonly"), defaults=(False,))):
        """A root filesystem ready on the host: ``path`` becomes the container's root.path.

        A namedtuple, not a dataclass (importing dataclasses costs the CLI ~6 ms) nor a
        typing.NamedTuple (typing costs ~2 ms); the type checkers read the one above."""

        __slots__ = ()
