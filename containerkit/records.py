"""The part of ``dataclasses`` the spec model uses (field, fields, replace, MISSING),
without importing it: ``dataclasses`` pulls in ``inspect`` (ast, dis, tokenize), ~6 ms of
every CLI call that reads a config.json. Classes declare fields with annotations as usual;
``collect`` records them in definition order, bases first, as dataclasses does.
"""

from __future__ import annotations

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
