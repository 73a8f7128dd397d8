"""The state store: one directory per container under --root.

    <root>/<id>/state.json   what `state` reports, plus what later commands need
    <root>/<id>/exec.fifo    exists while init waits for `start` (runc's design)
    <root>/<id>/lock         locked by every command that acts on the container

A directory without state.json belongs to a container still being created.
Files are replaced by rename, so a reader never sees half a document.
"""

import fcntl
import json
import os
import re

from . import OCI_VERSION
from .errors import OciError

DEFAULT_ROOT = "/run/ocirun"
# What init writes into exec.fifo once `start` released it and the
# startContainer hooks passed; an error message may follow.
START_OK = b"0"
_VALID_ID = re.compile(r"^[\w+\-.]+$", re.ASCII)


def validate_id(container_id: str) -> None:
    if not container_id or container_id in (".", "..") or not _VALID_ID.match(container_id):
        raise OciError(f"invalid container id {container_id!r}: use letters, digits and _ + - . "
                       "(and not . or ..)")


class ContainerState:
    """What state.json holds: the spec's state, runc's extras, and what later commands need.

    A plain class rather than a dataclass: `ocirun state` is the command
    engines call most, and the dataclasses module costs it start-up time.
    """

    FIELDS = {
        "id": "", "bundle": "", "rootfs": "",
        "pid": 0,
        # Start time of init in clock ticks since boot (/proc/PID/stat field 22):
        # a pid alone could have been reused by an unrelated process.
        "pid_start": 0,
        "created": "", "owner": "",
        "annotations": dict,
        # What cgroups.manager_from_state() needs to find the container's cgroups again.
        "cgroup": dict,
        # Host paths of the namespaces init was given, for exec and for hooks.
        "namespace_paths": dict,
        # Set once `start` has released init; survives init's death, unlike the fifo.
        "started": False,
        # The whole config.json, for update, exec and the poststop hooks.
        "config": dict,
    }

    def __init__(self, **values):
        for name, default in self.FIELDS.items():
            value = values.get(name, default)
            setattr(self, name, value() if value is dict else value)

    @classmethod
    def from_json(cls, data: dict) -> "ContainerState":
        return cls(**{k: v for k, v in data.items() if k in cls.FIELDS})

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}

    def spec_state(self, status: str) -> dict:
        """The spec's state document (runtime.md "State"): what hooks get on
        stdin, and the core of what `ocirun state` prints."""
        return {"ociVersion": OCI_VERSION, "id": self.id, "pid": self.pid, "status": status,
                "bundle": self.bundle, "annotations": self.annotations}


def process_start_time(pid: int) -> int | None:
    """Start time of pid in clock ticks, or None when no such process exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def is_alive(state: ContainerState) -> bool:
    return state.pid > 0 and process_start_time(state.pid) == state.pid_start


class _Lock:
    """Written out rather than made with contextlib.contextmanager: every command
    takes this lock, and nothing else on their paths imports contextlib."""

    __slots__ = ("container_id", "fd", "path")

    def __init__(self, container_id: str, path: str):
        self.container_id = container_id
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise OciError(f"container {self.container_id} does not exist") from None
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc_info) -> None:
        os.close(self.fd)


class Store:
    def __init__(self, root: str = DEFAULT_ROOT):
        self.root = os.path.abspath(root)

    def dir(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def fifo_path(self, container_id: str) -> str:
        return os.path.join(self.dir(container_id), "exec.fifo")

    def exists(self, container_id: str) -> bool:
        return os.path.isdir(self.dir(container_id))

    def reserve(self, container_id: str) -> None:
        """Claim an id; mkdir is atomic, so of concurrent creates exactly one wins."""
        validate_id(container_id)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(self.dir(container_id), 0o711)
        except FileExistsError:
            raise OciError(f"container {container_id} already exists") from None

    def lock(self, container_id: str) -> "_Lock":
        """`with store.lock(id):` serialises commands on one container for the block.

        A POSIX record lock rather than flock: children forked meanwhile (the
        container's init) do not inherit it, so it ends with this process.
        """
        validate_id(container_id)
        return _Lock(container_id, os.path.join(self.dir(container_id), "lock"))

    def load(self, container_id: str) -> ContainerState:
        validate_id(container_id)
        try:
            with open(os.path.join(self.dir(container_id), "state.json")) as f:
                return ContainerState.from_json(json.load(f))
        except FileNotFoundError:
            if os.path.isdir(self.dir(container_id)):
                raise OciError(f"container {container_id} is still being created") from None
            raise OciError(f"container {container_id} does not exist") from None
        except (ValueError, TypeError) as e:
            raise OciError(f"state of container {container_id} is corrupt ({e}); "
                           f"remove {self.dir(container_id)}") from None

    def save(self, state: ContainerState) -> None:
        path = os.path.join(self.dir(state.id), "state.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state.to_json(), f)
        os.rename(tmp, path)

    def remove(self, container_id: str) -> None:
        """Forget a container: its directory only ever holds plain files."""
        path = self.dir(container_id)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(path, name))
            except FileNotFoundError:
                pass
        os.rmdir(path)

    def ids(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [n for n in names if os.path.isdir(os.path.join(self.root, n))]

    def status(self, state: ContainerState) -> str:
        """The spec's status, derived from the live system rather than remembered."""
        if not is_alive(state):
            return "stopped"
        if not state.started and os.path.exists(self.fifo_path(state.id)):
            return "created"
        if state.cgroup:
            from .cgroups import manager_from_state
            if manager_from_state(state.cgroup).is_frozen():
                return "paused"
        return "running"


