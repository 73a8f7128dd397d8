"""Real cgroups for tests: managers under /ocirun-test-cgroups and busybox processes in them."""

import os
import subprocess
import uuid
from contextlib import contextmanager

from ocirun.cgroups import new_manager, signal_all

TEST_PARENT = "ocirun-test-cgroups"


@contextmanager
def workbench(root: str):
    """(make, spawn): make() creates a fresh cgroup under our own parent;
    spawn(manager, script) starts `busybox sh -c script` already inside it.
    Everything is killed and removed on the way out."""
    parent = os.path.join(root, TEST_PARENT)
    made_parent = not os.path.isdir(parent)
    os.makedirs(parent, exist_ok=True)
    managers, procs = [], []

    def make():
        manager = new_manager("t", f"/{TEST_PARENT}/{uuid.uuid4().hex[:12]}", root=root)
        manager.create()
        managers.append(manager)
        return manager

    def spawn(manager, script, **kw):
        # The shell waits for "go" so that it is in the cgroup before it runs the script.
        proc = subprocess.Popen(["/bin/busybox", "sh", "-c", f"read go; {script}"],
                                stdin=subprocess.PIPE, **kw)
        procs.append(proc)
        manager.apply(proc.pid)
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        return proc

    try:
        yield make, spawn
    finally:
        for manager in managers:
            signal_all(manager, 9)
        for proc in procs:
            proc.kill()
            proc.wait()
        for manager in managers:
            manager.destroy()
        if made_parent:
            try:
                os.rmdir(parent)
            except OSError:
                pass  # a concurrent run of these tests still has a cgroup in it
