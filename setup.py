"""Only here because cffi_modules needs setup(); the metadata lives in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["_native/build_native.py:ffibuilder"])
