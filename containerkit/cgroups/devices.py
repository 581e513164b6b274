"""``linux.resources.devices`` on cgroup v2: a ``BPF_CGROUP_DEVICE`` program built from the rules.

cgroup v2 has no devices controller: as runc (``devicefilter``) and crun (``ebpf.c``) do, the
allow/deny list becomes an eBPF program attached to the container's cgroup directory with
``BPF_F_ALLOW_MULTI``; an update attaches the new program first, then detaches the old ones
(between the two both run, and the kernel allows an access only if every program does, so
nothing is ever more open than either rule set).

The rule list the program enforces is runc's: the spec's rules in order, then an ``rwm``
allow for every ``linux.devices`` node, then runc's built-in allow list
(:data:`DEFAULT_RULES`: mknod of any node, the default devices, ``/dev/pts``, ``/dev/ptmx``,
``/dev/net/tun``). The baseline is deny, as in runc's emulator.

Semantics: for each access bit the kernel asks about (m, r, w), the LAST rule that matches
the device and names that bit decides; an access is allowed when every bit it asks for is.
That is what applying the rules one after the other to a v1 devices cgroup means, without
v1's inability to "punch holes" in a wildcard rule (a ``deny c 1:1`` after ``allow c 1:*``
denies 1:1 here; runc refuses that list, v1 ignored the deny).

Instructions are assembled here; ``syscalls.bpf_*`` make the calls.
"""

from __future__ import annotations

import posix

from ..errors import ConfigError, UnsupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import NamedTuple

    from .. import spec
else:  # typing and collections cost every create/run ~4 ms
    from ..records import NamedTuple

WILDCARD = -1

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
# access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
DEV_BLOCK, DEV_CHAR = 1, 2
_ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_DEV_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}


class Rule(NamedTuple):
    """One allow/deny entry: type 'a', 'b' or 'c'; major/minor -1 for any; access 'rwm'."""

    allow: bool
    type: str = "a"
    major: int = WILDCARD
    minor: int = WILDCARD
    access: str = "rwm"

    def __str__(self) -> str:
        num = "*" if self.major == WILDCARD else str(self.major)
        mnum = "*" if self.minor == WILDCARD else str(self.minor)
        return f"{'allow' if self.allow else 'deny'} {self.type} {num}:{mnum} {self.access}"


#: runc's built-in allow list (libcontainer/specconv AllowedDevices), appended last so it
#: always applies. /dev/net/tun: dropped in runc 1.2.0, back in 1.2.1 (and in 1.1.x).
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(True, "c", WILDCARD, WILDCARD, "m"),
    Rule(True, "b", WILDCARD, WILDCARD, "m"),
    Rule(True, "c", 1, 3, "rwm"),        # /dev/null
    Rule(True, "c", 1, 8, "rwm"),        # /dev/random
    Rule(True, "c", 1, 7, "rwm"),        # /dev/full
    Rule(True, "c", 5, 0, "rwm"),        # /dev/tty
    Rule(True, "c", 1, 5, "rwm"),        # /dev/zero
    Rule(True, "c", 1, 9, "rwm"),        # /dev/urandom
    Rule(True, "c", 136, WILDCARD, "rwm"),   # /dev/pts/*
    Rule(True, "c", 5, 2, "rwm"),        # /dev/ptmx
    Rule(True, "c", 10, 200, "rwm"),     # /dev/net/tun
)


def rules_from_spec(linux: spec.Linux | None,
                    devices: Sequence[spec.DeviceCgroup] | None = None) -> list[Rule]:
    """The whole rule list for a container (see the module docstring). ``devices``: the
    ``linux.resources.devices`` to use instead of the spec's (an update)."""
    field = "linux.resources.devices"
    if devices is None:
        res = linux.resources if linux is not None else None
        devices = res.devices if res is not None else []
    rules: list[Rule] = []
    for i, d in enumerate(devices or ()):
        typ = d.type or "a"
        major = WILDCARD if d.major is None else d.major
        minor = WILDCARD if d.minor is None else d.minor
        access = d.access if d.access is not None else "rwm"
        for name, v, top in (("major", major, 0xFFF), ("minor", minor, 0xFFFFF)):
            if v < WILDCARD or v > top:     # Linux: 12-bit majors, 20-bit minors
                raise ConfigError(f"{field}[{i}].{name}: {v} is not a device number "
                                  f"(0..{top}, or -1/omitted for any)")
        rules.append(Rule(bool(d.allow), typ, major, minor, access))
    for d in (linux.devices if linux is not None else ()):
        if d.type in ("c", "u", "b") and d.major is not None and d.minor is not None:
            rules.append(Rule(True, "b" if d.type == "b" else "c", d.major, d.minor, "rwm"))
    rules.extend(DEFAULT_RULES)
    return rules


