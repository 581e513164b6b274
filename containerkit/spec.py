"""Typed model of the OCI runtime-spec 1.3 ``config.json``.

Why hand-written instead of jsonschema: the CLI imports this module on every ``create``,
so it must be stdlib-only and cheap to import. The checks follow the schemas in
``schema/config-schema.json``, ``config-linux.json``, ``defs.json`` and ``defs-linux.json``
(types, required fields, enums, patterns, integer ranges), plus a few semantic rules from
the spec prose that runc also enforces (root present, no duplicate namespace types...).

Every error is a :class:`~containerkit.errors.SpecError` with a one-line message of the form
``<source>: <json.field.path>: <what is wrong>``.

Decoding keeps unknown keys of every object in ``extra`` and remembers which keys were
present, so ``loads(text).to_dict()`` gives back the document it was read from. Objects built
in Python (not decoded) encode like runc's Go structs: empty optional fields are left out.
"""

from __future__ import annotations

import posix

from . import jsonfast, pathnames
from .errors import SpecError
from .records import MISSING, collect, field, fields

# typing, json and re are not imported at run time: with the enum, functools and
# collections they pull in, they cost every `create`/`run` ~10 ms (see jsonfast.py)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Callable
    from os import PathLike
    from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

    _T = TypeVar("_T")
else:
    def dataclass_transform(**kwargs: object) -> object:
        return lambda f: f

__all__ = [
    "OCI_VERSION",
    "BlockIO",
    "Box",
    "CPU",
    "Capabilities",
    "Device",
    "DeviceCgroup",
    "ExecCPUAffinity",
    "HugepageLimit",
    "Hook",
    "Hooks",
    "IDMapping",
    "IOPriority",
    "IntelRdt",
    "Linux",
    "Memory",
    "MemoryPolicy",
    "Mount",
    "Namespace",
    "NetDevice",
    "Network",
    "NetworkPriority",
    "Personality",
    "Pids",
    "Process",
    "Rdma",
    "Resources",
    "Rlimit",
    "Root",
    "Scheduler",
    "Seccomp",
    "SeccompArg",
    "Spec",
    "Syscall",
    "ThrottleDevice",
    "TimeOffset",
    "User",
    "WeightDevice",
    "default_spec",
    "load",
    "loads",
    "loads_process",
]

#: The runtime-spec version this model implements; written by :func:`default_spec`.
OCI_VERSION = "1.3.0"

# --------------------------------------------------------------------------------------------
# Decoding primitives. A decoder takes (json_value, field_path) and returns the Python value or
# raises _Invalid; the public entry points turn _Invalid into a one-line SpecError.
# --------------------------------------------------------------------------------------------


class _Invalid(Exception):
    """Internal: a validation failure at a JSON path, before the source name is known."""

    def __init__(self, path: str, msg: str) -> None:
        super().__init__(path, msg)
        self.path = path
        self.msg = msg


def _spec_error(source: str, path: str, msg: str) -> SpecError:
    text = f"{source}: {path}: {msg}" if path else f"{source}: {msg}"
    return SpecError(text.replace("\r", "\\r").replace("\n", "\\n"))


def _join(path: str, key: str) -> str:
    """Child path; map keys that are not plain names are quoted so the path stays unambiguous."""
    if key.isascii() and key.replace("-", "_").isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{jsonfast.dumps(key)}]"


def _show(v: Any) -> str:
    """Short one-line rendering of an offending JSON value for error messages."""
    if v is None or type(v) is bool:
        return jsonfast.dumps(v)
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "an array"
    s = repr(v)
    return s if len(s) <= 64 else s[:60] + "..."


