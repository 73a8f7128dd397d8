"""cgroup v2: the exact files and values written, against a fake cgroupfs."""

import os

import pytest

from ocirun.cgroups import devices, new_manager
from ocirun.cgroups.v2 import cpu_weight, io_weight
from ocirun.errors import OciError


@pytest.fixture
def m(fake_v2):
    manager = new_manager("c1", "/pod/c1", root=fake_v2.root, fs=fake_v2)
    manager.create()
    fake_v2.writes.clear()
    return manager


def test_create_delegates_controllers_level_by_level(fake_v2):
    manager = new_manager("c1", "/pod/c1", root=fake_v2.root, fs=fake_v2)
    manager.create()
    enabled = [(p, v) for p, v in fake_v2.writes if p.endswith("subtree_control")]
    wanted = ["+cpuset", "+cpu", "+io", "+memory", "+hugetlb", "+pids", "+rdma"]
    assert enabled == [("cgroup.subtree_control", v) for v in wanted] + \
                      [("pod/cgroup.subtree_control", v) for v in wanted]
    assert manager.created == [os.path.join(fake_v2.root, "pod"), os.path.join(fake_v2.root, "pod/c1")]
    manager.apply(1234)
    assert fake_v2.writes[-1] == ("pod/c1/cgroup.procs", "1234")


def test_create_keeps_existing_levels(fake_v2):
    fake_v2.mkdir(os.path.join(fake_v2.root, "pod"))
    manager = new_manager("c1", "/pod/c1", root=fake_v2.root, fs=fake_v2)
    manager.create()
    manager.destroy()
    assert os.path.isdir(os.path.join(fake_v2.root, "pod"))
    assert not os.path.exists(os.path.join(fake_v2.root, "pod/c1"))


def test_memory_cpu_pids_conversions(m, fake_v2):
    m.set({"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20,
                      "swappiness": 10, "disableOOMKiller": True},
           "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000, "idle": 1,
                   "cpus": "0-1", "mems": "0"},
           "pids": {"limit": 50}})
    assert fake_v2.writes == [
        ("pod/c1/memory.swap.max", str(32 << 20)),
        ("pod/c1/memory.max", str(64 << 20)),
        ("pod/c1/memory.low", str(32 << 20)),
        ("pod/c1/cpu.weight", "20"),
        ("pod/c1/cpu.max", "50000 100000"),
        ("pod/c1/cpu.max.burst", "1000"),
        ("pod/c1/cpu.idle", "1"),
        ("pod/c1/cpuset.cpus", "0-1"),
        ("pod/c1/cpuset.mems", "0"),
        ("pod/c1/pids.max", "50"),
    ]


def test_unlimited_values(m, fake_v2):
    m.set({"memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1, "period": 100000},
           "pids": {"limit": -1}})
    assert fake_v2.writes == [("pod/c1/memory.swap.max", "max"), ("pod/c1/memory.max", "max"),
                              ("pod/c1/cpu.max", "max 100000"), ("pod/c1/pids.max", "max")]


def test_weight_formulas_match_runc():
    assert [cpu_weight(s) for s in (2, 1024, 262144)] == [1, 39, 10000]
    assert [io_weight(w) for w in (10, 500, 1000)] == [1, 4950, 10000]


