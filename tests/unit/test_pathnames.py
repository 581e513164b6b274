"""containerkit.pathnames against posixpath, whose behaviour it must keep for str paths
(the hot modules use it instead of os.path: see its docstring)."""

from __future__ import annotations

import os
import posixpath
import random
from pathlib import Path

import pytest

from containerkit import pathnames

SAMPLES = ["", "/", "//", "///", "a", "/a", "a/", "/a/", "a//b", "/a/./b/../c", "../a",
           "/../a", "a/../..", "./", ".", "..", "/a/b/c/../../..", "//a/b", "///a//b/",
           "a/b/../../../c", "/./.", "x/.//y/", "~/a"]


def _random_paths(n: int) -> list[str]:
    rng = random.Random(5)
    parts = ["", ".", "..", "a", "bb", "c.d"]
    return [("/" * rng.randrange(4)) + "/".join(rng.choice(parts)
                                                for _ in range(rng.randrange(6)))
            for _ in range(n)]


@pytest.mark.parametrize("name", ["normpath", "dirname", "basename"])
def test_one_path_functions_match_posixpath(name: str) -> None:
    ours, theirs = getattr(pathnames, name), getattr(posixpath, name)
    for path in SAMPLES + _random_paths(500):
        assert ours(path) == theirs(path), (name, path)


def test_join_matches_posixpath() -> None:
    rng = random.Random(7)
    for _ in range(500):
        parts = rng.sample(SAMPLES, rng.randrange(1, 5))
        assert pathnames.join(*parts) == posixpath.join(*parts), parts


def test_abspath_matches_posixpath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for path in SAMPLES[1:]:
        assert pathnames.abspath(path) == posixpath.abspath(path), path


def test_file_type_tests_match_os_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to("dir")
    (tmp_path / "dangling").symlink_to("missing")
    for name in ("file", "dir", "link", "dangling", "missing", "file/below"):
        path = str(tmp_path / name)
        for fn in ("exists", "isdir", "isfile", "islink"):
            assert getattr(pathnames, fn)(path) == getattr(os.path, fn)(path), (fn, name)
    assert pathnames.exists("bad\0path") is False


def test_makedirs(tmp_path: Path) -> None:
    target = str(tmp_path / "a" / "b" / "c")
    pathnames.makedirs(target, 0o700)
    assert os.stat(target).st_mode & 0o777 == 0o700
    pathnames.makedirs(target, exist_ok=True)
    with pytest.raises(FileExistsError):
        pathnames.makedirs(target)
    (tmp_path / "f").write_text("")
    with pytest.raises(FileExistsError):     # a file in the way: even with exist_ok
        pathnames.makedirs(str(tmp_path / "f"), exist_ok=True)


def test_fs_encoding_round_trip() -> None:
    raw = b"caf\xc3\xa9-\xff"
    assert pathnames.fsdecode(raw) == os.fsdecode(raw)
    assert pathnames.fsencode(os.fsdecode(raw)) == raw == os.fsencode(os.fsdecode(raw))
