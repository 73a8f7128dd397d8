"""What cgroup v1 and v2 managers share: placement, creation, removal, errors."""

import errno
import os
import time

from ..errors import OciError
from .fs import CgroupFS

# How long destroy() waits for the kernel to let go of a cgroup whose last
# process just exited (rmdir fails with EBUSY until the exit is complete).
_RMDIR_RETRIES = 50
_RMDIR_PAUSE = 0.02
_CREATE_ATTEMPTS = 5


def resource_error(source: str, field: str, message: str) -> OciError:
    return OciError(f"{source}: {field}: {message}")


class CgroupManager:
    version = ""

    def __init__(self, container_id: str, paths: dict[str, tuple[str, str]], *,
                 root: str, fs: CgroupFS | None = None, created: list[str] | None = None):
        self.id = container_id
        # controller (or "" for a v2 tree) -> (hierarchy mount point, cgroup directory)
        self.paths = paths
        self.root = root
        self.fs = fs or CgroupFS()
        # Directories this runtime made, top-down: the only ones destroy() removes.
        self.created = list(created or [])

    # --- placement ------------------------------------------------------------
    def _dirs(self) -> list[tuple[str, str]]:
        seen, out = set(), []
        for mount, path in self.paths.values():
            if path not in seen:
                seen.add(path)
                out.append((mount, path))
        return out

    def create(self) -> None:
        made = []
        try:
            for mount, path in self._dirs():
                for attempt in range(_CREATE_ATTEMPTS):
                    try:
                        self._create_levels(mount, path, made)
                        break
                    except FileNotFoundError:
                        # Another container's delete removed a shared parent level
                        # between our check and our mkdir: walk down again.
                        if attempt == _CREATE_ATTEMPTS - 1:
                            raise OciError(f"cannot create cgroup {path}: its parent keeps "
                                           "disappearing") from None
        except BaseException:
            for path in reversed(made):
                self._rmdir(path, quiet=True)
            raise
        self.created += made

    def _create_levels(self, mount: str, path: str, made: list[str]) -> None:
        current = mount
        for part in os.path.relpath(path, mount).split(os.sep):
            if part == ".":
                continue
            parent, current = current, os.path.join(current, part)
            if self.fs.isdir(current):
                continue
            self._before_mkdir(parent)
            try:
                self.fs.mkdir(current)
            except FileExistsError:
                continue  # made by someone else meanwhile: not ours to remove
            except FileNotFoundError:
                raise
            except OSError as e:
                raise OciError(f"cannot create cgroup {current}: {e.strerror}") from None
            made.append(current)
            self._after_mkdir(current, parent)

    def _before_mkdir(self, parent: str) -> None:
        pass

    def _after_mkdir(self, path: str, parent: str) -> None:
        pass

    def apply(self, pid: int) -> None:
        for _, path in self._dirs():
            try:
                self.fs.write(os.path.join(path, "cgroup.procs"), str(pid))
            except OSError as e:
                raise OciError(f"cannot move process {pid} into cgroup {path}: {e.strerror}") from None

    def pids(self) -> list[int]:
        """Every process in the container's cgroup and its sub-cgroups."""
        path = self._pids_dir()
        found = []
        try:
            stack = [path]
            while stack:
                current = stack.pop()
                found += [int(p) for p in self.fs.read(os.path.join(current, "cgroup.procs")).split()]
                stack += [os.path.join(current, d) for d in self.fs.listdir(current)
                          if self.fs.isdir(os.path.join(current, d))]
        except FileNotFoundError:
            pass
        return sorted(set(found))

    def _pids_dir(self) -> str:
        raise NotImplementedError

    # --- removal --------------------------------------------------------------
    def destroy(self) -> None:
        leaves = {path for _, path in self._dirs()}
        for path in reversed(self.created):
            if path in leaves:
                # Sub-cgroups the container made for itself go with it.
                for sub in self._subdirs_bottom_up(path):
                    self._rmdir(sub)
                self._rmdir(path)
            else:
                self._rmdir(path, quiet=True)
        self.created = []

    def _subdirs_bottom_up(self, path: str) -> list[str]:
        out = []
        try:
            for name in self.fs.listdir(path):
                sub = os.path.join(path, name)
                if self.fs.isdir(sub):
                    out += self._subdirs_bottom_up(sub) + [sub]
        except FileNotFoundError:
            pass
        return out

    def _rmdir(self, path: str, quiet: bool = False) -> None:
        for attempt in range(_RMDIR_RETRIES):
            try:
                self.fs.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                # A parent level shared with other containers stays.
                if quiet and e.errno in (errno.EBUSY, errno.ENOTEMPTY):
                    return
                if e.errno != errno.EBUSY or attempt == _RMDIR_RETRIES - 1:
                    raise OciError(f"cannot remove cgroup {path}: {e.strerror} "
                                   "(are processes still in it?)") from None
                time.sleep(_RMDIR_PAUSE)

    # --- state ----------------------------------------------------------------
    def to_state(self) -> dict:
        return {"version": self.version, "id": self.id, "root": self.root,
                "paths": {k: list(v) for k, v in self.paths.items()}, "created": list(self.created)}

    # --- helpers for set() ----------------------------------------------------
    def _write(self, source: str, field: str, path: str, value, hint: str = "") -> None:
        try:
            self.fs.write(path, str(value))
        except FileNotFoundError:
            raise resource_error(source, field, f"{os.path.basename(path)} is missing in "
                                 f"{os.path.dirname(path)}: this host's cgroups do not support it") from None
        except OSError as e:
            raise resource_error(source, field, f"the kernel rejected {value} for {path}: "
                                 f"{e.strerror}{hint}") from None

    def _read(self, path: str, default: str | None = None) -> str:
        try:
            return self.fs.read(path).strip()
        except OSError:
            if default is None:
                raise
            return default

    def _read_int(self, path: str, default: int = 0) -> int:
        text = self._read(path, "")
        if text == "max":
            return 2**64 - 1
        try:
            return int(text)
        except ValueError:
            return default

    def _read_kv(self, path: str) -> dict[str, int]:
        out = {}
        for line in self._read(path, "").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                out[parts[0]] = int(parts[1])
        return out


