"""``json.loads``/``json.dumps`` for the CLI's hot verbs, on CPython's own C codec.

Why: ``import json`` imports ``re`` (and with it ``enum``, ``functools``, ``collections``):
~6 ms of CPU on these machines, more than half of what ``containerkit state`` costs
beyond the interpreter itself, paid on every ``state``/``kill``/``start``/``delete``
that podman and the containerd shim make. The scanner and the encoder that ``json`` uses
are the C ones in ``_json`` anyway; this module calls them directly, with the settings
``json`` passes them by default, so the results are the same. Anything unusual (a float
that is not finite, a type the encoder does not know) is an error here too, and an
error in the input raises ``ValueError`` (json's ``JSONDecodeError`` is one).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


class _Context:
    """What ``_json.make_scanner`` reads from json's JSONDecoder (default settings)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"),
                "-Infinity": float("-inf")}[name]


class _Finite(_Context):
    """NaN, Infinity and -Infinity are errors (they are not JSON)."""

    @staticmethod
    def parse_constant(name: str) -> float:
        raise ValueError(f"{name} is not a JSON value")


_scan = _json.make_scanner(_Context())
_scan_finite = _json.make_scanner(_Finite())


def loads(data: str | bytes, *, finite: bool = False) -> Any:
    """One JSON document (bytes are UTF-8); ValueError when it is not valid JSON, or
    with ``finite`` when it has NaN or an infinity."""
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    start = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = (_scan_finite if finite else _scan)(text, start)
    except (StopIteration, SystemError):
        # malformed: json itself says what is wrong (the C scanner can raise its
        # JSONDecodeError only once json.decoder is loaded)
        return _json_loads(text)
    if text[end:].strip(_WS):
        return _json_loads(text)                # "Extra data"
    return obj


def _json_loads(text: str) -> Any:
    import json

    return json.loads(text)


def _default(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _floatstr(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return float.__repr__(value)


def dumps(obj: object, *, indent: int | None = None,
          separators: tuple[str, str] | None = None, ensure_ascii: bool = True) -> str:
    """json.dumps with the same output for dicts, lists, strings, numbers, booleans and
    None (``indent`` as json's: newlines and that many spaces per level)."""
    encode = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    if separators is not None:
        item_sep, key_sep = separators
    else:
        item_sep, key_sep = ("," if indent is not None else ", "), ": "
    if indent is None:
        encoder = _json.make_encoder({}, _default, encode, None, key_sep, item_sep, False,
                                     False, False)
        return "".join(encoder(obj, 0))
    return _pretty(obj, encode, " " * indent, 0, item_sep, key_sep)


def _pretty(obj: object, encode: Any, pad: str, level: int, item_sep: str,
            key_sep: str) -> str:
    if isinstance(obj, dict) and obj:
        inner = "\n" + pad * (level + 1)
        items = [f"{encode(_key(k))}{key_sep}"
                 f"{_pretty(v, encode, pad, level + 1, item_sep, key_sep)}"
                 for k, v in obj.items()]
        return "{" + inner + (item_sep + inner).join(items) + "\n" + pad * level + "}"
    if isinstance(obj, list | tuple) and obj:
        inner = "\n" + pad * (level + 1)
        items = [_pretty(v, encode, pad, level + 1, item_sep, key_sep) for v in obj]
        return "[" + inner + (item_sep + inner).join(items) + "\n" + pad * level + "]"
    if isinstance(obj, dict):
        return "{}"
    if isinstance(obj, list | tuple):
        return "[]"
    return _scalar(obj, encode)


def _literal(obj: object) -> str | None:
    """null, true, false or a number as JSON; None for anything else (bool before int)."""
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, int):
        return int.__repr__(obj)
    if isinstance(obj, float):
        return _floatstr(obj)
    return None


def _key(key: object) -> str:
    if isinstance(key, str):
        return key
    text = _literal(key)
    if text is None:
        raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
    return text


def _scalar(obj: object, encode: Any) -> str:
    if isinstance(obj, str):
        return encode(obj)
    text = _literal(obj)
    return text if text is not None else _scalar(_default(obj), encode)
