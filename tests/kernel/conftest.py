"""Kernel tests run only inside the VM that ``vagrant/run-vm-tests`` boots (pure cgroup v2,
every controller); it sets CONTAINERKIT_IN_VM=1. Anywhere else every test here skips, so
they never touch a host's cgroup hierarchy (the development machines' v1 trees belong to
their supervisor). A Vagrant box with a real kernel may set the variable itself."""

from __future__ import annotations

import os

import pytest

IN_VM = os.environ.get("CONTAINERKIT_IN_VM") == "1"


@pytest.fixture(autouse=True)
def _only_in_vm() -> None:
    if not IN_VM:
        pytest.skip("kernel tests run inside the VM: vagrant/run-vm-tests")
    if os.geteuid() != 0:
        pytest.skip("kernel tests need root")
