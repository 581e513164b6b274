"""On-disk state of one container: ``<root>/<id>/state.json`` + ``config.json``, and
``state.fast`` beside state.json (see :func:`fast_companion`).

Writes are atomic (temp file + rename: a reader sees the old or the new file, never
half of one). There is no fsync: like runc's, this state describes live processes and
means nothing after a crash of the machine, and on this ext4 host the four fsyncs of a
lifecycle cost ~2 ms. A ``flock`` on the state directory serialises processes acting on
the same id. The JSON is the OCI state document
(ociVersion, id, status, pid, bundle, annotations) plus containerkit's own keys
(start time of the init, created time, rootfs, cgroup, graph) that a later process
needs to find and check what it acts on.
"""

from __future__ import annotations

import errno
import fcntl
import posix

from . import jsonfast as json
from . import pathnames
from .errors import ConfigError, ContainerExists, ContainerkitError, ContainerNotFound

TYPE_CHECKING = False  # typing is not imported at run time: the CLI would pay ~2 ms
if TYPE_CHECKING:
    from os import PathLike, stat_result
    from typing import Any

OCI_VERSION = "1.3.0"
DEFAULT_ROOT = "/run/containerkit"
WITH_PID = ("created", "running", "paused")     # the statuses a state shows the pid in
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-")


def check_id(container_id: str) -> str:
    """Refuse ids that could escape the state root or confuse clients (runc's rule)."""
    if not container_id or len(container_id) > 1024 or not container_id[0].isalnum() \
            or not _ID_CHARS.issuperset(container_id) or not container_id.isascii():
        raise ConfigError(f"invalid container id {container_id!r}: use letters, digits and _.+-")
    return container_id


class State:
    """One container's state file. A plain class: importing dataclasses costs the CLI ~6 ms."""

    def __init__(self, id: str, bundle: str, status: str = "creating", pid: int = 0,
                 start_time: int = 0, created: str = "", rootfs: str = "", cgroup: str = "",
                 graph: dict[str, Any] | None = None,
                 annotations: dict[str, str] | None = None,
                 hooks: list[str] | None = None,
                 keyring: str = "",
                 oci_version: str = OCI_VERSION) -> None:
        self.id = id
        self.bundle = bundle
        self.status = status
        self.pid = pid
        self.start_time = start_time    # field 22 of /proc/<pid>/stat: guards against pid reuse
        self.created = created
        self.rootfs = rootfs
        self.cgroup = cgroup            # absolute path of the container's cgroup v2 directory
        self.graph = graph or {}
        self.annotations = annotations or {}
        # the hook stages config.json has: start and delete from another process decode
        # the spec only when there is a hook to run (~5 ms of imports and decoding)
        self.hooks = hooks or []
        # the init's session keyring ("" with --no-new-keyring): exec'd processes join it
        self.keyring = keyring
        self.oci_version = oci_version

    def __eq__(self, other: object) -> bool:
        return isinstance(other, State) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"State({vars(self)!r})"

    def to_oci(self, status: str | None = None) -> dict[str, Any]:
        """The OCI state document (what `state` prints and hooks read on stdin)."""
        doc: dict[str, Any] = {
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": status or self.status,
            "bundle": self.bundle,
        }
        if (status or self.status) in WITH_PID:
            doc["pid"] = self.pid
        if self.annotations:
            doc["annotations"] = self.annotations
        return doc

    def cli_document(self, status: str) -> dict[str, Any]:
        """What ``containerkit state`` prints for this state with the live ``status``
        (runc's keys and order; pid 0 once the container has stopped)."""
        doc: dict[str, Any] = {
            "ociVersion": self.oci_version,
            "id": self.id,
            "pid": self.pid if status in WITH_PID else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": "",
        }
        if self.annotations:
            doc["annotations"] = self.annotations
        return doc


def keyring_name(container_id: str) -> str:
    """The session keyring of the container's processes (runc's name)."""
    return f"_ses.{container_id}"


