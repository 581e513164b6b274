"""cgroup v2: find the host's cgroup2 mount, give each container its own directory, apply
``linux.resources`` to it and read its statistics.

``resources.py`` (the runc mapping of ``linux.resources``) is imported by ``Cgroup`` on
first use: ``start``, ``delete`` and ``kill`` need only ``Cgroup`` (~0.4 ms less)."""

from .v2 import Cgroup, cgroup2_mountpoint, container_cgroup_path

__all__ = ["Cgroup", "cgroup2_mountpoint", "container_cgroup_path"]
