"""Container paths as the C child resolves them.

Nothing here looks at the rootfs: a path is resolved in the child, inside the
container's root (openat2 RESOLVE_IN_ROOT, see ``ck_resolve`` in build_native.py), at
the moment it is used, so that no symlink planted or swapped in the rootfs can send a
mount, a node or a chdir outside it. The parent only checks and normalises the text.
"""

from __future__ import annotations

from .. import pathnames
from ..errors import SpecError


def container_path(path: str, field: str) -> str:
    """``path`` as an absolute, lexically clean container path (a relative one is taken
    from "/", as the runtime spec says of relative mount destinations)."""
    if not path:
        raise SpecError(f"config.json: {field}: must not be empty")
    if "\0" in path:
        raise SpecError(f"config.json: {field}: {path!r} contains a NUL byte")
    return pathnames.normpath("/" + path.lstrip("/")) if path != "/" else "/"


def split(path: str) -> tuple[str, str]:
    """(directory, name) of a clean container path that is not "/"."""
    return pathnames.dirname(path) or "/", pathnames.basename(path)
