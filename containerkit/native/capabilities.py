"""Capability names (as the spec writes them) to numbers, and the sets as bit masks."""

from __future__ import annotations

from ..errors import SpecError

# linux/capability.h, in number order
NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
NUMBERS = {name: i for i, name in enumerate(NAMES)}


_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability this kernel knows (caps above it cannot be asked for); read
    once per process."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _last_cap = int(f.read())
        except OSError:
            _last_cap = len(NAMES) - 1
    return _last_cap


def mask(names: list[str] | None, field: str) -> int:
    """Bit mask of ``names``; an unknown name is refused, never ignored."""
    bits = 0
    top = last_cap()
    for name in names or ():
        num = NUMBERS.get(name)
        if num is None:
            raise SpecError(f"config.json: {field}: unknown capability {name!r}")
        if num > top:
            raise SpecError(f"config.json: {field}: {name} is not known to this kernel")
        bits |= 1 << num
    return bits


def numbers(bits: int) -> list[int]:
    return [i for i in range(bits.bit_length()) if bits >> i & 1]
