"""Undoing what podman, containerd and the containers they ran leave on the host.

Shared by the engine tests' fixtures and by bench/, which drive the same
engines the same way.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import time

CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")
# Engine-wide paths podman and containerd create outside the roots we give
# them; removed at the end only when we created them.
GLOBAL_LEFTOVERS = [
    "/var/lib/containers/cache", "/run/containers/networks", "/dev/shm/libpod_lock",
    "/run/containerd/fifo", "/run/containerd/s",
]
# Their parents go only once empty: something else may use them.
GLOBAL_PARENTS = ["/var/lib/containers", "/run/containers", "/run/containerd"]


def existing_globals() -> set:
    """Which engine-wide paths exist before we start (those are not ours to remove)."""
    return {p for p in GLOBAL_LEFTOVERS + GLOBAL_PARENTS if os.path.lexists(p)}


def remove_new_globals(existed: set) -> None:
    for path in GLOBAL_LEFTOVERS:
        if path in existed or not os.path.lexists(path):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    for path in GLOBAL_PARENTS:
        if path not in existed:
            try:
                os.rmdir(path)
            except OSError:
                pass


def unmount_under(prefix: str) -> None:
    """Lazily unmount everything mounted at or below PREFIX, deepest first."""
    prefix = prefix.rstrip("/")
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted({p for p in points if p == prefix or p.startswith(prefix + "/")},
                        key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def remove_cgroup_tree(name: str) -> None:
    """Remove the cgroup tree NAME in every hierarchy, killing what still runs
    in it: only our engines put anything there (a runtime that hung can leave
    a container behind)."""
    for ctrl in CGROUP_ROOT.iterdir():
        top = ctrl / name
        if not top.is_dir():
            continue
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                      reverse=True) + [top]
        for d in dirs:
            if (d / "freezer.state").exists():
                (d / "freezer.state").write_text("THAWED")
        for d in dirs:
            for _ in range(100):
                try:
                    pids = (d / "cgroup.procs").read_text().split()
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
            try:
                d.rmdir()
            except OSError:
                pass
