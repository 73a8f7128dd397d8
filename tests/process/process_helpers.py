"""Helpers for the process tests: a recorder standing in for the syscalls, and a
forked child that goes through the init's process steps and execs busybox.

A plain module with an area-specific name, not a conftest.py, so the test
files can import it without clashing with tests/conftest.py."""

import os
import tempfile
from pathlib import Path

from ocirun.container import process
from ocirun.sys import mount as sysmount
from ocirun.sys import ns

BUSYBOX_ROOTFS = Path(__file__).resolve().parents[2] / "bundles" / "busybox" / "rootfs"


class Recorder(process.Syscalls):
    """Records the state-changing calls instead of making them; reads stay real unless given."""

    def __init__(self, files: dict[str, str] | None = None, fail: dict[str, OSError] | None = None):
        self.calls: list[tuple] = []
        self.files = files or {}
        self.fail = fail or {}
        self.bounding = set(range(41))

    def _record(self, name, *args):
        self.calls.append((name, *args))
        if name in self.fail:
            raise self.fail[name]

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def read_text(self, path):
        if path in self.files:
            return self.files[path]
        return super().read_text(path)

    def bounding_has(self, cap):
        return cap in self.bounding

    def bounding_drop(self, cap):
        self._record("bounding_drop", cap)
        self.bounding.discard(cap)


def _recording(name):
    def method(self, *args):
        self._record(name, *args)
    return method


for _name in ("setrlimit", "ioprio_set", "sched_setattr", "personality", "umask", "setgroups",
              "setresgid", "setresuid", "set_keepcaps", "capset", "ambient_clear", "ambient_raise",
              "set_no_new_privs", "fchdir", "write_proc"):
    setattr(Recorder, _name, _recording(_name))
Recorder.getcwd = lambda self: "/"


def base_spec(args=("true",), **process_changes) -> dict:
    proc = {"args": list(args), "cwd": "/", "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "user": {"uid": 0, "gid": 0}}
    proc.update(process_changes)
    return {"ociVersion": "1.0.2", "process": proc, "linux": {}}


def _enter_busybox_root(root: str) -> None:
    """A world-searchable root (the bundle's rootfs dir is 0700) made of binds of the
    busybox rootfs, with a fresh /proc and a tmpfs /tmp; then chroot there."""
    ns.unshare(ns.CLONE_NEWNS)
    sysmount.mount(None, "/", None, sysmount.MS_REC | sysmount.MS_PRIVATE)
    sysmount.mount("tmpfs", root, "tmpfs", 0, "mode=755")
    for entry in os.listdir(BUSYBOX_ROOTFS):
        source = BUSYBOX_ROOTFS / entry
        target = os.path.join(root, entry)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
            continue
        os.mkdir(target, 0o755)
        if entry == "proc":
            sysmount.mount("proc", target, "proc", 0)
        elif entry == "tmp":
            sysmount.mount("tmpfs", target, "tmpfs", 0, "mode=1777")
        else:
            sysmount.mount(str(source), target, None, sysmount.MS_BIND | sysmount.MS_REC)
    os.chroot(root)
    os.chdir("/")


def run_in_child(spec: dict, process_dict: dict | None = None, keep_open: list[int] = (),
                 listener_state: dict | None = None) -> tuple[int, str]:
    """Fork; in the child (in a private mount namespace, chrooted into a view of
    the busybox rootfs) go through the init's steps. Returns (exit code, stdout+stderr)."""
    root = tempfile.mkdtemp(prefix="ocirun-test-process-")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            os.close(w)
            plan = process.prepare(spec, process_dict)
            _enter_busybox_root(root)
            process.apply_early(plan)
            process.switch_user(plan, listener_state)
            executable = process.resolve_executable(plan)
            process.close_fds(set(keep_open))
            process.load_seccomp(plan, listener_state)
            os.execve(executable, plan.args, process.environment(plan))
        except BaseException as error:  # noqa: BLE001 - the child must never return into pytest
            os.write(2, f"CHILD-ERROR: {error}\n".encode())
        os._exit(99)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    os.rmdir(root)  # the mounts on it died with the child's mount namespace
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


def status_field(output: str, name: str) -> str:
    for line in output.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in output:\n{output}")

