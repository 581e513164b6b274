"""``linux.resources.devices`` on cgroup v2: a ``BPF_CGROUP_DEVICE`` program built from the rules.

cgroup v2 has no devices controller: as runc (``devicefilter``) and crun (``ebpf.c``) do, the
allow/deny list becomes an eBPF program attached to the container's cgroup directory with
``BPF_F_ALLOW_MULTI``; an update attaches the new program first, then detaches the old ones
(between the two both run, and the kernel allows an access only if every program does, so
nothing is ever more open than either rule set).

The rule list is current runc's (``specconv.CreateCgroupConfig``): the spec's rules in
order, then runc's built-in list (:data:`DEFAULT_DEVICES`: mknod of any node, the default
devices, ``/dev/pts``, ``/dev/ptmx``, ``/dev/net/tun``), less the default devices whose path
``linux.devices`` lists (runc's ``createDevices``: the spec's node replaces the default one,
and so does its permission: none unless a rule gives it). A ``linux.devices`` node gets no
rule of its own: a node's presence is not permission (clients add the allow rule).

The list is then read as a v1 devices cgroup reads it, as runc's emulator does
(:func:`emulate`): ``a`` rules reset the default (deny or allow) and drop the exceptions;
the other rules add to or take from the exceptions of exactly their (type, major, minor);
taking from a node what a wildcard exception gives it ("punching a hole") is refused, as
runc refuses it. The program then allows, in deny-by-default mode, an access that one
exception covers whole (every bit asked), and denies, in allow-by-default mode, an access
that an exception touches at all (any bit asked: the v1 kernel's rule; runc's program asks
for the whole access there too, which lets ``O_RDWR`` through a ``w`` deny).

Instructions are assembled here; ``syscalls.bpf_*`` make the calls.
"""

from __future__ import annotations

import _thread
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


#: runc's built-in list (libcontainer/specconv ``AllowedDevices``), appended after the spec's
#: rules: (path, rule); a path ``linux.devices`` lists drops its rule (runc's ``createDevices``).
#: /dev/net/tun: dropped in runc 1.2.0, back since 1.2.4 (and in 1.1.x).
DEFAULT_DEVICES: tuple[tuple[str, Rule], ...] = (
    ("", Rule(True, "c", WILDCARD, WILDCARD, "m")),
    ("", Rule(True, "b", WILDCARD, WILDCARD, "m")),
    ("/dev/null", Rule(True, "c", 1, 3, "rwm")),
    ("/dev/random", Rule(True, "c", 1, 8, "rwm")),
    ("/dev/full", Rule(True, "c", 1, 7, "rwm")),
    ("/dev/tty", Rule(True, "c", 5, 0, "rwm")),
    ("/dev/zero", Rule(True, "c", 1, 5, "rwm")),
    ("/dev/urandom", Rule(True, "c", 1, 9, "rwm")),
    ("", Rule(True, "c", 136, WILDCARD, "rwm")),     # /dev/pts/*
    ("", Rule(True, "c", 5, 2, "rwm")),              # /dev/ptmx
    ("", Rule(True, "c", 10, 200, "rwm")),           # /dev/net/tun
)
DEFAULT_RULES: tuple[Rule, ...] = tuple(rule for _, rule in DEFAULT_DEVICES)


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
        if not d.access:                    # runc: "device access ... cannot be empty"
            raise ConfigError(f"{field}[{i}].access: empty or missing (a combination of "
                              "'r', 'w', 'm' is required, as runc requires it)")
        for name, v, top in (("major", major, 0xFFF), ("minor", minor, 0xFFFFF)):
            if v < WILDCARD or v > top:     # Linux: 12-bit majors, 20-bit minors
                raise ConfigError(f"{field}[{i}].{name}: {v} is not a device number "
                                  f"(0..{top}, or -1/omitted for any)")
        rules.append(Rule(bool(d.allow), typ, major, minor, d.access))
    listed = {d.path for d in linux.devices} if linux is not None and linux.devices else ()
    rules.extend(rule for path, rule in DEFAULT_DEVICES if not path or path not in listed)
    return rules


