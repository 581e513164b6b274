"""cgroup v2: find the host's cgroup2 mount, give each container its own directory, apply
``linux.resources`` to it and read its statistics."""

from .resources import (
    apply,
    check_memory_update,
    controllers_by_field,
    enable_controllers,
    needed_controllers,
    plan_writes,
    stats,
)
from .v2 import Cgroup, cgroup2_mountpoint, container_cgroup_path

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
