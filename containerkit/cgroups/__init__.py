"""cgroup v2: find the host's cgroup2 mount, give each container its own directory, apply
``linux.resources`` to it and read its statistics."""

from .v2 import Cgroup, cgroup2_mountpoint, container_cgroup_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .resources import (
        apply,
        check_memory_update,
        controllers_by_field,
        enable_controllers,
        needed_controllers,
        plan_writes,
        stats,
    )

# resources.py on first use: `start`, `delete` and `kill` need only Cgroup (~0.4 ms)
_RESOURCES = frozenset({"apply", "check_memory_update", "controllers_by_field",
                        "enable_controllers", "needed_controllers", "plan_writes", "stats"})


def __getattr__(name: str) -> object:
    if name in _RESOURCES:
        from . import resources

        return getattr(resources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Cgroup",
    "apply",
    "cgroup2_mountpoint",
    "check_memory_update",
    "container_cgroup_path",
    "controllers_by_field",
    "enable_controllers",
    "needed_controllers",
    "plan_writes",
    "stats",
]
