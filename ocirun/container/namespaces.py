"""Linux namespaces: which to create, which to join, and in what order.

The order is the kernel's, not the config's: a namespace joined by path is
joined first (the user namespace before all others, since it decides what the
rest may do); then a new user namespace is created and its id maps written by
the parent, which is still privileged outside; then the remaining new
namespaces are unshared. A new pid or time namespace only applies to children,
which is why create forks once more after this.
"""

import fcntl
import os
import socket
import struct

from ..errors import ConfigError, OciError
from ..sys import ns as sysns
from ..sys.libc import check, libc

NS_GET_NSTYPE = 0xB703  # ioctl on a namespace fd: which CLONE_NEW* it is

# Joining order for namespaces given by path: user first, mount last, because
# setns into a mount namespace changes which /proc paths we can still open.
JOIN_ORDER = ["user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount"]


class NamespacePlan:
    __slots__ = ("join", "new")

    def __init__(self, new: list[str] | None = None, join: list[tuple[str, str]] | None = None):
        self.new = [] if new is None else new
        self.join = [] if join is None else join  # (type, path)

    def has(self, ns_type: str) -> bool:
        return ns_type in self.new or any(t == ns_type for t, _ in self.join)

    @property
    def new_user(self) -> bool:
        return "user" in self.new

    def unshare_flags(self) -> int:
        """Flags for the namespaces to create, except user (created on its own first)."""
        flags = 0
        for ns_type in self.new:
            if ns_type != "user":
                flags |= sysns.NAMESPACES[ns_type][0]
        return flags


def plan_namespaces(linux: dict) -> NamespacePlan:
    """Check linux.namespaces and split it into namespaces to create and to join."""
    plan = NamespacePlan()
    seen = set()
    for index, entry in enumerate(linux.get("namespaces") or []):
        where = f"linux.namespaces[{index}]"
        ns_type = entry.get("type")
        if ns_type not in sysns.NAMESPACES:
            raise ConfigError(f"{where}.type", f"unknown namespace type {ns_type!r}; use one of "
                              + ", ".join(sysns.NAMESPACES))
        if ns_type in seen:
            raise ConfigError(f"{where}.type", f"namespace {ns_type!r} is listed twice")
        seen.add(ns_type)
        path = entry.get("path")
        if path:
            check_namespace_path(ns_type, path, where)
            plan.join.append((ns_type, path))
        else:
            plan.new.append(ns_type)
    plan.join.sort(key=lambda item: JOIN_ORDER.index(item[0]))
    return plan


def check_namespace_path(ns_type: str, path: str, where: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise ConfigError(f"{where}.path", f"cannot open {path}: {e.strerror}") from None
    try:
        actual = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        raise ConfigError(f"{where}.path", f"{path} is not a namespace file") from None
    finally:
        os.close(fd)
    expected = sysns.NAMESPACES[ns_type][0]
    if actual != expected:
        actual_name = next((n for n, (flag, _) in sysns.NAMESPACES.items() if flag == actual), hex(actual))
        raise ConfigError(f"{where}.path", f"{path} is a namespace of type {actual_name}, not {ns_type}")


def join_namespaces(namespaces: list[tuple[str, str]]) -> None:
    """setns into each (type, path), in the order given (see JOIN_ORDER).

    Every path is opened first: once we are in another mount namespace, the
    /proc/PID/ns paths of the host may no longer be reachable.
    """
    opened = []
    try:
        for ns_type, path in namespaces:
            opened.append((ns_type, path, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        for ns_type, path, fd in opened:
            try:
                sysns.setns(fd, sysns.NAMESPACES[ns_type][0])
            except OSError as e:
                raise OciError(f"cannot join {ns_type} namespace {path}: "
                               f"{os.strerror(e.errno)}") from None
    finally:
        for _, _, fd in opened:
            os.close(fd)


def unshare(flags: int, what: str) -> None:
    try:
        sysns.unshare(flags)
    except OSError as e:
        raise OciError(f"cannot create {what} namespace(s): {os.strerror(e.errno)}") from None


def write_id_mappings(pid: int, linux: dict) -> None:
    """Run by the parent for its child: only a process outside the new user namespace may."""
    for kind, key in (("uid", "uidMappings"), ("gid", "gidMappings")):
        lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux.get(key) or [])
        if not lines:
            continue
        try:
            with open(f"/proc/{pid}/{kind}_map", "w") as f:
                f.write(lines)
        except OSError as e:
            raise ConfigError(f"linux.{key}", f"the kernel refused the mapping ({e.strerror}); "
                              "check for overlapping or out-of-range entries") from None


def write_time_offsets(offsets: dict) -> None:
    """Must happen after unshare(CLONE_NEWTIME) and before any process enters the namespace."""
    lines = "".join(f"{clock} {value.get('secs', 0)} {value.get('nanosecs', 0)}\n"
                    for clock, value in offsets.items())
    try:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write(lines)
    except OSError as e:
        raise ConfigError("linux.timeOffsets", f"the kernel refused the offsets ({e.strerror})") from None


def set_hostname(hostname: str | None, domainname: str | None) -> None:
    if hostname is not None:
        data = hostname.encode()
        check(libc.sethostname(data, len(data)), "sethostname")
    if domainname is not None:
        data = domainname.encode()
        check(libc.setdomainname(data, len(data)), "setdomainname")


def bring_up_loopback() -> None:
    """A new network namespace has lo down; runc brings it up, and engines expect it."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def namespace_paths(pid: int, plan: NamespacePlan) -> dict[str, str]:
    """Host paths for each namespace of init: what exec joins and hooks may inspect."""
    return {ns_type: f"/proc/{pid}/ns/{sysns.NAMESPACES[ns_type][1]}"
            for ns_type in sysns.NAMESPACES if plan.has(ns_type)}