class Program(NamedTuple):
    """What the program enforces: the default verdict, and the exceptions to it (each
    with the other verdict, type 'b' or 'c'), in runc's order (major, minor, type)."""

    default_allow: bool
    exceptions: tuple[Rule, ...]


def _bits(access: str) -> int:
    bits = 0
    for c in access:
        bits |= _ACCESS_BITS[c]
    return bits


def _letters(bits: int) -> str:
    return "".join(c for c in "rwm" if bits & _ACCESS_BITS[c])


def emulate(rules: Iterable[Rule]) -> Program:
    """The rules applied one after the other to an emulated v1 devices cgroup, as runc's
    ``devices.emulator`` does. Two choices differ from runc, each the narrower reading:
    an ``allow`` of type ``a`` with a major, a minor or less than ``rwm`` allows just
    that for both types (the runtime-spec's meaning; runc, like v1, resets to allow
    everything), while a ``deny`` of type ``a`` always resets to deny all (runc's)."""
    default_allow = False
    exc: dict[tuple[str, int, int], int] = {}
    for rule in rules:
        bits = _bits(rule.access)
        if rule.type == "a":
            if not rule.allow or (rule.major == rule.minor == WILDCARD and bits == _ALL_BITS):
                default_allow, exc = rule.allow, {}
                continue
            metas = [("c", rule.major, rule.minor), ("b", rule.major, rule.minor)]
        else:
            metas = [(rule.type, rule.major, rule.minor)]
        for meta in metas:
            if rule.allow != default_allow:       # an exception to the default
                if bits:
                    exc[meta] = exc.get(meta, 0) | bits
                continue
            typ, major, minor = meta              # takes from the exception of ``meta``
            for wide in ((typ, WILDCARD, minor), (typ, major, WILDCARD),
                         (typ, WILDCARD, WILDCARD)):
                if wide != meta and exc.get(wide, 0) & bits:
                    held = Rule(not default_allow, *wide, _letters(exc[wide]))
                    raise ConfigError(
                        f"linux.resources.devices: {rule} cannot punch a hole in the "
                        f"earlier wildcard rule {held} (runc and the v1 devices cgroup "
                        "refuse it too): list what to allow instead")
            left = exc.pop(meta, 0) & ~bits
            if left:
                exc[meta] = left
    order = sorted(exc.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0] == "c"))
    return Program(default_allow, tuple(Rule(not default_allow, t, major, minor, _letters(b))
                                        for (t, major, minor), b in order))


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


def assemble(rules: Sequence[Rule] | Program) -> bytes:
    """The program (struct bpf_insn[] as bytes) that enforces ``rules`` (read by
    :func:`emulate`) or an emulated :class:`Program`: returns 1 (allow) or 0 (deny).

    One block per exception, in order; the first whose device matches decides if the
    access is in it (deny by default: every asked bit; allow by default: any), else the
    next; the default after the last. As runc's, but shaped for the verifier, which costs
    every create (it runs at each load): the device and access registers are never
    compared themselves, only a scratch copy (r0 = reg ^ value, r0 = asked & bits), so no
    path learns their exact values and the states of all paths compare equal where they
    join (each combination of matching rules was a state of its own when they were
    compared directly: ~9 instructions walked per instruction of runc's default list,
    ~1.2 ms per load here, against ~2)."""
    program = rules if isinstance(rules, Program) else emulate(rules)
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
    for rule in program.exceptions:
        bits = _bits(rule.access)
        checks: list[tuple[int, int]] = [(R2, _DEV_TYPES[rule.type])]
        if rule.major != WILDCARD:
            checks.append((R4, rule.major))
        if rule.minor != WILDCARD:
            checks.append((R5, rule.minor))
        first = len(prog)
        for reg, value in checks:
            emit(_ALU_MOV_X, R0, reg)
            emit(_ALU_XOR_K, R0, imm=_imm32(value))
            emit(_JMP_JNE_K, R0, off=_NEXT)
        emit(_ALU_MOV_X, R0, R6)
        if rule.allow:                  # allowed if no asked bit is outside the rule's
            emit(_ALU_AND_K, R0, imm=~bits)
            emit(_JMP_JEQ_K, R0, off=_ALLOW)
        else:                           # denied if any asked bit is in the rule's
            emit(_ALU_AND_K, R0, imm=bits)
            emit(_JMP_JNE_K, R0, off=_DENY)
        nxt = len(prog)                       # a check that fails goes to the next rule
        for pc in range(first, nxt):
            code, regs, off, imm = prog[pc]
            if off == _NEXT:
                prog[pc] = (code, regs, nxt - pc - 1, imm)
    emit(_ALU_MOV_K, R0, imm=int(program.default_allow))    # no exception decided
    emit(_EXIT)
    verdict = len(prog)          # every exception's verdict is the other one (the
    if program.exceptions:       # verifier refuses unreachable instructions)
        emit(_ALU_MOV_K, R0, imm=int(not program.default_allow))
        emit(_EXIT)
    out = bytearray()
    for pc, (code, regs, off, imm) in enumerate(prog):
        if off in (_ALLOW, _DENY):
            off = verdict - pc - 1
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

