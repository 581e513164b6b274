"""containerkit: a Linux container runtime in Python that makes the system calls itself.

Public names only (see README.md). They are imported on first use (PEP 562) so that a
CLI verb such as ``state`` does not pay for the native module it never calls.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: the CLI would pay ~2 ms
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_WHERE = {
    "Bundle": "bundle", "ContainerConfig": "protocols",
    "Container": "container", "ExecutionDriver": "protocols",
    "load_container": "container", "new_container": "container",
    "ConfigError": "errors", "ContainerExists": "errors", "ContainerkitError": "errors",
    "ContainerNotFound": "errors", "InvalidState": "errors", "SetupError": "errors",
    "SpecError": "errors", "UnsupportedError": "errors",
    "BindGraphDriver": "graph", "GraphDriver": "protocols", "Mount": "graph",
    "OverlayGraphDriver": "graph",
    "NativeDriver": "native.driver",
    "Process": "process",
}
__all__ = [
    "BindGraphDriver", "Bundle", "ConfigError", "Container", "ContainerConfig",
    "ContainerExists", "ContainerNotFound", "ContainerkitError", "ExecutionDriver",
    "GraphDriver", "InvalidState", "Mount", "NativeDriver", "OverlayGraphDriver", "Process",
    "SetupError", "SpecError", "UnsupportedError", "load_container", "new_container",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'containerkit' has no attribute {name!r}")
    import importlib  # here: its import (with warnings) costs every CLI call ~0.3 ms

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .bundle import Bundle
    from .container import Container, load_container, new_container
    from .errors import (
        ConfigError,
        ContainerExists,
        ContainerkitError,
        ContainerNotFound,
        InvalidState,
        SetupError,
        SpecError,
        UnsupportedError,
    )
    from .graph import BindGraphDriver, Mount, OverlayGraphDriver
    from .native.driver import NativeDriver
    from .process import Process
    from .protocols import ContainerConfig, ExecutionDriver, GraphDriver