def check_memory_before_update(source, memory: dict, usage: int) -> None:
    limit = memory.get("limit")
    if memory.get("checkBeforeUpdate") and limit is not None and 0 < limit < usage:
        raise resource_error(source, "linux.resources.memory.limit",
                             f"{limit} is below the container's current memory usage ({usage})")


class OomWatch:
    """Waits for the OOM killer in one cgroup; close() when done.

    v1 counts eventfd signals; v2 wakes on any change to memory.events and
    counts how much its "oom" line grew.
    """

    def __init__(self, fs, fd: int, cgroup_dir: str, events_path: str | None = None):
        self.fs, self.fd, self.cgroup_dir, self.events_path = fs, fd, cgroup_dir, events_path
        self.seen = self._oom_total() if events_path else 0

    def _oom_total(self) -> int:
        for line in self.fs.read(self.events_path).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom":
                return int(value)
        return 0

    def wait(self, timeout: float) -> int:
        """How many OOM events happened, waiting up to timeout seconds for one."""
        woke = self.fs.wait(self.fd, timeout, self.events_path is not None)
        # Removing the cgroup also signals the eventfd: that is no OOM.
        if not woke or not self.fs.isdir(self.cgroup_dir):
            return 0
        if self.events_path is None:
            return woke
        try:
            total = self._oom_total()
        except FileNotFoundError:
            return 0
        fired, self.seen = max(total - self.seen, 0), total
        return fired

    def close(self) -> None:
        os.close(self.fd)


def signal_all(manager, sig: int) -> None:
    """Signal every process in the cgroup, frozen so none can fork away meanwhile."""
    try:
        manager.freeze()
        frozen = True
    except (OciError, OSError):
        # No freezer: still reach what we can.
        frozen = False
    try:
        for pid in manager.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    finally:
        if frozen:
            manager.thaw()
