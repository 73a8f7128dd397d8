"""cgroup v2 for real, wherever the host has a v2 hierarchy with the controllers."""

import os
import subprocess
import sys

import pytest

from cgroup_workbench import workbench

pytestmark = pytest.mark.root
MiB = 1 << 20
NEEDED = {"memory", "pids", "cpu"}


def _v2_root():
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            with open(os.path.join(root, "cgroup.controllers")) as f:
                if NEEDED <= set(f.read().split()):
                    return root
        except FileNotFoundError:
            continue
    return None


@pytest.fixture
def v2():
    root = _v2_root()
    if root is None or os.geteuid() != 0:
        pytest.skip("no cgroup v2 hierarchy with the memory, pids and cpu controllers on this host "
                    "(a hybrid host keeps them on v1)")
    with workbench(root) as tools:
        yield tools


def test_oom_kill_is_counted(v2):
    manager, spawn = v2
    m = manager()
    m.set({"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})
    watch = m.oom_watch()
    try:
        proc = spawn(m, f"exec {sys.executable} -c 'x = b\"a\" * (256 << 20)'")
        assert proc.wait() == -9
        assert watch.wait(5) >= 1
    finally:
        watch.close()
    assert m.oom_count() >= 1


def test_pids_limit_stops_a_fork_bomb(v2):
    manager, spawn = v2
    m = manager()
    m.set({"pids": {"limit": 8}})
    proc = spawn(m, "for i in $(seq 30); do sleep 600 </dev/null >/dev/null 2>&1 & done",
                 stderr=subprocess.PIPE)
    assert b"fork" in proc.stderr.read()
    proc.wait()
    assert 0 < len(m.pids()) <= 8
