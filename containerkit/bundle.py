"""Bundle: the ContainerConfig that reads an OCI bundle directory (config.json + rootfs)."""

from __future__ import annotations

import posix

from . import pathnames
from . import spec as oci
from .errors import ConfigError
from .graph import BindGraphDriver, Mount
from .records import replace
from .state import DEFAULT_ROOT, check_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from os import PathLike


def __getattr__(name: str) -> object:
    # ContainerConfig, a typing.Protocol, lives in protocols.py: typing's import would
    # cost every `create`/`run` ~2 ms; it stays importable from here
    if name == "ContainerConfig":
        from .protocols import ContainerConfig

        return ContainerConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Bundle:
    """An OCI bundle directory. ``root`` is the state root (default /run/containerkit)."""

    def __init__(self, path: str | PathLike[str], id: str,
                 root: str | PathLike[str] = DEFAULT_ROOT) -> None:
        self.path = pathnames.abspath(posix.fspath(path))
        self.id = check_id(id)
        self.root = posix.fspath(root)
        self._spec: oci.Spec | None = None

    @property
    def bundle(self) -> str:
        return self.path

    def load(self) -> oci.Spec:
        """config.json as written in the bundle (read once)."""
        if self._spec is None:
            if not pathnames.isdir(self.path):
                raise ConfigError(f"bundle {self.path}: no such directory")
            self._spec = oci.load(pathnames.join(self.path, "config.json"))
        return self._spec

    def rootfs(self) -> str:
        """Absolute path of root.path (relative paths are relative to the bundle)."""
        spec = self.load()
        if spec.root is None or not spec.root.path:
            raise ConfigError(f"{self.path}/config.json: root.path: required")
        return pathnames.join(self.path, spec.root.path)

    def graph_driver(self) -> BindGraphDriver:
        """The rootfs named in config.json, used as it is (what runc does)."""
        return BindGraphDriver(self.rootfs())

    def spec(self, mount: Mount) -> oci.Spec:
        """The bundle's spec with root.path pointing at the mounted rootfs."""
        spec = self.load()
        root = replace(spec.root, path=mount.path) if spec.root else oci.Root(
            path=mount.path)
        if mount.readonly:
            root = replace(root, readonly=True)
        return replace(spec, root=root)
