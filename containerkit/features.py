"""What this containerkit applies, as the OCI features document (``containerkit features``).

Truthful by construction: every list is derived from the table the code itself uses
(namespaces from the planner, mount options from ``mountopts``, capabilities from
``capabilities``, seccomp actions/operators/flags from ``seccomp``), minus what those
modules refuse. When a module learns something new, its table grows and so does this
document; when something is refused, say it in one of the ``_REFUSED``/``False`` entries
below (tests/unit/test_features.py and tests/integration/test_cli.py hold every listed
item against the planner and against real containers).
"""

from __future__ import annotations

from typing import Any

OCI_VERSION_MIN = "1.0.0"

# spec fields whose machinery is not built yet (each refused by check_supported)
APPARMOR = False
SELINUX = False
INTEL_RDT = False
NET_DEVICES = True         # native/netdev.py moves them (at the init's stop before pivot_root)
CGROUP_V1 = False          # never: containerkit drives cgroup v2 only
SYSTEMD_CGROUP = False     # --systemd-cgroup is refused

# every architecture name the spec defines (defs-linux.json SeccompArch)
SECCOMP_ARCHS = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
    "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
)
# every action the spec defines (defs-linux.json SeccompAction)
SECCOMP_ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                   "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW",
                   "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
# every seccomp flag the spec defines (defs-linux.json SeccompFlag)
SECCOMP_KNOWN_FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                       "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                       "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")


def namespaces() -> list[str]:
    """Namespace types the planner creates (plan.NAMESPACE_FLAGS)."""
    from .native.plan import NAMESPACE_FLAGS

    return sorted(NAMESPACE_FLAGS)


def mount_options() -> list[str]:
    """The options mountopts.parse applies itself (a flag, attribute, propagation or
    extension), or hands to the filesystem as a known superblock flag; refused ones and
    ones it would pass on as unknown filesystem data are not listed."""
    from .native import mountopts

    superblock = mountopts.VFS_SUPERBLOCK
    listed = []
    for opt in mountopts.known():
        try:
            parsed = mountopts.parse([opt], "mounts[0]")
        except Exception:  # noqa: BLE001 - refused: not listed
            continue
        if parsed.data and opt not in superblock:
            continue                    # only passed on as filesystem data
        listed.append(opt)
    return sorted(listed)


def idmap_mounts() -> bool:
    """Whether mounts[].options idmap is applied (mountopts knows it)."""
    return "idmap" in mount_options()


def capabilities() -> list[str]:
    """Capabilities known to containerkit that this kernel has."""
    from .native.capabilities import NAMES, last_cap

    return list(NAMES[:last_cap() + 1])


def hooks() -> list[str]:
    """Hook stages that run (the planner refuses none of them)."""
    return ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
            "poststop"]


def seccomp() -> dict[str, Any]:
    """Actions, operators, archs and flags native/seccomp.py applies."""
    from . import spec as oci
    from .native import seccomp as sc

    actions = []
    for name in SECCOMP_ACTIONS:
        try:
            sc.action(name, None, "features")
        except Exception:  # noqa: BLE001 - refused: not listed
            continue
        actions.append(name)
    archs = []
    for arch in SECCOMP_ARCHS:
        # what compile_filter accepts in a filter on this host (libseccomp knows the
        # name and can add it next to the native one: not a foreign-endian arch)
        try:
            sc.compile_filter(oci.Seccomp(default_action="SCMP_ACT_ALLOW",
                                          architectures=[arch]))
        except Exception:  # noqa: BLE001 - refused here: not listed
            continue
        archs.append(arch)
    return {
        "enabled": True,
        "actions": sorted(actions),
        "operators": sorted(sc._COMPARE),
        "archs": archs,
        "knownFlags": list(SECCOMP_KNOWN_FLAGS),
        "supportedFlags": sorted(sc._FLAGS),
    }


def features() -> dict[str, Any]:
    """The features document (runtime-spec features.md)."""
    from . import __version__
    from .spec import OCI_VERSION

    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION,
        "hooks": hooks(),
        "mountOptions": mount_options(),
        "linux": {
            "namespaces": namespaces(),
            "capabilities": capabilities(),
            "cgroup": {"v1": CGROUP_V1, "v2": True, "systemd": SYSTEMD_CGROUP,
                       "systemdUser": SYSTEMD_CGROUP, "rdma": True},
            "seccomp": seccomp(),
            "apparmor": {"enabled": APPARMOR},
            "selinux": {"enabled": SELINUX},
            "intelRdt": {"enabled": INTEL_RDT},
            "mountExtensions": {"idmap": {"enabled": idmap_mounts()}},
            "netDevices": {"enabled": NET_DEVICES},
        },
        "annotations": {"io.github.containerkit.version": __version__},
        "potentiallyUnsafeConfigAnnotations": [],
    }


def builtin_summary() -> str:
    """One line for ``--version``: the optional features, crun's +X/-X style."""
    items = [("SECCOMP", True), ("CGROUP2", True), ("EBPF_DEVICES", True),
             ("USERNS", "user" in namespaces()), ("TIMENS", "time" in namespaces()),
             ("APPARMOR", APPARMOR), ("SELINUX", SELINUX), ("SYSTEMD", SYSTEMD_CGROUP),
             ("CRIU", False)]
    return " ".join(("+" if on else "-") + name for name, on in items)
