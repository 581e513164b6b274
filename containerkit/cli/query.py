"""Read-only verbs: ``state`` and ``list``.

These are the hottest calls (podman and containerd poll ``state``): the container is
loaded without the native driver (no cffi) and its spec is never decoded.
"""

from __future__ import annotations

import posix
import sys

from .. import jsonfast as json
from .. import pathnames
from .main import Context

TYPE_CHECKING = False  # typing is not imported at run time: it costs ~2 ms of start-up
if TYPE_CHECKING:
    from typing import Any


def live_state(root: str, container_id: str) -> dict[str, Any]:
    """runc's state document (ociVersion, id, pid, status, bundle, rootfs, created, owner,
    annotations) with the live status: pid 0 once the container has stopped."""
    from .load import load

    container = load(root, container_id, native=False)
    # the state load just read (one read: status and document from the same version);
    # state.fast (containerkit/state.py) pre-renders this document for the native
    # front end from the same State.cli_document
    state = container._state
    return state.cli_document(container._live_status(state))


def add_state(parser: Any) -> None:
    parser.add_argument("id", metavar="container-id")


def do_state(args: Any, ctx: Context) -> int:
    sys.stdout.write(json.dumps(live_state(ctx.root, args.id), indent=2) + "\n")
    return 0


def add_list(parser: Any) -> None:
    parser.add_argument("-f", "--format", choices=("table", "json"), default="table",
                        help="table (default) or json")
    parser.add_argument("-q", "--quiet", action="store_true", help="display only container IDs")


def _owner(path: str) -> str:
    import pwd

    try:
        uid = posix.stat(path).st_uid
    except OSError:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def do_list(args: Any, ctx: Context) -> int:
    from ..errors import ContainerkitError, ContainerNotFound
    from ..state import list_ids
    from .main import error_message

    items = []
    for cid in list_ids(ctx.root):
        try:
            doc = live_state(ctx.root, cid)
        except ContainerNotFound:        # deleted while we listed
            continue
        except (ContainerkitError, OSError) as e:
            # like runc: one unreadable container does not hide the others
            ctx.log.error(f"load container {cid}: {error_message(e)}")
            continue
        doc["owner"] = _owner(pathnames.join(ctx.root, cid))
        items.append(doc)
    if args.quiet:
        sys.stdout.write("".join(f"{d['id']}\n" for d in items))
    elif args.format == "json":
        sys.stdout.write(json.dumps(items, separators=(",", ":")) + "\n")
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(d["id"], str(d["pid"]), d["status"], d["bundle"], d["created"], d["owner"])
                 for d in items]
        sys.stdout.write(tabulate(rows))
    return 0


def tabulate(rows: list[tuple[str, ...]]) -> str:
    """Go's tabwriter.NewWriter(out, 12, 1, 3, ' ', 0) as runc uses it: every column but
    the last is as wide as its widest cell + 3, at least 12."""
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    out = []
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        out.append("".join(cells) + row[-1] + "\n")
    return "".join(out)


def add_features(parser: Any) -> None:
    pass


def do_features(args: Any, ctx: Context) -> int:
    from ..features import features

    sys.stdout.write(json.dumps(features(), indent=4) + "\n")
    return 0