def test_io(m, fake_v2):
    m.set({"blockIO": {"weight": 500, "leafWeight": 300,
                       "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                       "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                       "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]}})
    assert fake_v2.writes == [("pod/c1/io.weight", "4950"), ("pod/c1/io.weight", "8:0 910"),
                              ("pod/c1/io.max", "8:0 rbps=1048576"), ("pod/c1/io.max", "8:16 wiops=100")]


def test_io_with_bfq_keeps_v1_weights(m, fake_v2):
    with open(os.path.join(m.dir, "io.bfq.weight"), "w") as f:
        f.write("default 100")
    m.set({"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}]}})
    assert fake_v2.writes == [("pod/c1/io.bfq.weight", "500"), ("pod/c1/io.bfq.weight", "8:0 100")]


def test_hugetlb_rdma_unified(m, fake_v2):
    m.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 21}],
           "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
           "unified": {"memory.high": "50000000", "pids.max": "7"}})
    assert fake_v2.writes == [("pod/c1/hugetlb.2MB.max", str(4 << 21)),
                              ("pod/c1/hugetlb.2MB.rsvd.max", str(4 << 21)),
                              ("pod/c1/rdma.max", "mlx5_1 hca_handle=3 hca_object=10000"),
                              ("pod/c1/memory.high", "50000000"), ("pod/c1/pids.max", "7")]


def test_devices_become_a_bpf_program(m, fake_v2):
    rules = [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 4, "minor": 1,
                                                 "access": "rw"}]
    m.set({"devices": rules}, linux_devices=[{"type": "c", "major": 10, "minor": 229, "path": "/dev/fuse"}])
    expected = devices.bpf_program(devices.normalize(rules) + devices.DEFAULT_ALLOWED +
                                   [(True, "c", 10, 229, "rwm")])
    assert fake_v2.programs == {"pod/c1": devices.encode(expected)}


def test_freeze_thaw(m, fake_v2):
    assert not m.is_frozen()
    m.freeze()
    assert m.is_frozen()
    m.thaw()
    assert not m.is_frozen()
    assert fake_v2.writes == [("pod/c1/cgroup.freeze", "1"), ("pod/c1/cgroup.freeze", "0")]


def test_stats_shape(m):
    stats = m.stats()
    assert stats["cpu"]["usage"] == {"total": 7000, "user": 5000, "kernel": 2000}
    assert stats["memory"]["usage"]["usage"] == 4096 and stats["memory"]["usage"]["max"] == 8192
    assert stats["pids"] == {"current": 1, "limit": 0}
    assert {"major": 8, "minor": 0, "op": "Write", "value": 20} in stats["blkio"]["ioServiceBytesRecursive"]
    assert stats["hugetlb"] == {"2MB": {"usage": 0, "max": 2**64 - 1, "failcnt": 0}}


@pytest.mark.parametrize("resources, field", [
    ({"memory": {"swap": 100}}, "linux.resources.memory.swap"),
    ({"memory": {"limit": 200, "swap": 100}}, "linux.resources.memory.swap"),
    ({"cpu": {"realtimeRuntime": 100}}, "linux.resources.cpu.realtimeRuntime"),
    ({"cpu": {"shares": 1}}, "linux.resources.cpu.shares"),
    ({"network": {"classID": 1}}, "linux.resources.network"),
    ({"unified": {"../x": "1"}}, "linux.resources.unified.../x"),
    ({"unified": {"misc.max": "1"}}, "linux.resources.unified.misc.max"),
    ({"memory": {"limit": 1024, "checkBeforeUpdate": True}}, "linux.resources.memory.limit"),
])
def test_bad_values_name_the_field(m, resources, field):
    with pytest.raises(OciError) as e:
        m.set(resources)
    assert str(e.value).startswith(f"config.json: {field}: ")
    assert "\n" not in str(e.value)


def test_missing_controller_names_the_field(fake_v2):
    # Only io delegated: a memory limit has no file to go to.
    with open(os.path.join(fake_v2.root, "cgroup.controllers"), "w") as f:
        f.write("io\n")
    manager = new_manager("c1", "/c1", root=fake_v2.root, fs=fake_v2)
    manager.create()
    with pytest.raises(OciError, match=r"^config.json: linux.resources.memory.limit: memory.max is missing"):
        manager.set({"memory": {"limit": 1 << 20}})
    manager.destroy()


def test_failed_create_leaves_nothing(fake_v2, monkeypatch):
    manager = new_manager("c1", "/a/b/c1", root=fake_v2.root, fs=fake_v2)
    real_mkdir = fake_v2.mkdir

    def mkdir(path):
        if path.endswith("c1"):
            raise PermissionError(13, "Permission denied")
        real_mkdir(path)
    monkeypatch.setattr(fake_v2, "mkdir", mkdir)
    with pytest.raises(OciError, match="cannot create cgroup .*c1: Permission denied"):
        manager.create()
    assert not os.path.exists(os.path.join(fake_v2.root, "a"))
