"""Device nodes in the container's /dev: the default set, `linux.devices`, and the links.

Without a user namespace the nodes are made with mknod; inside one the
kernel refuses mknod of devices, so the host's node is bind-mounted onto an
empty file instead.
"""

import os
import stat

from ..errors import ConfigError, OciError
from ..sys import mount as m
from ..sys.mount import why
from . import safepath

DEFAULT_DEVICES = [
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0},
]

DEV_LINKS = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
]

_TYPE_BITS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def validate(spec: dict) -> list[dict]:
    """Check linux.devices; the list to create after the defaults."""
    devices = (spec.get("linux") or {}).get("devices") or []
    if not isinstance(devices, list):
        raise ConfigError("linux.devices", "must be a list")
    for i, device in enumerate(devices):
        where = f"linux.devices[{i}]"
        if not isinstance(device, dict):
            raise ConfigError(where, "must be an object")
        path = device.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"{where}.path", "must be an absolute path")
        if device.get("type") not in _TYPE_BITS:
            raise ConfigError(f"{where}.type", f"{device.get('type')!r} is not one of c, b, u, p")
        if device["type"] != "p":
            for key in ("major", "minor"):
                if not isinstance(device.get(key), int) or device[key] < 0:
                    raise ConfigError(f"{where}.{key}", "is required for a c, b or u device")
    return devices


def create(sys, root_fd: int, device: dict, bind: bool) -> None:
    """Make one device inside the root (its path is container-absolute)."""
    parent, name = safepath.split_parent(root_fd, device["path"])
    try:
        if device["type"] != "p" and bind:
            _bind_host_node(sys, root_fd, device)
        else:
            _mknod(sys, parent, name, device)
    except OSError as e:
        raise OciError(f"cannot create device {device['path']}: {why(e)}") from None
    finally:
        os.close(parent)


def _mknod(sys, parent: int, name: str, device: dict) -> None:
    kind = _TYPE_BITS[device["type"]]
    rdev = os.makedev(device.get("major", 0), device.get("minor", 0)) if kind != stat.S_IFIFO else 0
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_IFMT(st.st_mode) == kind and st.st_rdev == rdev:
            return
        # Whatever the image left there (a file, a symlink) must not stand in for it.
        os.unlink(name, dir_fd=parent)
    mode = device.get("fileMode")
    mode = 0o666 if mode is None else mode
    old_umask = os.umask(0)
    try:
        sys.mknodat(parent, name, kind | (mode & 0o7777), rdev)
    finally:
        os.umask(old_umask)
    sys.chownat(parent, name, device.get("uid", 0) or 0, device.get("gid", 0) or 0)


def _bind_host_node(sys, root_fd: int, device: dict) -> None:
    fd = safepath.create_file(root_fd, device["path"], 0)
    try:
        sys.mount(device["path"], m.fd_path(fd), None, m.MS_BIND)
    finally:
        os.close(fd)


def create_links(root_fd: int) -> None:
    """/dev/fd, stdin, stdout, stderr, /dev/ptmx -> pts/ptmx, and /dev/core where /proc/kcore is."""
    links = list(DEV_LINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("core", "/proc/kcore"))
    dev = safepath.mkdir_all(root_fd, "/dev")
    try:
        for name, target in links:
            try:
                os.symlink(target, name, dir_fd=dev)
            except FileExistsError:
                pass
        try:
            os.unlink("ptmx", dir_fd=dev)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev)
    finally:
        os.close(dev)


def is_null_device(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