# ---------------------------------------------------------------------------------------------
# Assembly (linux/bpf_common.h, linux/bpf.h)
# ---------------------------------------------------------------------------------------------

_LDX_MEM_W = 0x61          # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
_ALU_AND_K = 0x54          # BPF_ALU | BPF_AND | BPF_K (32-bit)
_ALU_RSH_K = 0x74          # BPF_ALU | BPF_RSH | BPF_K
_ALU_MOV_K = 0xB4          # BPF_ALU | BPF_MOV | BPF_K
_ALU_MOV_X = 0xBC          # BPF_ALU | BPF_MOV | BPF_X
_ALU_XOR_K = 0xA4          # BPF_ALU | BPF_XOR | BPF_K
_JMP_JNE_K = 0x55          # BPF_JMP | BPF_JNE | BPF_K
_JMP_JEQ_K = 0x15          # BPF_JMP | BPF_JEQ | BPF_K
_EXIT = 0x95               # BPF_JMP | BPF_EXIT
R0, R1, R2, R4, R5, R6 = 0, 1, 2, 4, 5, 6
_ALL_BITS = ACC_MKNOD | ACC_READ | ACC_WRITE
_ALLOW, _DENY, _NEXT = "allow", "deny", "next"   # jump targets, resolved at the end


def assemble(rules: Sequence[Rule]) -> bytes:
    """The program (struct bpf_insn[] as bytes) that enforces ``rules``: returns 1 (allow)
    when, for every access bit asked, the last matching rule naming the bit allows it.

    One pass over the rules, last first, with r6 = the asked bits no rule has decided yet:
    a matching allow clears its bits (none left: allow), a matching deny that names an
    undecided bit denies; bits still undecided after the first rule are denied.

    Shaped for the verifier, which costs every create (it runs at each load): the device
    registers are never compared themselves, only a scratch copy (r0 = reg ^ value), so no
    path learns their exact values and the states of all paths compare equal where they
    join. Compared directly, each combination of matching rules was a state of its own:
    the verifier walked ~9 instructions per instruction of runc's default list (~1.2 ms per
    load here), now ~2 (~0.25 ms)."""
    prog: list[tuple[int, int, int | str, int]] = []   # (code, regs, offset or label, imm)

    def emit(code: int, dst: int = 0, src: int = 0, off: int | str = 0, imm: int = 0) -> None:
        prog.append((code, (src << 4) | dst, off, imm))

    emit(_LDX_MEM_W, R2, R1, 0)         # r2 = access_type
    emit(_ALU_MOV_X, R6, R2)
    emit(_ALU_RSH_K, R6, imm=16)
    emit(_ALU_AND_K, R6, imm=_ALL_BITS)  # r6 = the m/r/w bits asked
    emit(_ALU_AND_K, R2, imm=0xFFFF)    # r2 = device type
    emit(_LDX_MEM_W, R4, R1, 4)         # r4 = major
    emit(_LDX_MEM_W, R5, R1, 8)         # r5 = minor
    emit(_JMP_JEQ_K, R6, off=_ALLOW)    # nothing asked
    for rule in reversed(rules):
        bits = 0
        for c in rule.access:
            bits |= _ACCESS_BITS[c]
        if not bits:
            continue
        checks: list[tuple[int, int]] = []   # (register, value) that must be equal
        if rule.type != "a":
            checks.append((R2, _DEV_TYPES[rule.type]))
        if rule.major != WILDCARD:
            checks.append((R4, rule.major))
        if rule.minor != WILDCARD:
            checks.append((R5, rule.minor))
        first = len(prog)
        for reg, value in checks:
            emit(_ALU_MOV_X, R0, reg)
            emit(_ALU_XOR_K, R0, imm=_imm32(value))
            emit(_JMP_JNE_K, R0, off=_NEXT)
        if rule.allow:
            emit(_ALU_AND_K, R6, imm=~bits)
            emit(_JMP_JEQ_K, R6, off=_ALLOW)
        else:
            emit(_ALU_MOV_X, R0, R6)
            emit(_ALU_AND_K, R0, imm=bits)
            emit(_JMP_JNE_K, R0, off=_DENY)
        nxt = len(prog)                       # a check that fails goes to the next rule
        for pc in range(first, nxt):
            code, regs, off, imm = prog[pc]
            if off == _NEXT:
                prog[pc] = (code, regs, nxt - pc - 1, imm)
    deny = len(prog)
    emit(_ALU_MOV_K, R0, imm=0)
    emit(_EXIT)
    allow = len(prog)
    emit(_ALU_MOV_K, R0, imm=1)
    emit(_EXIT)
    out = bytearray()
    for pc, (code, regs, off, imm) in enumerate(prog):
        if off == _ALLOW:
            off = allow - pc - 1
        elif off == _DENY:
            off = deny - pc - 1
        assert isinstance(off, int)
        out += bytes((code, regs)) + off.to_bytes(2, "little", signed=True) \
            + imm.to_bytes(4, "little", signed=True)
    return bytes(out)


