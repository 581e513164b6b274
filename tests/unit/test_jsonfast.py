"""containerkit.jsonfast gives json's results (it drives the same C codec without
importing json, re and enum: the CLI's hot verbs use it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from containerkit import jsonfast

DOCS = [
    {"ociVersion": "1.3.0", "id": "x", "pid": 123, "status": "created",
     "bundle": "/tmp/\u00e9\u2603", "annotations": {"a": "b\n\"q\"\t\\", "e": "\U0001f600"}},
    [1, 2.5, -0.0, 1e300, None, True, False, {}, [], "", {"n": {"m": [{"o": []}]}}],
    {}, [], "s", 0, -7, 3.25, None, True,
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
]


@pytest.mark.parametrize("doc", DOCS)
@pytest.mark.parametrize("kw", [{}, {"indent": 2}, {"indent": 4},
                                {"separators": (",", ":")}, {"ensure_ascii": False}])
def test_dumps_as_json(doc: object, kw: dict) -> None:
    assert jsonfast.dumps(doc, **kw) == json.dumps(doc, **kw)


@pytest.mark.parametrize("doc", DOCS)
def test_loads_as_json(doc: object) -> None:
    text = json.dumps(doc, indent=2)
    assert jsonfast.loads(text) == json.loads(text)
    assert jsonfast.loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize("bad", ["", "   ", "{", "{not json", "[1,", "[1] x", '"\\x"',
                                 '{"a" 1}', "nul", b"\xff"])
def test_malformed_raises_json_error(bad: str | bytes) -> None:
    with pytest.raises(ValueError) as got:
        jsonfast.loads(bad)
    if isinstance(bad, str):
        with pytest.raises(ValueError) as want:
            json.loads(bad)
        assert str(got.value) == str(want.value)


def test_unserializable_and_nan_refused() -> None:
    with pytest.raises(TypeError):
        jsonfast.dumps({"x": object()})
    with pytest.raises(ValueError):
        jsonfast.dumps([float("nan")])


def test_imports_neither_json_nor_re() -> None:
    code = ("import sys; from containerkit import jsonfast; "
            "jsonfast.dumps(jsonfast.loads('{\"a\": [1]}'), indent=2); "
            "print(sorted(m for m in ('json', 're', 'enum') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": ":".join(p for p in sys.path if p)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