def _clone(v: Any) -> Any:
    """Deep copy of plain JSON data (cheaper than copy.deepcopy)."""
    if isinstance(v, dict):
        return {k: _clone(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clone(x) for x in v]
    return v


def _ident(v: Any) -> Any:
    return v


class _Codec:
    """A (decode, encode) pair for one JSON value shape."""

    __slots__ = ("dec", "enc")

    def __init__(self, dec: Callable[[Any, str], Any], enc: Callable[[Any], Any] = _ident):
        self.dec = dec
        self.enc = enc


def _dec_str(v: Any, p: str) -> str:
    if type(v) is str:
        return v
    raise _Invalid(p, f"expected a string, got {_show(v)}")


def _dec_bool(v: Any, p: str) -> bool:
    if v is True or v is False:
        return v
    raise _Invalid(p, f"expected a boolean, got {_show(v)}")


_STR = _Codec(_dec_str)
_BOOL = _Codec(_dec_bool)


def _int(name: str, lo: int | None, hi: int | None) -> _Codec:
    """Integer in [lo, hi]; JSON floats and booleans are rejected like Go's decoder does."""

    def dec(v: Any, p: str) -> int:
        if type(v) is not int:
            raise _Invalid(p, f"expected an integer ({name}), got {_show(v)}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _Invalid(p, f"{v} is out of range for {name} ({lo}..{hi})")
        return v

    return _Codec(dec)


_INT = _int("integer", None, None)
_INT32 = _int("int32", -(2**31), 2**31 - 1)
_INT64 = _int("int64", -(2**63), 2**63 - 1)
_UINT8 = _int("uint8", 0, 2**8 - 1)
_UINT16 = _int("uint16", 0, 2**16 - 1)
_UINT32 = _int("uint32", 0, 2**32 - 1)
_UINT64 = _int("uint64", 0, 2**64 - 1)
_FILEMODE = _int("a file mode", 0, 0o777)
_TIMEOUT = _int("a timeout in seconds", 1, 2**63 - 1)


def _enum(what: str, *values: str) -> _Codec:
    allowed = frozenset(values)
    listing = ", ".join(values)

    def dec(v: Any, p: str) -> str:
        if type(v) is not str:
            raise _Invalid(p, f"expected a string, got {_show(v)}")
        if v not in allowed:
            raise _Invalid(p, f"{_show(v)} is not a valid {what} (expected one of: {listing})")
        return v

    return _Codec(dec)


def _pattern(regex: str, match: Callable[[str], bool] | None = None) -> _Codec:
    """A string matching ``regex``. ``match``, when given, is a quick check that implies
    the regex matches: when it says yes, re is not needed (its import costs ~3 ms)."""
    compiled: list[re.Pattern[str]] = []  # compiled on first use: keeps the import cheap

    def dec(v: Any, p: str) -> str:
        if type(v) is not str:
            raise _Invalid(p, f"expected a string, got {_show(v)}")
        if match is not None and match(v):
            return v
        if not compiled:
            import re

            compiled.append(re.compile(regex))
        if not compiled[0].search(v):
            raise _Invalid(p, f"{v!r} does not match {regex}")
        return v

    return _Codec(dec)


def _list(item: _Codec, min_items: int = 0) -> _Codec:
    idec, ienc = item.dec, item.enc

    def dec(v: Any, p: str) -> list[Any]:
        if type(v) is not list:
            raise _Invalid(p, f"expected an array, got {_show(v)}")
        if len(v) < min_items:
            raise _Invalid(p, f"must have at least {min_items} item(s)")
        return [idec(x, f"{p}[{i}]") for i, x in enumerate(v)]

    if ienc is _ident:
        return _Codec(dec, list)
    return _Codec(dec, lambda v: [ienc(x) for x in v])


def _map(item: _Codec) -> _Codec:
    idec, ienc = item.dec, item.enc

    def dec(v: Any, p: str) -> dict[str, Any]:
        if type(v) is not dict:
            raise _Invalid(p, f"expected an object, got {_show(v)}")
        return {k: idec(x, _join(p, k)) for k, x in v.items()}

    if ienc is _ident:
        return _Codec(dec, dict)
    return _Codec(dec, lambda v: {k: ienc(x) for k, x in v.items()})


def _shape(props: dict[str, _Codec], required: tuple[str, ...] = ()) -> _Codec:
    """An object kept as a plain dict: known keys checked, unknown keys kept as they are.

    Used for the non-Linux platform sections, which this runtime never acts on.
    """

    def dec(v: Any, p: str) -> dict[str, Any]:
        if type(v) is not dict:
            raise _Invalid(p, f"expected an object, got {_show(v)}")
        for key in required:
            if key not in v:
                raise _Invalid(_join(p, key), "required field is missing")
        out: dict[str, Any] = {}
        for key, x in v.items():
            c = props.get(key)
            out[key] = c.dec(x, _join(p, key)) if c is not None else _clone(x)
        return out

    return _Codec(dec, _clone)


_ANY_OBJECT = _shape({})
_STRLIST = _list(_STR)
_STRMAP = _map(_STR)  # defs.json mapStringString


# --------------------------------------------------------------------------------------------
# Typed nodes. Each field carries its JSON key and codec in dataclass metadata; _Node does the
# generic decode/encode so the classes below are declarations only.
# --------------------------------------------------------------------------------------------

_NO_DEFAULT: Any = object()


def _f(
    key: str,
    codec: _Codec,
    *,
    required: bool = False,
    default: Any = _NO_DEFAULT,
    factory: Callable[[], Any] | None = None,
    omitempty: bool = True,
) -> Any:
    """Declare a JSON-backed dataclass field.

    ``required`` is about the JSON document; a Python default is given explicitly (also for
    static checkers, via dataclass_transform). ``omitempty=False`` mirrors a Go field without
    ``omitempty`` (always written by runc); it only matters for objects built in Python.
    """
    md = {"key": key, "codec": codec, "required": required, "omitempty": omitempty}
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    if default is not _NO_DEFAULT:
        return field(default=default, metadata=md)
    if not required:
        raise TypeError(f"optional field {key!r} needs a default")
    return field(metadata=md)


@dataclass_transform(field_specifiers=(field, _f))
def _model(cls: type[_T]) -> type[_T]:
    """``@dataclass`` minus the generated methods.

    exec() of ~110 generated __init__/__repr__/__eq__ methods made importing this module take
    tens of milliseconds, and importing dataclasses itself ~6 ms: records.collect notes the
    fields, _Node supplies generic methods. records.fields() and records.replace() work like
    the dataclasses ones, and type checkers still see typed constructors.
    """
    return collect(cls)


class _Slot:
    __slots__ = ("attr", "key", "codec", "required", "omitempty", "default", "factory")

    def __init__(self, attr: str, key: str, md: Any, default: Any, factory: Any) -> None:
        self.attr = attr
        self.key = key
        self.codec: _Codec = md["codec"]
        self.required: bool = md["required"]
        self.omitempty: bool = md["omitempty"]
        self.default = default      # (one made by the factory: for comparisons only)
        self.factory = factory      # a fresh default for each object, or None


def _node_codec(cls: type[_Node]) -> _Codec:
    return _Codec(cls._decode, lambda o: o.to_dict())


@_model
class _Node:
    """Base of every config object: generic decode/encode plus unknown-key preservation.

    Subclasses are declared with :func:`_model`; the generic ``__init__``, ``__eq__`` and
    ``__repr__`` here behave like the dataclass-generated ones (repr omits default values).
    """

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)
    # Bookkeeping for exact round-trips: the known JSON keys present in the decoded document
    # (so explicit `false` / `[]` survive) and whether this object was decoded at all. They are
    # init fields only so that dataclasses.replace() carries them over.
    _keep: frozenset[str] = field(default=frozenset(), repr=False, compare=False, kw_only=True)
    _decoded: bool = field(default=False, repr=False, compare=False, kw_only=True)

    _json_order: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def _table(cls) -> tuple[tuple[_Slot, ...], frozenset[str]]:
        cached: tuple[tuple[_Slot, ...], frozenset[str]] | None = cls.__dict__.get("_table_cache")
        if cached is not None:
            return cached
        slots: list[_Slot] = []
        for f in fields(cls):
            if "key" not in f.metadata:
                continue
            factory = None
            if f.default is not MISSING:
                default = f.default
            elif f.default_factory is not MISSING:
                factory = f.default_factory
                default = factory()
            else:
                default = _NO_DEFAULT
            slots.append(_Slot(f.name, f.metadata["key"], f.metadata, default, factory))
        if cls._json_order:
            slots.sort(key=lambda s: cls._json_order.index(s.key))
        table = (tuple(slots), frozenset(s.key for s in slots))
        cls._table_cache = table  # type: ignore[attr-defined]
        return table

    @classmethod
    def _decode(cls, v: Any, p: str) -> Self:
        if type(v) is not dict:
            raise _Invalid(p, f"expected an object, got {_show(v)}")
        slots, known = cls._table()
        # what __init__ would do with these keywords, without its argument checks (~30%
        # of a config's decoding): each field its decoded value or its default (a fresh
        # one from a factory); every field but the three below is a JSON key
        obj = cls.__new__(cls)
        fields = obj.__dict__
        for s in slots:
            if s.key in v:
                fields[s.attr] = s.codec.dec(v[s.key], _join(p, s.key))
            elif s.required:
                raise _Invalid(_join(p, s.key), "required field is missing")
            else:
                fields[s.attr] = s.default if s.factory is None else s.factory()
        fields["extra"] = {k: x for k, x in v.items() if k not in known}
        fields["_keep"] = frozenset(k for k in v if k in known)
        fields["_decoded"] = True
        obj._check(p)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names, plan, accepted = type(self)._ctor()
        cls_name = type(self).__name__
        for name in kwargs:
            if name not in accepted:
                raise TypeError(f"{cls_name}() got an unexpected keyword argument {name!r}")
        if len(args) > len(names):
            raise TypeError(f"{cls_name}() takes at most {len(names)} positional arguments")
        for name, arg in zip(names, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{cls_name}() got multiple values for argument {name!r}")
            kwargs[name] = arg
        for name, default, factory in plan:
            if name in kwargs:
                setattr(self, name, kwargs.pop(name))
            elif factory is not None:
                setattr(self, name, factory())
            elif default is not _NO_DEFAULT:
                setattr(self, name, default)
            else:
                raise TypeError(f"{cls_name}() missing required argument: {name!r}")

    @classmethod
    def _ctor(
        cls,
    ) -> tuple[tuple[str, ...], tuple[tuple[str, Any, Any], ...], frozenset[str]]:
        """Positional names, (name, default, factory) per init field, and all init names."""
        cached = cls.__dict__.get("_ctor_cache")
        if cached is None:
            init = [f for f in fields(cls) if f.init]
            names = tuple(f.name for f in init if not f.kw_only)
            plan = tuple(
                (
                    f.name,
                    _NO_DEFAULT if f.default is MISSING else f.default,
                    None if f.default_factory is MISSING else f.default_factory,
                )
                for f in init
            )
            cached = (names, plan, frozenset(f.name for f in init))
            cls._ctor_cache = cached  # type: ignore[attr-defined]
        return cached

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq=True

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.extra == other.extra and all(
            getattr(self, s.attr) == getattr(other, s.attr) for s in self._table()[0]
        )

    def __repr__(self) -> str:
        # Only fields that differ from their defaults: a full Spec repr is long enough as it is.
        parts = [
            f"{s.attr}={getattr(self, s.attr)!r}"
            for s in self._table()[0]
            if s.default is _NO_DEFAULT or getattr(self, s.attr) != s.default
        ]
        if self.extra:
            parts.append(f"extra={self.extra!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _check(self, p: str) -> None:
        """Semantic checks beyond the schema; raise _Invalid. Default: none."""

    @classmethod
    def from_dict(cls, data: Any, source: str = "config.json", path: str = "") -> Self:
        """Decode an already-parsed JSON value; ``path`` prefixes field paths in errors."""
        try:
            return cls._decode(data, path)
        except _Invalid as e:
            raise _spec_error(source, e.path, e.msg) from None

    def to_dict(self) -> dict[str, Any]:
        """The camelCase JSON shape, unknown keys included, absent fields left out."""
        slots, known = self._table()
        out: dict[str, Any] = {}
        keep = self._keep
        for s in slots:
            val = getattr(self, s.attr)
            if val is None:
                continue
            if (
                s.required
                or s.key in keep
                or val != s.default
                or (not s.omitempty and not self._decoded)
            ):
                out[s.key] = s.codec.enc(val)
        for k, x in self.extra.items():
            if k not in known:
                out[k] = _clone(x)
        return out


# ---- generic (defs.json) -------------------------------------------------------------------


@_model
class IDMapping(_Node):
    """One uid/gid range of a user namespace (or of an idmapped mount)."""

    container_id: int = _f("containerID", _UINT32, required=True)
    host_id: int = _f("hostID", _UINT32, required=True)
    size: int = _f("size", _UINT32, required=True)


_IDMAPS = _list(_node_codec(IDMapping))


@_model
class Root(_Node):
    """The container's root filesystem, relative to the bundle unless absolute."""

    path: str = _f("path", _STR, required=True)
    readonly: bool = _f("readonly", _BOOL, default=False)

    def _check(self, p: str) -> None:
        if not self.path:
            raise _Invalid(_join(p, "path"), "must not be empty")


@_model
class Mount(_Node):
    """One entry of ``mounts``, applied in order after the rootfs is set up."""

    destination: str = _f("destination", _STR, required=True)
    type: str | None = _f("type", _STR, default=None)
    source: str | None = _f("source", _STR, default=None)
    options: list[str] = _f("options", _STRLIST, factory=list)
    uid_mappings: list[IDMapping] = _f("uidMappings", _IDMAPS, factory=list)
    gid_mappings: list[IDMapping] = _f("gidMappings", _IDMAPS, factory=list)

    def _check(self, p: str) -> None:
        if not self.destination:
            raise _Invalid(_join(p, "destination"), "must not be empty")


@_model
class Hook(_Node):
    """A program the runtime runs at a lifecycle point, with the state on its stdin."""

    path: str = _f("path", _STR, required=True)
    args: list[str] = _f("args", _STRLIST, factory=list)
    env: list[str] = _f("env", _STRLIST, factory=list)
    timeout: int | None = _f("timeout", _TIMEOUT, default=None)


_HOOKS = _list(_node_codec(Hook))


@_model
class Hooks(_Node):
    """Lifecycle hooks, by the point at which they run."""

    prestart: list[Hook] = _f("prestart", _HOOKS, factory=list)
    create_runtime: list[Hook] = _f("createRuntime", _HOOKS, factory=list)
    create_container: list[Hook] = _f("createContainer", _HOOKS, factory=list)
    start_container: list[Hook] = _f("startContainer", _HOOKS, factory=list)
    poststart: list[Hook] = _f("poststart", _HOOKS, factory=list)
    poststop: list[Hook] = _f("poststop", _HOOKS, factory=list)


# ---- process -------------------------------------------------------------------------------


@_model
class Box(_Node):
    """Console size in characters."""

    height: int = _f("height", _UINT64, required=True)
    width: int = _f("width", _UINT64, required=True)


@_model
class User(_Node):
    """Who the process runs as; ids are in the container's user namespace."""

    uid: int = _f("uid", _UINT32, default=0, omitempty=False)
    gid: int = _f("gid", _UINT32, default=0, omitempty=False)
    umask: int | None = _f("umask", _UINT32, default=None)
    additional_gids: list[int] = _f("additionalGids", _list(_UINT32), factory=list)
    username: str | None = _f("username", _STR, default=None)


@_model
class Capabilities(_Node):
    """Capability sets; None means the set is absent (runc then leaves it empty)."""

    bounding: list[str] | None = _f("bounding", _STRLIST, default=None)
    effective: list[str] | None = _f("effective", _STRLIST, default=None)
    inheritable: list[str] | None = _f("inheritable", _STRLIST, default=None)
    permitted: list[str] | None = _f("permitted", _STRLIST, default=None)
    ambient: list[str] | None = _f("ambient", _STRLIST, default=None)


_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_CPU_LIST_CHARS = frozenset("0123456789, -")


def _rlimit_name(v: str) -> bool:
    return len(v) > 7 and v.startswith("RLIMIT_") and _UPPER.issuperset(v[7:])


@_model
class Rlimit(_Node):
    """A setrlimit(2) pair applied to the container process."""

    type: str = _f("type", _pattern(r"^RLIMIT_[A-Z]+$", _rlimit_name), required=True)
    hard: int = _f("hard", _UINT64, required=True)
    soft: int = _f("soft", _UINT64, required=True)


_SCHED_POLICY = _enum(
    "scheduler policy",
    "SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE",
    "SCHED_DEADLINE",
)  # fmt: skip
_SCHED_FLAG = _enum(
    "scheduler flag",
    "SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN",
    "SCHED_FLAG_KEEP_POLICY", "SCHED_FLAG_KEEP_PARAMS", "SCHED_FLAG_UTIL_CLAMP_MIN",
    "SCHED_FLAG_UTIL_CLAMP_MAX",
)  # fmt: skip


@_model
class Scheduler(_Node):
    """sched_setattr(2) parameters for the container process."""

    policy: str = _f("policy", _SCHED_POLICY, required=True)
    nice: int | None = _f("nice", _INT32, default=None)
    priority: int | None = _f("priority", _INT32, default=None)
    flags: list[str] = _f("flags", _list(_SCHED_FLAG), factory=list)
    runtime: int | None = _f("runtime", _UINT64, default=None)
    deadline: int | None = _f("deadline", _UINT64, default=None)
    period: int | None = _f("period", _UINT64, default=None)


@_model
class IOPriority(_Node):
    """ioprio_set(2) class and level; ``class_`` is the JSON ``class`` key."""

    class_: str = _f(
        "class",
        _enum("I/O priority class", "IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"),
        required=True,
    )
    priority: int | None = _f("priority", _INT32, default=None)


_CPU_LIST = _pattern(r"^[0-9, -]*$", lambda v: _CPU_LIST_CHARS.issuperset(v))


@_model
class ExecCPUAffinity(_Node):
    """CPU lists for `exec`'d processes: before and after joining the container cgroup."""

    initial: str | None = _f("initial", _CPU_LIST, default=None)
    final: str | None = _f("final", _CPU_LIST, default=None)


@_model
class Process(_Node):
    """What to exec in the container, and the credentials and limits to exec it with."""

    terminal: bool = _f("terminal", _BOOL, default=False)
    console_size: Box | None = _f("consoleSize", _node_codec(Box), default=None)
    user: User = _f("user", _node_codec(User), factory=User, omitempty=False)
    args: list[str] = _f("args", _STRLIST, factory=list)
    command_line: str | None = _f("commandLine", _STR, default=None)
    env: list[str] = _f("env", _STRLIST, factory=list)
    # Required by the schema; the default only exists so keyword construction stays easy.
    cwd: str = _f("cwd", _STR, required=True, default="/")
    capabilities: Capabilities | None = _f("capabilities", _node_codec(Capabilities), default=None)
    rlimits: list[Rlimit] = _f("rlimits", _list(_node_codec(Rlimit)), factory=list)
    no_new_privileges: bool = _f("noNewPrivileges", _BOOL, default=False)
    apparmor_profile: str | None = _f("apparmorProfile", _STR, default=None)
    oom_score_adj: int | None = _f("oomScoreAdj", _INT, default=None)
    selinux_label: str | None = _f("selinuxLabel", _STR, default=None)
    scheduler: Scheduler | None = _f("scheduler", _node_codec(Scheduler), default=None)
    io_priority: IOPriority | None = _f("ioPriority", _node_codec(IOPriority), default=None)
    exec_cpu_affinity: ExecCPUAffinity | None = _f(
        "execCPUAffinity", _node_codec(ExecCPUAffinity), default=None
    )


# ---- linux ---------------------------------------------------------------------------------

NAMESPACE_TYPES = ("mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time")


@_model
class Namespace(_Node):
    """A namespace to create, or to join when ``path`` is set."""

    type: str = _f("type", _enum("namespace type", *NAMESPACE_TYPES), required=True)
    path: str | None = _f("path", _STR, default=None)


@_model
class TimeOffset(_Node):
    """Clock offset for a new time namespace."""

    secs: int | None = _f("secs", _INT64, default=None)
    nanosecs: int | None = _f("nanosecs", _UINT32, default=None)


@_model
class Device(_Node):
    """A device node to create in the container (linux.devices)."""

    type: str = _f("type", _pattern(r"^[cbup]$", lambda v: v in ("c", "b", "u", "p")),
                   required=True)
    path: str = _f("path", _STR, required=True)
    major: int | None = _f("major", _INT64, default=None)
    minor: int | None = _f("minor", _INT64, default=None)
    file_mode: int | None = _f("fileMode", _FILEMODE, default=None)
    uid: int | None = _f("uid", _UINT32, default=None)
    gid: int | None = _f("gid", _UINT32, default=None)

    def _check(self, p: str) -> None:
        # config-linux.md: major, minor are REQUIRED unless type is p (a fifo has no numbers).
        if self.type != "p":
            for key, val in (("major", self.major), ("minor", self.minor)):
                if val is None:
                    raise _Invalid(_join(p, key), f"required for device type {self.type!r}")


@_model
class NetDevice(_Node):
    """A host network interface moved into the container's network namespace."""

    name: str | None = _f("name", _STR, default=None)


@_model
class DeviceCgroup(_Node):
    """One entry of the device allow/deny list (linux.resources.devices)."""

    allow: bool = _f("allow", _BOOL, required=True)
    type: str | None = _f("type", _STR, default=None)
    major: int | None = _f("major", _INT64, default=None)
    minor: int | None = _f("minor", _INT64, default=None)
    access: str | None = _f("access", _STR, default=None)

    def _check(self, p: str) -> None:
        # Prose rules (config-linux.md "Allowed Device list"); runc rejects the same values.
        if self.type is not None and self.type not in ("a", "b", "c"):
            raise _Invalid(_join(p, "type"), f"{self.type!r} is not one of 'a', 'b', 'c'")
        if self.access is not None and not set(self.access) <= {"r", "w", "m"}:
            raise _Invalid(
                _join(p, "access"), f"{self.access!r} is not a combination of 'r', 'w', 'm'"
            )


@_model
class Memory(_Node):
    """memory controller limits, in bytes (-1 means unlimited)."""

    limit: int | None = _f("limit", _INT64, default=None)
    reservation: int | None = _f("reservation", _INT64, default=None)
    swap: int | None = _f("swap", _INT64, default=None)
    kernel: int | None = _f("kernel", _INT64, default=None)
    kernel_tcp: int | None = _f("kernelTCP", _INT64, default=None)
    swappiness: int | None = _f("swappiness", _UINT64, default=None)
    disable_oom_killer: bool | None = _f("disableOOMKiller", _BOOL, default=None)
    use_hierarchy: bool | None = _f("useHierarchy", _BOOL, default=None)
    check_before_update: bool | None = _f("checkBeforeUpdate", _BOOL, default=None)


@_model
class CPU(_Node):
    """cpu and cpuset controller settings."""

    shares: int | None = _f("shares", _UINT64, default=None)
    quota: int | None = _f("quota", _INT64, default=None)
    burst: int | None = _f("burst", _UINT64, default=None)
    period: int | None = _f("period", _UINT64, default=None)
    realtime_runtime: int | None = _f("realtimeRuntime", _INT64, default=None)
    realtime_period: int | None = _f("realtimePeriod", _UINT64, default=None)
    cpus: str | None = _f("cpus", _STR, default=None)
    mems: str | None = _f("mems", _STR, default=None)
    idle: int | None = _f("idle", _INT64, default=None)


@_model
class Pids(_Node):
    """pids controller: the maximum number of tasks."""

    limit: int = _f("limit", _INT64, required=True)


@_model
class WeightDevice(_Node):
    """Per-device block I/O weight."""

    major: int = _f("major", _INT64, required=True)
    minor: int = _f("minor", _INT64, required=True)
    weight: int | None = _f("weight", _UINT16, default=None)
    leaf_weight: int | None = _f("leafWeight", _UINT16, default=None)


@_model
class ThrottleDevice(_Node):
    """Per-device block I/O rate limit (bytes or operations per second)."""

    major: int = _f("major", _INT64, required=True)
    minor: int = _f("minor", _INT64, required=True)
    rate: int | None = _f("rate", _UINT64, default=None)


_THROTTLES = _list(_node_codec(ThrottleDevice))


@_model
class BlockIO(_Node):
    """blkio (v1) / io (v2) controller settings."""

    weight: int | None = _f("weight", _UINT16, default=None)
    leaf_weight: int | None = _f("leafWeight", _UINT16, default=None)
    weight_device: list[WeightDevice] = _f(
        "weightDevice", _list(_node_codec(WeightDevice)), factory=list
    )
    throttle_read_bps_device: list[ThrottleDevice] = _f(
        "throttleReadBpsDevice", _THROTTLES, factory=list
    )
    throttle_write_bps_device: list[ThrottleDevice] = _f(
        "throttleWriteBpsDevice", _THROTTLES, factory=list
    )
    throttle_read_iops_device: list[ThrottleDevice] = _f(
        "throttleReadIOPSDevice", _THROTTLES, factory=list
    )
    throttle_write_iops_device: list[ThrottleDevice] = _f(
        "throttleWriteIOPSDevice", _THROTTLES, factory=list
    )


@_model
class HugepageLimit(_Node):
    """hugetlb controller limit for one page size."""

    page_size: str = _f("pageSize", _pattern(r"^[1-9][0-9]*[KMG]B$"), required=True)
    limit: int = _f("limit", _UINT64, required=True)


@_model
class NetworkPriority(_Node):
    """net_prio priority of one interface."""

    name: str = _f("name", _STR, required=True)
    priority: int = _f("priority", _UINT32, required=True)


@_model
class Network(_Node):
    """net_cls / net_prio controller settings."""

    class_id: int | None = _f("classID", _UINT32, default=None)
    priorities: list[NetworkPriority] = _f(
        "priorities", _list(_node_codec(NetworkPriority)), factory=list
    )


@_model
class Rdma(_Node):
    """rdma controller limits for one device."""

    hca_handles: int | None = _f("hcaHandles", _UINT32, default=None)
    hca_objects: int | None = _f("hcaObjects", _UINT32, default=None)


@_model
class Resources(_Node):
    """cgroup limits; absent sub-objects leave the controller alone."""

    devices: list[DeviceCgroup] = _f("devices", _list(_node_codec(DeviceCgroup)), factory=list)
    memory: Memory | None = _f("memory", _node_codec(Memory), default=None)
    cpu: CPU | None = _f("cpu", _node_codec(CPU), default=None)
    pids: Pids | None = _f("pids", _node_codec(Pids), default=None)
    block_io: BlockIO | None = _f("blockIO", _node_codec(BlockIO), default=None)
    hugepage_limits: list[HugepageLimit] = _f(
        "hugepageLimits", _list(_node_codec(HugepageLimit)), factory=list
    )
    network: Network | None = _f("network", _node_codec(Network), default=None)
    rdma: dict[str, Rdma] = _f("rdma", _map(_node_codec(Rdma)), factory=dict)
    unified: dict[str, str] = _f("unified", _STRMAP, factory=dict)


_SECCOMP_ACTION = _enum(
    "seccomp action",
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
)  # fmt: skip
_SECCOMP_ARCH = _enum(
    "seccomp architecture",
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH", "SCMP_ARCH_SHEB", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
)  # fmt: skip
_SECCOMP_FLAG = _enum(
    "seccomp flag",
    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
)  # fmt: skip
_SECCOMP_OP = _enum(
    "seccomp operator",
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)  # fmt: skip


@_model
class SeccompArg(_Node):
    """A comparison on one syscall argument."""

    index: int = _f("index", _UINT32, required=True)
    value: int = _f("value", _UINT64, required=True)
    op: str = _f("op", _SECCOMP_OP, required=True)
    value_two: int | None = _f("valueTwo", _UINT64, default=None)

    _json_order: ClassVar[tuple[str, ...]] = ("index", "value", "valueTwo", "op")


@_model
class Syscall(_Node):
    """A seccomp rule: the action for a set of syscalls (optionally argument-matched)."""

    names: list[str] = _f("names", _list(_STR, min_items=1), required=True)
    action: str = _f("action", _SECCOMP_ACTION, required=True)
    errno_ret: int | None = _f("errnoRet", _UINT32, default=None)
    args: list[SeccompArg] = _f("args", _list(_node_codec(SeccompArg)), factory=list)


@_model
class Seccomp(_Node):
    """The seccomp filter installed just before exec."""

    default_action: str = _f("defaultAction", _SECCOMP_ACTION, required=True)
    default_errno_ret: int | None = _f("defaultErrnoRet", _UINT32, default=None)
    architectures: list[str] = _f("architectures", _list(_SECCOMP_ARCH), factory=list)
    flags: list[str] = _f("flags", _list(_SECCOMP_FLAG), factory=list)
    listener_path: str | None = _f("listenerPath", _STR, default=None)
    listener_metadata: str | None = _f("listenerMetadata", _STR, default=None)
    syscalls: list[Syscall] = _f("syscalls", _list(_node_codec(Syscall)), factory=list)


@_model
class IntelRdt(_Node):
    """Intel RDT (resctrl) class of service for the container."""

    clos_id: str | None = _f("closID", _STR, default=None)
    schemata: list[str] = _f("schemata", _STRLIST, factory=list)
    l3_cache_schema: str | None = _f("l3CacheSchema", _STR, default=None)
    mem_bw_schema: str | None = _f("memBwSchema", _pattern(r"^MB:[^\n]*$"), default=None)
    enable_monitoring: bool | None = _f("enableMonitoring", _BOOL, default=None)


@_model
class Personality(_Node):
    """personality(2) execution domain."""

    domain: str | None = _f("domain", _enum("personality domain", "LINUX", "LINUX32"), default=None)
    flags: list[str] = _f("flags", _STRLIST, factory=list)


_MPOL_MODE = _enum(
    "memory policy mode",
    "MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
    "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL",
)  # fmt: skip
_MPOL_FLAG = _enum(
    "memory policy flag", "MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"
)


@_model
class MemoryPolicy(_Node):
    """set_mempolicy(2) NUMA policy for the container process."""

    mode: str | None = _f("mode", _MPOL_MODE, default=None)
    nodes: str | None = _f("nodes", _STR, default=None)
    flags: list[str] = _f("flags", _list(_MPOL_FLAG), factory=list)


@_model
class Linux(_Node):
    """The Linux-specific part of the config."""

    uid_mappings: list[IDMapping] = _f("uidMappings", _IDMAPS, factory=list)
    gid_mappings: list[IDMapping] = _f("gidMappings", _IDMAPS, factory=list)
    sysctl: dict[str, str] = _f("sysctl", _STRMAP, factory=dict)
    resources: Resources | None = _f("resources", _node_codec(Resources), default=None)
    cgroups_path: str | None = _f("cgroupsPath", _STR, default=None)
    namespaces: list[Namespace] = _f("namespaces", _list(_node_codec(Namespace)), factory=list)
    devices: list[Device] = _f("devices", _list(_node_codec(Device)), factory=list)
    net_devices: dict[str, NetDevice] = _f("netDevices", _map(_node_codec(NetDevice)), factory=dict)
    seccomp: Seccomp | None = _f("seccomp", _node_codec(Seccomp), default=None)
    # The schema allows private/shared/slave/unbindable only; the recursive forms are accepted
    # too because runc does and containerd/CRI-O write them ("rslave", "rshared").
    rootfs_propagation: str | None = _f(
        "rootfsPropagation",
        _enum(
            "rootfs propagation",
            "private",
            "shared",
            "slave",
            "unbindable",
            "rprivate",
            "rshared",
            "rslave",
            "runbindable",
        ),  # fmt: skip
        default=None,
    )
    masked_paths: list[str] = _f("maskedPaths", _STRLIST, factory=list)
    readonly_paths: list[str] = _f("readonlyPaths", _STRLIST, factory=list)
    mount_label: str | None = _f("mountLabel", _STR, default=None)
    intel_rdt: IntelRdt | None = _f("intelRdt", _node_codec(IntelRdt), default=None)
    personality: Personality | None = _f("personality", _node_codec(Personality), default=None)
    time_offsets: dict[str, TimeOffset] = _f(
        "timeOffsets", _map(_node_codec(TimeOffset)), factory=dict
    )
    memory_policy: MemoryPolicy | None = _f("memoryPolicy", _node_codec(MemoryPolicy), default=None)

    def _check(self, p: str) -> None:
        seen: dict[str, int] = {}
        for i, ns in enumerate(self.namespaces):
            if ns.type in seen:
                raise _Invalid(
                    f"{_join(p, 'namespaces')}[{i}].type",
                    f"duplicate namespace type {ns.type!r} (already at index {seen[ns.type]})",
                )
            seen[ns.type] = i

    def namespace(self, ns_type: str) -> Namespace | None:
        """The entry for a namespace type, or None if the container shares the runtime's."""
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None


# ---- other platforms: validated, kept as dicts ------------------------------------------

_SHARING = _enum("sharing mode", "disable", "new", "inherit")
_SHARING_NO_DISABLE = _enum("sharing mode", "new", "inherit")

_FREEBSD = _shape(
    {
        "devices": _list(_shape({"path": _STR, "mode": _FILEMODE})),
        "jail": _shape(
            {
                "parent": _STR,
                "host": _SHARING_NO_DISABLE,
                "ip4": _SHARING,
                "ip4Addr": _STRLIST,
                "ip6": _SHARING,
                "ip6Addr": _STRLIST,
                "vnet": _SHARING_NO_DISABLE,
                "interface": _STR,
                "vnetInterfaces": _STRLIST,
                "sysvmsg": _SHARING,
                "sysvsem": _SHARING,
                "sysvshm": _SHARING,
                "enforceStatfs": _UINT8,
                "allow": _shape(
                    {
                        "setHostname": _BOOL,
                        "rawSockets": _BOOL,
                        "chflags": _BOOL,
                        "mount": _STRLIST,
                        "quotas": _BOOL,
                        "socketAf": _BOOL,
                        "mlock": _BOOL,
                        "reservedPorts": _BOOL,
                        "suser": _BOOL,
                    }
                ),
            }
        ),
    }
)

_WINDOWS = _shape(
    {
        "layerFolders": _list(_STR, min_items=1),
        "devices": _list(
            _shape({"id": _STR, "idType": _enum("device id type", "class")}, ("id", "idType"))
        ),
        "resources": _shape(
            {
                "memory": _shape({"limit": _UINT64}),
                "cpu": _shape(
                    {
                        "count": _UINT64,
                        "shares": _UINT16,
                        "maximum": _UINT16,
                        "affinity": _shape({"mask": _UINT64, "group": _UINT32}),
                    }
                ),
                "storage": _shape({"iops": _UINT64, "bps": _UINT64, "sandboxSize": _UINT64}),
            }
        ),
        "network": _shape(
            {
                "endpointList": _STRLIST,
                "allowUnqualifiedDNSQuery": _BOOL,
                "DNSSearchList": _STRLIST,
                "networkSharedContainerName": _STR,
                "networkNamespace": _STR,
            }
        ),
        "credentialSpec": _ANY_OBJECT,
        "servicing": _BOOL,
        "ignoreFlushesDuringBoot": _BOOL,
        "hyperv": _shape({"utilityVMPath": _STR}),
    },
    ("layerFolders",),
)

_SOLARIS = _shape(
    {
        "milestone": _STR,
        "limitpriv": _STR,
        "maxShmMemory": _STR,
        "cappedCPU": _shape({"ncpus": _STR}),
        "cappedMemory": _shape({"physical": _STR, "swap": _STR}),
        "anet": _list(
            _shape(
                {
                    k: _STR
                    for k in (
                        "linkname",
                        "lowerLink",
                        "allowedAddress",
                        "configureAllowedAddress",
                        "defrouter",
                        "macAddress",
                        "linkProtection",
                    )
                }
            )
        ),
    }
)

_VM = _shape(
    {
        "hypervisor": _shape({"path": _STR, "parameters": _STRLIST}, ("path",)),
        "kernel": _shape({"path": _STR, "parameters": _STRLIST, "initrd": _STR}, ("path",)),
        "image": _shape(
            {
                "path": _STR,
                "format": _enum("image format", "raw", "qcow2", "vdi", "vmdk", "vhd"),
            },
            ("path", "format"),
        ),
        "hwConfig": _shape(
            {
                "deviceTree": _STR,
                "vcpus": _UINT32,
                "memory": _UINT64,
                "dtdevs": _STRLIST,
                "iomems": _list(
                    _shape(
                        {"firstGFN": _UINT64, "firstMFN": _UINT64, "nrMFNs": _UINT64},
                        ("firstMFN", "nrMFNs"),
                    )
                ),
                "irqs": _list(_UINT32),
            }
        ),
    },
    ("kernel",),
)

_ZOS = _shape(
    {
        "namespaces": _list(
            _shape(
                {"type": _enum("z/OS namespace type", "mount", "pid", "uts", "ipc"), "path": _STR},
                ("type",),
            )
        )
    }
)


# ---- the document --------------------------------------------------------------------------


@_model
class Spec(_Node):
    """A whole config.json."""

    oci_version: str = _f("ociVersion", _STR, required=True)
    root: Root | None = _f("root", _node_codec(Root), default=None)
    process: Process | None = _f("process", _node_codec(Process), default=None)
    hostname: str | None = _f("hostname", _STR, default=None)
    domainname: str | None = _f("domainname", _STR, default=None)
    mounts: list[Mount] = _f("mounts", _list(_node_codec(Mount)), factory=list)
    hooks: Hooks | None = _f("hooks", _node_codec(Hooks), default=None)
    annotations: dict[str, str] = _f("annotations", _STRMAP, factory=dict)
    linux: Linux | None = _f("linux", _node_codec(Linux), default=None)
    solaris: dict[str, Any] | None = _f("solaris", _SOLARIS, default=None)
    windows: dict[str, Any] | None = _f("windows", _WINDOWS, default=None)
    vm: dict[str, Any] | None = _f("vm", _VM, default=None)
    zos: dict[str, Any] | None = _f("zos", _ZOS, default=None)
    freebsd: dict[str, Any] | None = _f("freebsd", _FREEBSD, default=None)

    # runc (Go struct order) writes process before root.
    _json_order: ClassVar[tuple[str, ...]] = (
        "ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks",
        "annotations", "linux", "solaris", "windows", "vm", "zos", "freebsd",
    )  # fmt: skip

    def _check(self, p: str) -> None:
        # config.md: root is REQUIRED everywhere except Windows (Hyper-V containers omit it).
        if self.root is None and self.windows is None:
            raise _Invalid(_join(p, "root"), "required field is missing")

    def to_json(self) -> str:
        """Serialise like ``runc spec``: tab indentation, Go's HTML-safe escaping, no newline."""
        import json  # only `containerkit spec` writes a config.json

        text = json.dumps(self.to_dict(), indent="\t", ensure_ascii=False)
        return (
            text.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def _parse_json(text: str | bytes | bytearray, source: str) -> Any:
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise _spec_error(source, "", f"not valid UTF-8 at byte {e.start}") from None
    try:
        return jsonfast.loads(text, finite=True)
    except RecursionError:
        raise _spec_error(source, "", "invalid JSON: nested too deeply") from None
    except ValueError as e:     # json's JSONDecodeError (where), or NaN/Infinity
        if hasattr(e, "lineno"):
            where = f" at line {e.lineno} column {e.colno}: {e.msg}"    # type: ignore[attr-defined]
        else:
            where = f": {e}"
        raise _spec_error(source, "", f"invalid JSON{where}") from None


def loads(text: str | bytes, source: str = "config.json") -> Spec:
    """Parse and validate a config.json document; ``source`` names it in error messages."""
    data = _parse_json(text, source)
    if type(data) is not dict:
        raise _spec_error(source, "", f"expected a JSON object at the top level, got {_show(data)}")
    return Spec.from_dict(data, source)


def load(path: str | PathLike[str]) -> Spec:
    """Read and validate a config.json file."""
    name = posix.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise _spec_error(name, "", e.strerror or str(e)) from None
    return loads(raw, name)


def loads_process(text: str | bytes, source: str = "process.json") -> Process:
    """Parse a lone process object, as given to ``exec --process``."""
    data = _parse_json(text, source)
    return Process.from_dict(data, source)


# --------------------------------------------------------------------------------------------
# Default spec (`containerkit spec`)
# --------------------------------------------------------------------------------------------


def _cgroup2_unified(mountinfo: str = "/proc/self/mountinfo") -> bool:
    """Whether /sys/fs/cgroup is a cgroup2 mount (runc's IsCgroup2UnifiedMode)."""
    try:
        fstype = None
        with open(mountinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                left, sep, right = line.partition(" - ")
                fields_ = left.split(" ")
                if sep and len(fields_) > 4 and fields_[4] == "/sys/fs/cgroup":
                    fstype = right.split(" ", 1)[0]  # the last mount there is the visible one
        if fstype is not None:
            return fstype == "cgroup2"
    except OSError:
        pass
    return pathnames.exists("/sys/fs/cgroup/cgroup.controllers")


def default_spec(rootless: bool = False, cgroupns: bool | None = None) -> Spec:
    """The example config ``runc spec`` writes, except that ``terminal`` is false.

    A cgroup namespace is added on a pure cgroup v2 host (like current runc) unless
    ``cgroupns`` forces it on or off. ``rootless`` applies runc's ``--rootless`` changes.
    """
    if cgroupns is None:
        cgroupns = _cgroup2_unified()
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    process = Process(
        terminal=False,
        user=User(uid=0, gid=0),
        args=["sh"],
        env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        cwd="/",
        capabilities=Capabilities(
            bounding=list(caps), effective=list(caps), permitted=list(caps), ambient=list(caps)
        ),
        rlimits=[Rlimit(type="RLIMIT_NOFILE", hard=1024, soft=1024)],
        no_new_privileges=True,
    )
    process._keep = frozenset({"terminal"})  # show "terminal": false so it is easy to flip
    mounts = [
        Mount("/proc", "proc", "proc"),
        Mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        Mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        Mount(
            "/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
        ),
        Mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        Mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
        Mount(
            "/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]
        ),
    ]
    ns_types = ["pid", "network", "ipc", "uts", "mount"] + (["cgroup"] if cgroupns else [])
    linux = Linux(
        resources=Resources(devices=[DeviceCgroup(allow=False, access="rwm")]),
        namespaces=[Namespace(t) for t in ns_types],
        masked_paths=[
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ],
        readonly_paths=["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    )
    spec = Spec(
        oci_version=OCI_VERSION,
        root=Root("rootfs", readonly=True),
        process=process,
        hostname="runc",
        mounts=mounts,
        linux=linux,
    )
    if rootless:
        _to_rootless(spec)
    return spec


def _to_rootless(spec: Spec) -> None:
    """runc's specconv.ToRootless: user namespace mapping the caller, no netns, no cgroups."""
    linux = spec.linux
    assert linux is not None
    linux.namespaces = [ns for ns in linux.namespaces if ns.type not in ("network", "user")]
    linux.namespaces.append(Namespace("user"))
    linux.uid_mappings = [IDMapping(container_id=0, host_id=posix.geteuid(), size=1)]
    linux.gid_mappings = [IDMapping(container_id=0, host_id=posix.getegid(), size=1)]
    mounts: list[Mount] = []
    for m in spec.mounts:
        if pathnames.normpath(m.destination) == "/sys":
            # sysfs cannot be mounted without owning the network namespace: bind the host's.
            mounts.append(
                Mount("/sys", "none", "/sys", ["rbind", "nosuid", "noexec", "nodev", "ro"])
            )
            continue
        m.options = [o for o in m.options if not o.startswith(("gid=", "uid="))]
        mounts.append(m)
    spec.mounts = mounts
    linux.resources = None
