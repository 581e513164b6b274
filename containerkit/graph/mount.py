"""Mount: what a GraphDriver hands to the ContainerConfig (the seed's *Mount)."""

from __future__ import annotations


class Mount:
    """A root filesystem ready on the host: ``path`` becomes the container's root.path.

    A small class, not a dataclass or a NamedTuple: importing dataclasses, typing or
    collections costs the CLI 2 to 6 ms (the graph drivers load for every ``state``).
    Compares and unpacks like the (path, readonly) pair it is."""

    __slots__ = ("path", "readonly")

    def __init__(self, path: str, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly

    def _pair(self) -> tuple[str, bool]:
        return (self.path, self.readonly)

    def __iter__(self):  # noqa: ANN204 - an iterator over the pair
        return iter(self._pair())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mount):
            return self._pair() == other._pair()
        return self._pair() == other if isinstance(other, tuple) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._pair())

    def __repr__(self) -> str:
        return f"Mount(path={self.path!r}, readonly={self.readonly!r})"
