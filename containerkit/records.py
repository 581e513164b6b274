"""The part of ``dataclasses`` the spec model uses (field, fields, replace, MISSING),
without importing it: ``dataclasses`` pulls in ``inspect`` (ast, dis, tokenize), ~6 ms of
every CLI call that reads a config.json. Classes declare fields with annotations as usual;
``collect`` records them in definition order, bases first, as dataclasses does.

Also ``NamedTuple``: ``typing.NamedTuple``'s class syntax without ``typing`` and
``collections`` (~4 ms of every ``create``/``run``). Modules import it as
``if TYPE_CHECKING: from typing import NamedTuple`` / ``else: from ..records import
NamedTuple`` so that type checkers still see the real thing.
"""

from __future__ import annotations

from _collections import _tuplegetter

TYPE_CHECKING = False  # typing is not imported at run time: the CLI would pay ~2 ms
if TYPE_CHECKING:
    from typing import Any


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    __slots__ = ("name", "default", "default_factory", "init", "repr", "compare", "kw_only",
                 "metadata")

    def __init__(self, default: Any, default_factory: Any, init: bool, repr: bool,
                 compare: bool, kw_only: bool, metadata: dict[str, Any] | None) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.compare = compare
        self.kw_only = kw_only
        self.metadata: dict[str, Any] = metadata or {}


def field(*, default: Any = MISSING, default_factory: Any = MISSING, init: bool = True,
          repr: bool = True, compare: bool = True, kw_only: bool = False,
          metadata: dict[str, Any] | None = None) -> Any:
    return Field(default, default_factory, init, repr, compare, kw_only, metadata)


def collect(cls: type) -> type:
    """Record ``cls``'s annotated fields (ClassVar excluded) as ``__record_fields__``."""
    merged: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in base.__dict__.get("__record_fields__", ()):
            merged[f.name] = f
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, MISSING)
        f = value if isinstance(value, Field) else Field(value, MISSING, True, True, True,
                                                          False, None)
        f.name = name
        if isinstance(value, Field):
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        merged.pop(name, None)
        merged[name] = f
    cls.__record_fields__ = tuple(merged.values())  # type: ignore[attr-defined]
    return cls


def fields(obj: Any) -> tuple[Field, ...]:
    return obj.__record_fields__  # type: ignore[no-any-return]


def replace(obj: Any, **changes: Any) -> Any:
    """A copy of ``obj`` with ``changes`` (shallow, like dataclasses.replace)."""
    kwargs = {f.name: getattr(obj, f.name) for f in fields(obj) if f.init}
    kwargs.update(changes)
    return type(obj)(**kwargs)


class _NamedTupleMeta(type):
    """Makes ``class X(NamedTuple): a: int; b: str = ""`` a tuple subclass with the fields
    as read-only attributes, like ``typing.NamedTuple`` (which builds it with
    ``collections.namedtuple``)."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if ns.get("_root"):
            return super().__new__(mcls, name, bases, ns)
        names = tuple(ns.get("__annotations__", {}))
        defaults: dict[str, Any] = {}
        for i, field_name in enumerate(names):
            if field_name.startswith("_"):
                raise TypeError(f"{name}: field names cannot start with an underscore: "
                                f"{field_name!r}")
            if field_name in ns:
                defaults[field_name] = ns[field_name]
            elif defaults:
                raise TypeError(f"{name}: non-default field {field_name!r} cannot follow "
                                f"default field(s) {', '.join(defaults)}")
            ns[field_name] = _tuplegetter(i, f"Alias for field number {i}")
        ns["__slots__"] = ()
        ns["_fields"] = names
        ns["_field_defaults"] = defaults
        ns["__match_args__"] = names
        return super().__new__(mcls, name, bases, ns)


class NamedTuple(tuple, metaclass=_NamedTupleMeta):
    """Base of the light named tuples (see the module docstring)."""

    __slots__ = ()
    _root = True
    _fields: tuple[str, ...] = ()
    _field_defaults: dict[str, Any] = {}  # noqa: RUF012 - replaced per subclass

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        fields = cls._fields
        if not kwargs and len(args) == len(fields):
            return tuple.__new__(cls, args)
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__}() takes {len(fields)} positional arguments "
                            f"but {len(args)} were given")
        values = list(args)
        defaults = cls._field_defaults
        for name in fields[len(args):]:
            if name in kwargs:
                values.append(kwargs.pop(name))
            elif name in defaults:
                values.append(defaults[name])
            else:
                raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
        if kwargs:
            name = next(iter(kwargs))
            if name in fields:
                raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}")
        return tuple.__new__(cls, values)

    def _replace(self, **changes: Any) -> Any:
        values = [changes.pop(name, value) for name, value in zip(self._fields, self,
                                                                  strict=True)]
        if changes:
            raise ValueError(f"Got unexpected field names: {list(changes)!r}")
        return tuple.__new__(type(self), values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self,
                                                                     strict=True))
        return f"{type(self).__name__}({inner})"

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)
