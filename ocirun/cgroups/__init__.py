"""linux.cgroupsPath and linux.resources: placing containers in cgroups and limiting them.

    m = new_manager(id, linux.get("cgroupsPath"), systemd=...)
    m.create()                  # missing levels only; they are remembered for destroy()
    m.apply(pid)                # before the init unshares its cgroup namespace
    m.set(linux.get("resources") or {})
    state.cgroup = m.to_state() # later: manager_from_state(state.cgroup)
    ... signal_all(m, sig); m.destroy() once no process is left.
"""

import os

from ..errors import ConfigError, OciError
from .base import CgroupManager, signal_all
from .fs import CgroupFS
from .v1 import NAMED_SYSTEMD, UNIFIED, V1Manager, hierarchies
from .v2 import V2Manager

DEFAULT_ROOT = "/sys/fs/cgroup"

__all__ = ["DEFAULT_ROOT", "CgroupManager", "detect", "manager_from_state", "new_manager", "signal_all"]


def detect(root: str = DEFAULT_ROOT, fs: CgroupFS | None = None) -> str:
    """"v2" (unified), "hybrid" (v1 controllers plus a v2 tree) or "v1"."""
    fs = fs or CgroupFS()
    if fs.exists(os.path.join(root, "cgroup.controllers")):
        return "v2"
    if not fs.isdir(root):
        raise OciError(f"no cgroup filesystem at {root}: mount cgroups (v1 or v2) there")
    found = hierarchies(root, fs)
    if not any(name not in (UNIFIED, NAMED_SYSTEMD) for name in found):
        raise OciError(f"no cgroup controllers mounted under {root}")
    return "hybrid" if UNIFIED in found else "v1"


def clean_path(cgroups_path: str) -> str:
    """The path with "." and ".." resolved; an escape above its start is an error."""
    parts = []
    for part in cgroups_path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ConfigError("linux.cgroupsPath", f"{cgroups_path!r} leads outside the cgroup "
                                  "hierarchy; remove the '..'")
            parts.pop()
        else:
            parts.append(part)
    if not parts:
        raise ConfigError("linux.cgroupsPath", f"{cgroups_path!r} names the root cgroup; "
                          "give the container a cgroup of its own")
    return "/".join(parts)


def new_manager(container_id: str, cgroups_path: str | None, *, root: str = DEFAULT_ROOT,
                systemd: bool = False, fs: CgroupFS | None = None) -> CgroupManager:
    """A manager for the container's cgroup; nothing is touched until create().

    An absolute cgroupsPath is taken from each hierarchy's root; a relative one
    from the cgroup this runtime runs in (as runc does); none means /ocirun/<id>.
    """
    if systemd:
        raise OciError("--systemd-cgroup: the systemd cgroup driver is not available (this host "
                       "runs no systemd); run without --systemd-cgroup to use cgroupfs")
    fs = fs or CgroupFS()
    if not cgroups_path:
        cgroups_path = f"/ocirun/{container_id}"
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        raise ConfigError("linux.cgroupsPath", f"{cgroups_path!r} is a systemd slice:prefix:name "
                          "path; pass --systemd-cgroup, or give a cgroupfs path")
    inner = clean_path(cgroups_path)
    relative = not cgroups_path.startswith("/")
    own = fs.own_cgroups() if relative else {}
    version = detect(root, fs)

    def place(mount, controller):
        base = _without_slashes(own.get(controller, "/")) if relative else ""
        return (mount, os.path.join(mount, base, inner) if base else os.path.join(mount, inner))

    if version == "v2":
        return V2Manager(container_id, {"": place(root, "")}, root=root, fs=fs)
    paths = {c: place(mount, c) for c, mount in hierarchies(root, fs).items()}
    return V1Manager(container_id, paths, root=root, fs=fs)


def _without_slashes(path: str) -> str:
    return "/".join(p for p in path.split("/") if p and p != ".")


def manager_from_state(data: dict, fs: CgroupFS | None = None) -> CgroupManager:
    cls = V2Manager if data.get("version") == "v2" else V1Manager
    return cls(data["id"], {k: tuple(v) for k, v in data["paths"].items()}, root=data["root"],
               fs=fs, created=data.get("created"))
