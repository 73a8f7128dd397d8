"""`linux.sysctl`: only keys that live in a namespace the container owns.

A key outside any namespace (vm.*, kernel.panic, ...) would change the host,
so it is refused, as is a namespaced key whose namespace is the host's.
"""

import os

from ..errors import ConfigError
from ..sys.mount import why

_IPC_KEYS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
             "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
_UTS_KEYS = {"kernel.hostname", "kernel.domainname"}

_NS_DIR = {"ipc": "ipc", "network": "net", "uts": "uts"}


def dotted(key: str) -> str:
    """Keys may be written net.ipv4.ip_forward or net/ipv4/ip_forward."""
    return key.replace("/", ".") if "/" in key else key


def proc_path(key: str) -> str:
    if "/" in key:
        return "/proc/sys/" + key.strip("/")
    return "/proc/sys/" + key.replace(".", "/")


def namespace_of(key: str) -> str | None:
    key = dotted(key)
    if key in _IPC_KEYS or key.startswith("fs.mqueue."):
        return "ipc"
    if key.startswith("net."):
        return "network"
    if key in _UTS_KEYS:
        return "uts"
    return None


def _is_host_namespace(path: str, kind: str) -> bool:
    try:
        theirs = os.stat(path)
        ours = os.stat(f"/proc/self/ns/{_NS_DIR[kind]}")
    except OSError:
        return False
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


def validate(spec: dict, check_host_namespaces: bool = True) -> dict:
    """Refuse keys the container cannot own; the sysctl map.

    check_host_namespaces compares joined namespace paths with the caller's:
    meaningful only before the container's namespaces are entered."""
    linux = spec.get("linux") or {}
    sysctl = linux.get("sysctl") or {}
    if not isinstance(sysctl, dict):
        raise ConfigError("linux.sysctl", "must be an object of key: value strings")
    namespaces = {ns.get("type"): ns for ns in linux.get("namespaces") or []
                  if isinstance(ns, dict)}
    for key, value in sysctl.items():
        if not isinstance(value, str):
            raise ConfigError("linux.sysctl", f"the value of {key} must be a string")
        kind = namespace_of(key)
        if ".." in key.split("/") or not key.strip("./"):
            raise ConfigError("linux.sysctl", f"{key!r} is not a sysctl name")
        if kind is None:
            raise ConfigError("linux.sysctl", f"{key} is not namespaced: setting it would "
                              "change the host; remove it")
        if kind not in namespaces:
            raise ConfigError("linux.sysctl", f"{key} needs a {kind} namespace in "
                              "linux.namespaces; add one or remove the key")
        path = namespaces[kind].get("path")
        if check_host_namespaces and path and _is_host_namespace(path, kind):
            raise ConfigError("linux.sysctl", f"{key} would change the host's {kind} "
                              "namespace that the container joins; remove it")
    return sysctl


def apply(spec: dict) -> None:
    """Write the sysctls through the container's /proc (after pivot_root)."""
    for key, value in validate(spec, check_host_namespaces=False).items():
        try:
            fd = os.open(proc_path(key), os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            raise ConfigError("linux.sysctl", f"cannot set {key}: {why(e)}") from None
        try:
            os.write(fd, value.encode())
        except OSError as e:
            raise ConfigError("linux.sysctl", f"cannot set {key}={value}: {why(e)}") from None
        finally:
            os.close(fd)