def _imm32(value: int) -> int:
    """A u32 compared by a 64-bit JNE against a zero-extended u32 register: fits in s32."""
    if value > 0x7FFFFFFF:
        raise UnsupportedError(f"linux.resources.devices: device number {value} is too large")
    return value


# ---------------------------------------------------------------------------------------------
# Load, attach, replace
# ---------------------------------------------------------------------------------------------

#: Loaded programs by their rules, for this process: a library that creates many
#: containers with the same rules assembles the program (~0.2 ms of Python) and pays the
#: verifier once (an fd can be attached to many cgroups).
_loaded: dict[tuple[Rule, ...], int] = {}
_MAX_CACHED = 8


def _load(rules: tuple[Rule, ...]) -> int:
    from .. import syscalls as s

    fd = _loaded.get(rules)
    if fd is not None:
        return fd
    code = assemble(rules)
    try:
        fd = s.bpf_prog_load(s.BPF_PROG_TYPE_CGROUP_DEVICE, code, b"Apache",
                             name=b"ck_devices", expected_attach_type=s.BPF_CGROUP_DEVICE)
    except OSError:
        # again with the verifier's log, for the message
        fd = s.bpf_prog_load(s.BPF_PROG_TYPE_CGROUP_DEVICE, code, b"Apache",
                             name=b"ck_devices", expected_attach_type=s.BPF_CGROUP_DEVICE,
                             log_size=1 << 16)
    if len(_loaded) >= _MAX_CACHED:
        posix.close(_loaded.pop(next(iter(_loaded))))
    _loaded[rules] = fd
    return fd


def apply(cgroup_dir: str, rules: Iterable[Rule], *, replace: bool = False) -> None:
    """Attach the program for ``rules`` to ``cgroup_dir``; with ``replace``, then detach the
    programs that were attached there before. Errors name the field and the cause."""
    from .. import syscalls as s

    try:
        dirfd = posix.open(cgroup_dir, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except OSError as e:
        raise UnsupportedError(f"linux.resources.devices: {cgroup_dir}: {e.strerror}") from None
    try:
        old = s.bpf_prog_query(dirfd, s.BPF_CGROUP_DEVICE) if replace else []
        prog = _load(tuple(rules))
        prog_id = s.bpf_prog_id(prog) if old else -1
        if prog_id not in old:           # the same program attached twice is EEXIST
            s.bpf_prog_attach(dirfd, prog, s.BPF_CGROUP_DEVICE, s.BPF_F_ALLOW_MULTI)
        for old_id in old:
            if old_id != prog_id:
                _detach(dirfd, old_id)
    except OSError as e:
        raise UnsupportedError(
            f"linux.resources.devices: cannot enforce the device rules with a "
            f"BPF_CGROUP_DEVICE program on {cgroup_dir}: {e}; refusing to run without "
            "them") from None
    finally:
        posix.close(dirfd)


def _detach(dirfd: int, prog_id: int) -> None:
    from .. import syscalls as s

    try:
        fd = s.bpf_prog_get_fd_by_id(prog_id)
    except FileNotFoundError:
        return                              # unloaded meanwhile
    try:
        s.bpf_prog_detach(dirfd, fd, s.BPF_CGROUP_DEVICE)
    except FileNotFoundError:
        pass                                # detached meanwhile
    finally:
        posix.close(fd)
