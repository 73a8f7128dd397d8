"""cgroup v2 for real even without controllers: placement, freezing, the device
program and removal only need the core of cgroup2, which a hybrid host has too."""

import os
import subprocess
import time

import pytest

from ocirun.cgroups import manager_from_state, signal_all
from ocirun.errors import OciError

from cgroup_workbench import workbench

pytestmark = pytest.mark.root


def _cgroup2_mount():
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if os.path.isfile(os.path.join(root, "cgroup.controllers")):
            return root
    return None


@pytest.fixture
def v2_manager():
    root = _cgroup2_mount()
    if root is None or os.geteuid() != 0:
        pytest.skip("needs root and a cgroup2 mount")
    # Our own parent, so that delegating controllers never writes to the host's cgroups.
    with workbench(root) as tools:
        yield tools


def test_placement_and_removal(v2_manager):
    make, spawn = v2_manager
    m = make()
    assert m.version == "v2"
    proc = spawn(m, "sleep 600 & echo up; wait", stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"up\n"
    assert proc.pid in m.pids() and len(m.pids()) == 2
    with open(f"/proc/{proc.pid}/cgroup") as f:
        assert any(line.startswith("0::") and line.strip().endswith(os.path.relpath(m.dir, m.paths[""][0]))
                   for line in f)
    signal_all(m, 9)
    proc.wait()
    for _ in range(500):
        if not m.pids():
            break
        time.sleep(0.01)
    again = manager_from_state(m.to_state())
    again.destroy()
    assert not os.path.exists(m.dir)


def test_freeze_stops_a_busy_loop(v2_manager):
    make, spawn = v2_manager
    m = make()
    spawn(m, "while :; do :; done")

    def usage():
        return m.stats()["cpu"]["usage"]["total"]

    m.freeze()
    assert m.is_frozen()
    frozen_at = usage()
    time.sleep(0.3)
    assert usage() == frozen_at
    m.thaw()
    assert not m.is_frozen()
    for _ in range(500):
        if usage() > frozen_at:
            break
        time.sleep(0.02)
    assert usage() > frozen_at


def test_device_rules_are_enforced(v2_manager):
    make, spawn = v2_manager
    m = make()
    try:
        m.set({"devices": [{"allow": False, "access": "rwm"}]})
    except OciError as e:
        if "Operation not permitted" in str(e) or "Invalid argument" in str(e):
            pytest.skip(f"this kernel does not let us load device programs: {e}")
        raise
    proc = spawn(m, "(: </dev/null); echo null=$?; (: </dev/kmsg) 2>/dev/null; echo kmsg=$?",
                 stdout=subprocess.PIPE)
    assert proc.stdout.read() == b"null=0\nkmsg=1\n"


def test_missing_controller_is_a_clear_error(v2_manager):
    make, _ = v2_manager
    m = make()
    if os.path.exists(os.path.join(m.dir, "pids.max")):
        pytest.skip("this v2 tree has the pids controller")
    with pytest.raises(OciError, match=r"^config.json: linux.resources.pids.limit: pids.max is missing"):
        m.set({"pids": {"limit": 10}})
