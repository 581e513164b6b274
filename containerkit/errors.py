"""One exception family. Every message is one line that says what is wrong and where."""

from __future__ import annotations


class ContainerkitError(Exception):
    """Base of every error containerkit raises on purpose (never a bare traceback)."""


class SpecError(ContainerkitError):
    """config.json (or another OCI document) is missing, malformed or invalid.

    The message names the file and the field path, e.g.
    ``config.json: linux.netDevices.eth0.name: expected a string, got 23``.
    """


class ConfigError(ContainerkitError):
    """The bundle or a caller-supplied argument is unusable (missing bundle, bad id...)."""


class UnsupportedError(ContainerkitError):
    """The spec asks for something this host or this version cannot apply.

    Raised instead of silently running with weaker isolation.
    """


class ContainerNotFound(ContainerkitError):
    """No container with that id exists under the state root."""


class ContainerExists(ContainerkitError):
    """A container with that id already exists."""


class InvalidState(ContainerkitError):
    """An operation was asked for in a state that does not allow it."""


class SetupError(ContainerkitError):
    """The container's init failed between clone and execve.

    Carries the step, the path or argument involved, and the errno.
    """

    def __init__(self, step: str, errno: int, detail: str = "") -> None:
        import posix

        self.step = step
        self.errno = errno
        self.detail = detail
        where = f" {detail}" if detail else ""
        super().__init__(f"container init: {step}{where}: {posix.strerror(errno)}")


def connect_error(path: str, e: OSError) -> str:
    """Why connecting to the unix socket at ``path`` failed, in words: connect() on a
    file that is not a socket says "connection refused", which sends people looking for
    a listener that was never meant to be there."""
    import posix
    import stat

    try:
        if not stat.S_ISSOCK(posix.stat(path).st_mode):
            return "not a unix socket"
    except OSError:
        pass
    return (e.strerror or str(e)).lower()
