"""Resolve and open paths inside a container rootfs as if it were `/`.

The rootfs belongs to whoever built the image and may hold hostile symlinks
(`/etc -> /host/etc`, `../../..`) or have them swapped in while we work, by
another container sharing a volume.  Everything here therefore returns file
descriptors: callers mount onto `/proc/self/fd/N` of a descriptor opened
inside the root, never onto a path string that the kernel would resolve again
(the CVE-2021-30465 / CVE-2024-45310 class).

openat2(RESOLVE_IN_ROOT) does the resolution in the kernel where it exists;
otherwise a walk one component at a time, reading each symlink ourselves and
resolving it against the root, gives the same answer.
"""

import errno
import os
import stat

from ..sys import mount as sysmount

_MAX_SYMLINKS = 40
_openat2_works: bool | None = None


def _have_openat2() -> bool:
    global _openat2_works
    if _openat2_works is None:
        try:
            os.close(sysmount.openat2(-100, "/", os.O_PATH, resolve=sysmount.RESOLVE_IN_ROOT))
            _openat2_works = True
        except (OSError, KeyError):
            _openat2_works = False
    return _openat2_works


def use_openat2(enabled: bool | None) -> None:
    """Force (False) the userspace walk or (None) probe again; for tests."""
    global _openat2_works
    _openat2_works = enabled


def components(path: str) -> list[str]:
    return [part for part in path.split("/") if part and part != "."]


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH, mode: int = 0,
                 follow: bool = True) -> int:
    """Open `path` with every symlink resolved inside the directory `root_fd`.

    With follow=False a final symlink is opened itself (O_PATH|O_NOFOLLOW)."""
    flags |= os.O_CLOEXEC
    if not follow:
        flags |= os.O_NOFOLLOW
    if _have_openat2():
        return sysmount.openat2(root_fd, path or ".", flags, mode,
                                sysmount.RESOLVE_IN_ROOT | sysmount.RESOLVE_NO_MAGICLINKS)
    return _walk(root_fd, path, flags, mode, follow)


def _walk(root_fd: int, path: str, flags: int, mode: int, follow: bool,
          mkdir_mode: int | None = None) -> int:
    """The userspace resolution: one O_NOFOLLOW step at a time from a held fd.

    With mkdir_mode, missing directories on the way are created (also where a
    dangling symlink points, inside the root); with O_CREAT in flags a missing
    final component is created as an empty file."""
    # `stack` holds an fd per directory below the root, so ".." needs no lookup
    # by name that a concurrent rename could redirect.
    stack: list[int] = []
    todo = components(path)
    links = 0
    try:
        while todo:
            name = todo.pop(0)
            here = stack[-1] if stack else root_fd
            if name == "..":
                if stack:
                    os.close(stack.pop())
                continue
            last = not todo
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=here)
            except FileNotFoundError:
                if last and flags & os.O_CREAT:
                    os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                     | os.O_CLOEXEC, mode, dir_fd=here))
                elif mkdir_mode is not None:
                    os.mkdir(name, mkdir_mode, dir_fd=here)
                else:
                    raise
                # Opened with O_NOFOLLOW: a symlink swapped in since we created
                # the entry makes this fail rather than lead elsewhere.
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=here)
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode) and (follow or not last):
                os.close(fd)
                links += 1
                if links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=here)
                if target.startswith("/"):
                    while stack:
                        os.close(stack.pop())
                todo[:0] = components(target)
                continue
            if last:
                os.close(fd)
                return os.open(name, (flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC))
                               | os.O_NOFOLLOW, mode, dir_fd=here)
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append(fd)
        return os.open(".", flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC), mode,
                       dir_fd=stack[-1] if stack else root_fd)
    finally:
        for fd in stack:
            os.close(fd)


def lstat_in_root(root_fd: int, path: str) -> os.stat_result:
    """stat the final component itself, a symlink staying a symlink."""
    fd = open_in_root(root_fd, path, os.O_PATH, follow=False)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def mkdir_all(root_fd: int, path: str, mode: int = 0o755) -> int:
    """Create `path` and its missing parents inside the root; an O_PATH fd of it.

    A dangling symlink on the way is followed and its target created, inside
    the root, as runc does."""
    return _walk(root_fd, path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0, True, mode)


def create_file(root_fd: int, path: str, mode: int = 0o644) -> int:
    """Open `path` inside the root (O_PATH), creating it as an empty file if missing."""
    return _walk(root_fd, path, os.O_PATH | os.O_CREAT | os.O_CLOEXEC, mode, True, 0o755)


def split_parent(root_fd: int, path: str, create: bool = True) -> tuple[int, str]:
    """An O_PATH fd of the parent directory of `path` inside the root, and the final name."""
    parts = components(path)
    if not parts:
        raise OSError(errno.EINVAL, "the root itself has no parent", path)
    parent = "/".join(parts[:-1])
    fd = mkdir_all(root_fd, parent) if create else open_in_root(root_fd, parent,
                                                                 os.O_PATH | os.O_DIRECTORY)
    return fd, parts[-1]
