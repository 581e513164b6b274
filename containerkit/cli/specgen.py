"""``spec``: write the default config.json into a bundle directory."""

from __future__ import annotations

import os

from ..errors import ConfigError
from .main import Context

TYPE_CHECKING = False  # typing is not imported at run time: it costs ~2 ms of start-up
if TYPE_CHECKING:
    from typing import Any


def add_spec(parser: Any) -> None:
    parser.add_argument("-b", "--bundle", default="",
                        help="path to the root of the bundle directory (default: current)")
    parser.add_argument("--rootless", action="store_true",
                        help="generate a configuration for a rootless container")


def do_spec(args: Any, ctx: Context) -> int:
    from .. import spec as oci

    bundle = args.bundle or "."
    if not os.path.isdir(bundle):
        raise ConfigError(f"bundle {os.path.abspath(bundle)}: no such directory")
    path = os.path.join(bundle, "config.json")
    data = oci.default_spec(rootless=args.rootless).to_json().encode()
    try:
        # O_EXCL: an existing config.json is never overwritten, even by a racing writer
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise ConfigError("File config.json exists. Remove it first.") from None
    try:
        os.write(fd, data)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    return 0
