"""The driver interfaces, apart from container.py and graph/: a ``Protocol`` needs
``typing``, which the CLI's hot verbs (``state``, ``kill``) must not import (~2 ms)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from . import spec as oci
    from .container import Container, Stdio
    from .graph import Mount
    from .process import Process


class ContainerConfig(Protocol):
    """The seed's ContainerConfig: an id, a state root, and the spec for a mounted rootfs
    (``bundle.Bundle`` is the implementation)."""

    @property
    def id(self) -> str: ...

    @property
    def root(self) -> str: ...

    @property
    def bundle(self) -> str: ...

    def spec(self, mount: Mount) -> oci.Spec: ...


class ExecutionDriver(Protocol):
    """The seed's ExecutionDriver: creates, starts and deletes a container's init.

    ``create`` calls ``meanwhile`` (the caller's own work, e.g. writing the state dir's
    config.json) once the init runs and sets up its root on the other CPU, before it
    waits for the init to be ready; an error there fails the create."""

    def create(self, container: Container,
               meanwhile: Callable[[], None] | None = None) -> Process: ...

    def start(self, container: Container) -> None: ...

    def delete(self, container: Container) -> None: ...

    def exec(self, container: Container, proc: oci.Process,
             stdio: tuple[Stdio, Stdio, Stdio], *, console_socket: str | None = None,
             preserve_fds: int = 0, listen_fds: int = 0, hold_fd: int = -1) -> Process: ...


class GraphDriver(Protocol):
    """The seed's GraphDriver: ``mount(id) -> Mount`` and ``unmount(id)``.

    ``describe()`` returns a JSON-able dict that ``from_description`` turns back into
    an equal driver, so a container loaded by another process can still unmount.
    """

    def mount(self, container_id: str) -> Mount: ...

    def unmount(self, container_id: str) -> None: ...

    def describe(self) -> dict[str, Any]: ...
