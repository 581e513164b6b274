"""cgroup v2: find the host's cgroup2 mount, give each container its own directory."""

from .v2 import Cgroup, cgroup2_mountpoint, container_cgroup_path

__all__ = ["Cgroup", "cgroup2_mountpoint", "container_cgroup_path"]
