"""cgroup v1: the files and values written, against a fake tree (no root needed)."""

import os

import pytest

from ocirun.cgroups import new_manager
from ocirun.cgroups.fs import CgroupFS

CONTROLLERS = ("memory", "cpu,cpuacct", "cpuset", "pids", "blkio", "devices", "freezer")


class FakeV1Kernel(CgroupFS):
    def __init__(self, root):
        self.root = root
        self.writes = []
        for name in CONTROLLERS:
            os.mkdir(os.path.join(root, name))
            self._populate(os.path.join(root, name))
        with open(os.path.join(root, "cpuset", "cpuset.cpus"), "w") as f:
            f.write("0-3\n")
        with open(os.path.join(root, "cpuset", "cpuset.mems"), "w") as f:
            f.write("0\n")

    def _populate(self, path):
        files = {"cgroup.procs": "", "memory.limit_in_bytes": "9223372036854771712",
                 "memory.memsw.limit_in_bytes": "9223372036854771712", "memory.usage_in_bytes": "0",
                 "cpu.shares": "1024", "cpuset.cpus": "", "cpuset.mems": "", "blkio.bfq.weight": "100",
                 "freezer.state": "THAWED"}
        for name, value in files.items():
            with open(os.path.join(path, name), "w") as f:
                f.write(value)

    def mkdir(self, path):
        os.mkdir(path)
        self._populate(path)

    def write(self, path, value):
        self.writes.append((os.path.relpath(path, self.root), value))
        with open(path, "w") as f:
            f.write(value)

    def own_cgroups(self):
        return {}


@pytest.fixture
def kernel(tmp_path):
    return FakeV1Kernel(str(tmp_path))


@pytest.fixture
def m(kernel):
    manager = new_manager("c1", "/pod/c1", root=kernel.root, fs=kernel)
    manager.create()
    kernel.writes.clear()
    return manager


def test_new_cpuset_levels_inherit_cpus_and_mems(kernel):
    manager = new_manager("c1", "/pod/c1", root=kernel.root, fs=kernel)
    manager.create()
    assert [w for w in kernel.writes if w[0].startswith("cpuset/")] == [
        ("cpuset/pod/cpuset.cpus", "0-3"), ("cpuset/pod/cpuset.mems", "0"),
        ("cpuset/pod/c1/cpuset.cpus", "0-3"), ("cpuset/pod/c1/cpuset.mems", "0")]


def test_memory_swap_order_when_raising(m, kernel):
    m.set({"memory": {"limit": 1 << 20, "swap": 2 << 20}})
    kernel.writes.clear()
    m.set({"memory": {"limit": 1 << 30, "swap": 2 << 30}})
    assert kernel.writes == [("memory/pod/c1/memory.memsw.limit_in_bytes", str(2 << 30)),
                             ("memory/pod/c1/memory.limit_in_bytes", str(1 << 30))]


def test_memory_swap_order_when_lowering(m, kernel):
    m.set({"memory": {"limit": 1 << 30, "swap": 2 << 30}})
    kernel.writes.clear()
    m.set({"memory": {"limit": 1 << 20, "swap": 2 << 20}})
    assert kernel.writes == [("memory/pod/c1/memory.limit_in_bytes", str(1 << 20)),
                             ("memory/pod/c1/memory.memsw.limit_in_bytes", str(2 << 20))]


def test_cpu_pids_blkio_devices(m, kernel):
    m.set({"cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "1"},
           "pids": {"limit": -1}, "blockIO": {"weight": 300},
           "devices": [{"allow": False, "access": "rwm"},
                       {"allow": True, "type": "c", "major": 4, "minor": None, "access": "rw"}]})
    assert kernel.writes[:6] == [
        ("cpu,cpuacct/pod/c1/cpu.shares", "512"),
        ("cpu,cpuacct/pod/c1/cpu.cfs_period_us", "100000"),
        ("cpu,cpuacct/pod/c1/cpu.cfs_quota_us", "50000"),
        ("cpuset/pod/c1/cpuset.cpus", "1"),
        ("pids/pod/c1/pids.max", "max"),
        ("blkio/pod/c1/blkio.bfq.weight", "300"),
    ]
    assert kernel.writes[6:9] == [("devices/pod/c1/devices.deny", "a"), ("devices/pod/c1/devices.deny", "a"),
                                  ("devices/pod/c1/devices.allow", "c 4:* rw")]


def test_freeze(m, kernel):
    m.freeze()
    assert m.is_frozen()
    m.thaw()
    assert kernel.writes == [("freezer/pod/c1/freezer.state", "FROZEN"),
                             ("freezer/pod/c1/freezer.state", "THAWED")]