class StateDir:
    """The directory that holds one container's state, and its lock."""

    def __init__(self, root: str | PathLike[str], container_id: str) -> None:
        self.root = posix.fspath(root)
        self.id = check_id(container_id)
        self.path = pathnames.join(self.root, container_id)
        self._lock_fd = -1
        # write state.fast beside state.json, for the CLI's native front end (the CLI
        # sets it; without one the front end hands the container to Python)
        self.companion = False

    # -- existence -------------------------------------------------------------------
    def make(self) -> None:
        """Create the directory exclusively: a second create of the same id fails here."""
        pathnames.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            posix.mkdir(self.path, 0o711)
        except FileExistsError:
            raise ContainerExists(f"container {self.id!r} already exists") from None

    def exists(self) -> bool:
        return pathnames.isfile(pathnames.join(self.path, "state.json"))

    def remove(self) -> None:
        try:
            for name in posix.listdir(self.path):
                posix.unlink(pathnames.join(self.path, name))
            posix.rmdir(self.path)
        except FileNotFoundError:
            pass

    # -- locking ---------------------------------------------------------------------
    def lock(self) -> None:
        try:
            fd = posix.open(self.path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(f"container {self.id!r} does not exist") from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd
        if posix.fstat(fd).st_nlink == 0:            # deleted while we waited
            self.unlock()
            raise ContainerNotFound(f"container {self.id!r} does not exist")

    def unlock(self) -> None:
        # cleared before the close releases the lock: another thread of this process
        # waiting on the same StateDir (exec from threads) sets its own fd once it holds it
        fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0:
            posix.close(fd)

    def __enter__(self) -> StateDir:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    # -- files -----------------------------------------------------------------------
    def write_file(self, name: str, data: bytes) -> None:
        write_atomic(pathnames.join(self.path, name), data)

    def save(self, state: State) -> None:
        written = write_atomic(pathnames.join(self.path, "state.json"),
                               json.dumps(state.__dict__, separators=(",", ":")).encode())
        # the companion of this state.json; when there cannot be one, a stale one is
        # ignored anyway (it names another state.json)
        fast = fast_companion(state, written) if self.companion else b""
        if fast:
            self.write_file("state.fast", fast)

    def load(self) -> State:
        path = pathnames.join(self.path, "state.json")
        try:
            with open(path, "rb") as f:
                raw = json.loads(f.read())
        except FileNotFoundError:
            raise ContainerNotFound(f"container {self.id!r} does not exist") from None
        except (OSError, ValueError) as e:
            raise ContainerkitError(f"{path}: unreadable state: {e}") from None
        return State(**raw)

    @property
    def fifo_path(self) -> str:
        return pathnames.join(self.path, "exec.fifo")

    @property
    def spec_path(self) -> str:
        return pathnames.join(self.path, "config.json")


def fast_companion(state: State, written: stat_result) -> bytes:
    """``state.fast``: what the native front end (_native/launcher.c) needs to answer
    ``state``, ``start`` and ``delete`` without Python. Plain "key value" lines (the
    state.json it goes with, by inode and mtime, so a stale companion is never used; the
    fields the live status needs; the hooks and graph driver recorded, whose work ``start``
    and ``delete`` leave to Python), then ``containerkit state``'s document pre-rendered by
    the very code Python prints it with, in three parts around the pid and the status."""
    if "\n" in state.cgroup:
        return b""      # (the lines would not parse): no companion, Python answers
    pid_mark, status_mark = "\x00P", "\x00S"
    doc = state.cli_document(status_mark)
    doc["pid"] = pid_mark
    text = json.dumps(doc, indent=2) + "\n"
    head, _, rest = text.partition(json.dumps(pid_mark))
    mid, _, tail = rest.partition(json.dumps(status_mark)[1:-1])
    if not head.endswith('\n  "pid": ') or mid != ',\n  "status": "':
        return b""      # (a marker inside ociVersion): no companion, Python answers
    parts = [p.encode() for p in (head, mid, tail)]
    return (f"ckfast 2\njson_ino {written.st_ino}\n"
            f"json_mtime_sec {written.st_mtime_ns // 10**9}\n"
            f"json_mtime_nsec {written.st_mtime_ns % 10**9}\n"
            f"pid {state.pid}\nstart_time {state.start_time}\nstatus {state.status}\n"
            f"cgroup {state.cgroup}\nhooks {','.join(state.hooks)}\n"
            f"graph {state.graph.get('type', '')}\n"
            f"head {len(parts[0])}\nmid {len(parts[1])}\n"
            f"tail {len(parts[2])}\n\n").encode() + b"".join(parts)


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> stat_result:
    """Temp file in the same directory, then rename: readers see old or new, never half.
    Returns the file's stat (the rename keeps its inode and mtime)."""
    tmp = f"{path}.{posix.getpid()}.tmp"
    fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[posix.write(fd, view):]
        written = posix.fstat(fd)
    finally:
        posix.close(fd)
    try:
        posix.rename(tmp, path)
    except OSError:
        try:
            posix.unlink(tmp)
        except OSError:
            pass
        raise
    return written


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in posix.listdir(root)
                      if pathnames.isfile(pathnames.join(root, n, "state.json")))
    except FileNotFoundError:
        return []
    except OSError as e:
        if e.errno == errno.EACCES:
            raise ContainerkitError(f"{root}: permission denied") from None
        raise