#: Loaded programs by what they enforce, least recently used first: a library that
#: creates many containers with the same rules assembles the program (~0.2 ms of Python)
#: and pays the verifier once (an fd can be attached to many cgroups). Shared by every
#: thread of the process, under ``_lock``.
_loaded: dict[Program, int] = {}
_lock = _thread.allocate_lock()
#: The cache's bound: at most this many program fds stay open in the embedding process
#: between calls (the least recently used is closed first); while an :func:`apply` runs,
#: it holds one more, its own dup, closed before it returns.
MAX_CACHED = 8


def cached_fds() -> list[int]:
    """The program fds the cache holds now (nothing else of this module stays open)."""
    with _lock:
        return list(_loaded.values())


def _take(program: Program) -> int:
    """An fd of the loaded program for ``program``, the caller's to close: a dup of the
    cached one, made under the lock, so that another thread's eviction (which closes the
    cached fd) can never close the number the caller attaches, nor let a program loaded
    meanwhile reuse it."""
    with _lock:
        fd = _loaded.pop(program, None)
        if fd is not None:
            _loaded[program] = fd               # now the most recently used
            return posix.dup(fd)
    fd = _prog_load(program)                    # outside the lock: the verifier's time
    with _lock:
        if program in _loaded:                  # another thread loaded it meanwhile:
            return fd                           # this one serves this call only
        try:
            mine = posix.dup(fd)
        except OSError:
            posix.close(fd)
            raise
        while len(_loaded) >= MAX_CACHED:
            posix.close(_loaded.pop(next(iter(_loaded))))
        _loaded[program] = fd
        return mine


def _prog_load(program: Program) -> int:
    from .. import syscalls as s

    code = assemble(program)
    try:
        return s.bpf_prog_load(s.BPF_PROG_TYPE_CGROUP_DEVICE, code, b"Apache",
                               name=b"ck_devices", expected_attach_type=s.BPF_CGROUP_DEVICE)
    except OSError:
        # again with the verifier's log, for the message
        return s.bpf_prog_load(s.BPF_PROG_TYPE_CGROUP_DEVICE, code, b"Apache",
                               name=b"ck_devices", expected_attach_type=s.BPF_CGROUP_DEVICE,
                               log_size=1 << 16)


def apply(cgroup_dir: str, rules: Iterable[Rule], *, replace: bool = False) -> None:
    """Attach the program for ``rules`` to ``cgroup_dir``; with ``replace``, then detach the
    programs that were attached there before. Errors name the field and the cause."""
    from .. import syscalls as s

    program = emulate(rules)
    try:
        dirfd = posix.open(cgroup_dir, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except OSError as e:
        raise UnsupportedError(f"linux.resources.devices: {cgroup_dir}: {e.strerror}") from None
    prog = -1
    try:
        old = s.bpf_prog_query(dirfd, s.BPF_CGROUP_DEVICE) if replace else []
        prog = _take(program)
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
        if prog >= 0:
            posix.close(prog)
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
