"""Verbs that are parsed like runc's but not implemented yet: each exits 1 with one line.

Their flags are declared so that a client's command line is checked the same way it will
be once the verb exists (a wrong flag is a usage error, not "not supported").
"""

from __future__ import annotations

from ..errors import UnsupportedError
from .main import Context

TYPE_CHECKING = False  # typing is not imported at run time: it costs ~2 ms of start-up
if TYPE_CHECKING:
    from typing import Any


def _refuse(args: Any, ctx: Context) -> int:
    raise UnsupportedError(f"{args._verb}: not supported yet")


def _refuse_criu(args: Any, ctx: Context) -> int:
    raise UnsupportedError(f"{args._verb}: not supported yet: containerkit has no "
                           "checkpoint/restore (CRIU) support; the container is untouched")


def _id(parser: Any, verb: str) -> None:
    parser.add_argument("id", metavar="container-id")
    parser.set_defaults(_verb=verb)


_CRIU_BOOLS = ("--tcp-established", "--ext-unix-sk", "--shell-job", "--file-locks",
               "--auto-dedup", "--lazy-pages")


def add_checkpoint(parser: Any) -> None:
    for flag in ("--image-path", "--work-path", "--parent-path", "--page-server",
                 "--manage-cgroups-mode", "--status-fd"):
        parser.add_argument(flag, default=None)
    parser.add_argument("--empty-ns", action="append", default=[])
    for flag in _CRIU_BOOLS + ("--leave-running", "--pre-dump"):
        parser.add_argument(flag, action="store_true")
    _id(parser, "checkpoint")


def add_restore(parser: Any) -> None:
    for flag in ("--console-socket", "--image-path", "--work-path", "--manage-cgroups-mode",
                 "--pid-file", "--lsm-profile", "--lsm-mount-context"):
        parser.add_argument(flag, default=None)
    parser.add_argument("-b", "--bundle", default="")
    parser.add_argument("--empty-ns", action="append", default=[])
    for flag in _CRIU_BOOLS + ("--no-subreaper", "--no-pivot"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("-d", "--detach", action="store_true")
    _id(parser, "restore")


do_checkpoint = do_restore = _refuse_criu
