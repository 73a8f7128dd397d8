"""Hierarchy detection and where cgroupsPath puts the container."""

import os

import pytest

from ocirun.cgroups import clean_path, detect, manager_from_state, new_manager
from ocirun.cgroups.fs import CgroupFS, parse_proc_cgroup
from ocirun.errors import OciError


class FakeV1(CgroupFS):
    def own_cgroups(self):
        return {"memory": "/outer/inner", "cpu": "/", "cpuacct": "/", "": "/"}


@pytest.fixture
def v1_tree(tmp_path):
    for name in ("memory", "cpu,cpuacct", "freezer", "systemd", "unified"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "cgroup.procs").write_text("")
    (tmp_path / "unified" / "cgroup.controllers").write_text("")
    os.symlink("cpu,cpuacct", tmp_path / "cpu")
    return str(tmp_path)


def test_detect_v2(fake_v2):
    assert detect(fake_v2.root, fake_v2) == "v2"


def test_detect_hybrid_and_v1(v1_tree):
    assert detect(v1_tree) == "hybrid"
    os.unlink(os.path.join(v1_tree, "unified", "cgroup.procs"))
    assert detect(v1_tree) == "v1"


def test_detect_nothing_mounted(tmp_path):
    with pytest.raises(OciError, match="no cgroup controllers"):
        detect(str(tmp_path))


def test_default_path_is_under_ocirun(fake_v2):
    m = new_manager("abc", None, root=fake_v2.root, fs=fake_v2)
    assert m.paths == {"": (fake_v2.root, os.path.join(fake_v2.root, "ocirun/abc"))}


def test_relative_path_is_under_the_runtime_cgroup(fake_v2):
    m = new_manager("abc", "pod/abc", root=fake_v2.root, fs=fake_v2)
    assert m.dir == os.path.join(fake_v2.root, "runtime/pod/abc")


def test_v1_paths_per_controller(v1_tree):
    m = new_manager("abc", "rel/abc", root=v1_tree, fs=FakeV1())
    assert m.paths["memory"][1] == os.path.join(v1_tree, "memory/outer/inner/rel/abc")
    assert m.paths["cpu"][1] == m.paths["cpuacct"][1] == os.path.join(v1_tree, "cpu,cpuacct/rel/abc")
    assert m.paths[""][1] == os.path.join(v1_tree, "unified/rel/abc")
    assert m.paths["name=systemd"][1] == os.path.join(v1_tree, "systemd/rel/abc")
    m = new_manager("abc", "/abs/abc", root=v1_tree, fs=FakeV1())
    assert m.paths["memory"][1] == os.path.join(v1_tree, "memory/abs/abc")


@pytest.mark.parametrize("path", ["../../etc", "/a/../../b", "..", "a/../.."])
def test_escaping_path_is_refused(fake_v2, path):
    with pytest.raises(OciError, match=r"^config.json: linux.cgroupsPath: .*outside"):
        new_manager("abc", path, root=fake_v2.root, fs=fake_v2)


def test_dotdot_inside_the_path_is_resolved():
    assert clean_path("/a/b/../c/./d") == "a/c/d"


def test_systemd_driver_is_refused(fake_v2):
    with pytest.raises(OciError, match="systemd"):
        new_manager("abc", None, root=fake_v2.root, fs=fake_v2, systemd=True)
    with pytest.raises(OciError, match="linux.cgroupsPath.*systemd"):
        new_manager("abc", "system.slice:ocirun:abc", root=fake_v2.root, fs=fake_v2)


def test_state_round_trip(fake_v2):
    m = new_manager("abc", "/x/abc", root=fake_v2.root, fs=fake_v2)
    m.create()
    again = manager_from_state(m.to_state(), fs=fake_v2)
    assert (again.version, again.paths, again.created) == ("v2", m.paths, m.created)
    again.destroy()
    assert not os.path.exists(os.path.join(fake_v2.root, "x"))


def test_parse_proc_cgroup():
    text = "9:name=systemd:/\n4:memory:/a/b\n2:cpu,cpuacct:/c\n0::/u\n"
    assert parse_proc_cgroup(text) == {"name=systemd": "/", "memory": "/a/b", "cpu": "/c",
                                       "cpuacct": "/c", "": "/u"}
