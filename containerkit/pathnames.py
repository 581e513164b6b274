"""The ``os.path`` functions the CLI's hot modules use, written on ``posix`` alone.

``import os`` costs every CLI call ~0.9 ms of CPU: it imports ``_collections_abc``, whose
~30 ABC classes are built at each interpreter start (``python -S`` does not import os
itself). The modules that ``create``, ``run``, ``exec``, ``state``, ``kill``,
``start`` and ``delete`` import make their system calls through ``posix`` (the module
``os`` re-exports them from) and take their path helpers from here;
``tests/integration/test_cli_imports.py`` holds them to it. Each function behaves as the
``posixpath`` one of the same name does for ``str`` paths (callers turn a ``PathLike``
into one with ``posix.fspath`` where the public API takes it). What only rare paths need
(``os.walk`` for ``ps``, ``os.path.realpath`` for a shared rootfs propagation or
``--no-pivot``) is imported from ``os`` where it is used.
"""

from __future__ import annotations

import posix
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from os import PathLike

_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFREG = 0o100000
_S_IFLNK = 0o120000

DEVNULL = "/dev/null"


def join(a: str, *parts: str) -> str:
    """An absolute part starts the path anew; empty parts add nothing but a slash."""
    path = a
    for part in parts:
        if part.startswith("/"):
            path = part
        elif not path or path.endswith("/"):
            path += part
        else:
            path += "/" + part
    return path


def dirname(path: str) -> str:
    head = path[:path.rfind("/") + 1]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head


def basename(path: str) -> str:
    return path[path.rfind("/") + 1:]


def normpath(path: str) -> str:
    """Lexical: drops ``.``, empty parts and each ``..`` with the part before it (a
    leading ``..`` of a relative path stays; of an absolute one it goes). POSIX keeps
    exactly two leading slashes."""
    if not path:
        return "."
    slashes = 0
    if path.startswith("/"):
        slashes = 2 if path.startswith("//") and not path.startswith("///") else 1
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != ".." or (not slashes and not out) or (out and out[-1] == ".."):
            out.append(part)
        elif out:
            out.pop()
    return "/" * slashes + "/".join(out) or "."


def abspath(path: str) -> str:
    if not path.startswith("/"):
        path = join(posix.getcwd(), path)
    return normpath(path)


def _mode(path: str, follow: bool = True) -> int:
    try:
        st = posix.stat(path) if follow else posix.lstat(path)
    except (OSError, ValueError):
        return -1
    return st.st_mode & _S_IFMT


def exists(path: str) -> bool:
    return _mode(path) != -1


def isdir(path: str) -> bool:
    return _mode(path) == _S_IFDIR


def isfile(path: str) -> bool:
    return _mode(path) == _S_IFREG


def islink(path: str) -> bool:
    return _mode(path, follow=False) == _S_IFLNK


def makedirs(path: str, mode: int = 0o777, exist_ok: bool = False) -> None:
    """``path`` and its missing parents. As with os.makedirs, only ``path`` gets ``mode``;
    the parents get 0o777 (minus the umask)."""
    head = dirname(path.rstrip("/"))
    if head and not exists(head):
        try:
            makedirs(head, exist_ok=True)
        except FileExistsError:         # made by someone else meanwhile
            pass
    try:
        posix.mkdir(path, mode)
    except OSError:
        if not exist_ok or not isdir(path):
            raise


def fsencode(name: str | bytes | PathLike[str] | PathLike[bytes]) -> bytes:
    name = posix.fspath(name)
    if isinstance(name, bytes):
        return name
    return name.encode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


def fsdecode(name: str | bytes | PathLike[str] | PathLike[bytes]) -> str:
    name = posix.fspath(name)
    if isinstance(name, str):
        return name
    return name.decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
