"""Run rootfs.prepare/enter/finish for real, in throwaway namespaces.

`container(spec, script)` forks a child that unshares the namespaces the spec
asks for, forks again to be pid 1 there, mounts an overlay of the busybox
rootfs (the shared rootfs is never written), walks the three rootfs steps and
execs `sh -c script`. The result has the exit status and the combined output.
"""

import copy
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocirun.container import rootfs, safepath
from ocirun.specgen import default_spec
from ocirun.sys import mount as m
from ocirun.sys import ns

# Where hostile symlinks in test images point on the host.
HOST_TARGETS = "/tmp/ocirun-test-rootfs-host-"
SENSITIVE = {"/", "/etc", "/dev", "/proc", "/sys", "/tmp", "/dev/null", "/sys/fs/cgroup", "/run"}
BUSYBOX = Path(__file__).resolve().parents[2] / "bundles" / "busybox" / "rootfs"


@dataclass
class Result:
    status: int
    output: str


def mount_points() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def _child(spec, bundle, script, out, upper_setup=None, no_pivot=False, console=False,
           walk=False, racer=None):
    flags = 0
    for entry in spec["linux"].get("namespaces", []):
        if entry["type"] != "user" and "path" not in entry:
            flags |= ns.NAMESPACES[entry["type"]][0]
    if any(entry["type"] == "user" for entry in spec["linux"]["namespaces"]):
        # Root mapped to itself only: enough to make the kernel treat us as
        # inside a user namespace (no mknod, locked mount flags).
        ns.unshare(ns.CLONE_NEWUSER)
        for name, text in (("setgroups", "deny"), ("uid_map", "0 0 1"), ("gid_map", "0 0 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    ns.unshare(flags | ns.CLONE_NEWNS)
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    os.dup2(out, 1)
    os.dup2(out, 2)
    try:
        m.mount(None, "/", None, m.MS_SLAVE | m.MS_REC)
        work = os.path.join(bundle, "ovl")
        m.mount("tmpfs", work, "tmpfs", 0, "mode=700")
        for d in ("upper", "work"):
            os.mkdir(os.path.join(work, d))
        upper = os.path.join(work, "upper")
        if upper_setup:
            upper_setup(upper)
        m.mount("overlay", os.path.join(bundle, "rootfs"), "overlay", 0,
                f"lowerdir={BUSYBOX},upperdir={upper},workdir={work}/work")
        if walk:
            safepath.use_openat2(False)
        racer_pid = racer(os.path.join(bundle, "rootfs")) if racer else None
        try:
            r = rootfs.prepare(spec, bundle)
        finally:
            if racer_pid:
                os.kill(racer_pid, 9)
                os.waitpid(racer_pid, 0)
        rootfs.enter(r, no_pivot)
        if console:
            # As the runtime does: a pty from the container's own devpts.
            _, slave = os.openpty()
            rootfs.bind_console(os.ttyname(slave))
        rootfs.finish(r)
        os.execve("/bin/sh", ["sh", "-c", script], {"PATH": "/bin:/sbin"})
    except BaseException as e:  # noqa: BLE001 - report whatever happened to the test
        os.write(2, f"ERROR {type(e).__name__}: {e}\n".encode())
        os._exit(99)


@pytest.fixture
def container():
    """container(spec, script, **options) -> Result.

    options: upper_setup(upper_dir) plants files in the image; no_pivot;
    console binds a pty on /dev/console; walk=True resolves paths with the
    userspace walk instead of openat2; racer(rootfs) -> pid of a process
    that tampers with the rootfs during prepare (killed after it)."""
    bundles = []
    before = mount_points()

    def run(spec, script, **options) -> Result:
        bundle = tempfile.mkdtemp(prefix="ocirun-test-rootfs-")
        bundles.append(bundle)
        os.mkdir(os.path.join(bundle, "rootfs"))
        os.mkdir(os.path.join(bundle, "ovl"))
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                _child(spec, bundle, script, write, **options)
            finally:
                os._exit(98)
        os.close(write)
        chunks = []
        while chunk := os.read(read, 65536):
            chunks.append(chunk)
        os.close(read)
        _, status = os.waitpid(pid, 0)
        return Result(os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace"))

    yield run
    after = mount_points()
    for bundle in bundles:
        shutil.rmtree(bundle, ignore_errors=True)
    # Other suites mount things concurrently: only look where ours could land.
    leaked = [p for p in after - before
              if p.startswith(("/tmp/ocirun-test-rootfs-", HOST_TARGETS, str(BUSYBOX)))
              or p in SENSITIVE]
    assert not leaked, f"mounts leaked to the host: {sorted(leaked)}"


@pytest.fixture
def spec():
    s = copy.deepcopy(default_spec())
    s["process"]["terminal"] = False
    s["root"]["readonly"] = False
    return s
