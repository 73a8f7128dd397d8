"""The mount option vocabulary (no root needed)."""

import pytest

from ocirun.container import mounts
from ocirun.errors import ConfigError
from ocirun.sys import mount as m


def parse(*options, fstype="tmpfs"):
    return mounts.parse_options(list(options), "mounts[0].options", fstype)


@pytest.mark.parametrize("option,flag", [
    ("ro", m.MS_RDONLY), ("nosuid", m.MS_NOSUID), ("nodev", m.MS_NODEV),
    ("noexec", m.MS_NOEXEC), ("sync", m.MS_SYNCHRONOUS), ("remount", m.MS_REMOUNT),
    ("bind", m.MS_BIND), ("rbind", m.MS_BIND | m.MS_REC), ("noatime", m.MS_NOATIME),
    ("nodiratime", m.MS_NODIRATIME), ("relatime", m.MS_RELATIME),
    ("strictatime", m.MS_STRICTATIME), ("dirsync", m.MS_DIRSYNC), ("mand", m.MS_MANDLOCK),
    ("nosymfollow", m.MS_NOSYMFOLLOW), ("lazytime", m.MS_LAZYTIME), ("silent", m.MS_SILENT),
])
def test_flag_options(option, flag):
    assert parse(option).flags == flag


@pytest.mark.parametrize("setter,clearer", [
    ("ro", "rw"), ("nosuid", "suid"), ("nodev", "dev"), ("noexec", "exec"),
    ("noatime", "atime"), ("relatime", "norelatime"), ("strictatime", "nostrictatime"),
    ("nodiratime", "diratime"), ("sync", "async"), ("mand", "nomand"),
])
def test_later_option_wins(setter, clearer):
    assert parse(setter, clearer).flags == 0
    assert parse(clearer, setter).flags == mounts.FLAG_OPTIONS[setter][0]


def test_data_and_flags_are_separated():
    options = parse("nosuid", "mode=755", "size=65536k", "uid=1", "gid=5", "defaults")
    assert options.flags == m.MS_NOSUID
    assert options.data_string == "mode=755,size=65536k,uid=1,gid=5"


def test_filesystem_words_are_data():
    assert parse("newinstance", "ptmxmode=0666", fstype="devpts").data == [
        "newinstance", "ptmxmode=0666"]
    assert parse("cpu", "cpuacct", fstype="cgroup").data == ["cpu", "cpuacct"]


@pytest.mark.parametrize("option,flag", list(mounts.PROPAGATION_OPTIONS.items()))
def test_propagation_is_kept_apart(option, flag):
    options = parse(option)
    assert options.flags == 0 and options.propagation == [flag]


def test_recursive_attributes():
    options = parse("rro", "rnosuid", "rnoexec")
    assert options.attr_set == m.MOUNT_ATTR_RDONLY | m.MOUNT_ATTR_NOSUID | m.MOUNT_ATTR_NOEXEC
    assert parse("rro", "rrw").attr_set == 0 and parse("rro", "rrw").attr_clr == \
        m.MOUNT_ATTR_RDONLY
    atime = parse("rnoatime")
    assert atime.attr_set == m.MOUNT_ATTR_NOATIME and atime.attr_clr == m.MOUNT_ATTR__ATIME


def test_rw_is_remembered_for_cgroups():
    assert parse("rw", fstype="cgroup").explicit_rw
    assert not parse("rw", "ro", fstype="cgroup").explicit_rw
    assert not parse("nosuid", fstype="cgroup").explicit_rw


@pytest.mark.parametrize("bad", ["rox", "nosiud", "=5", "bind,ro"])
def test_unknown_option_names_the_field(bad):
    with pytest.raises(ConfigError) as error:
        parse("nosuid", bad)
    assert str(error.value) == f"config.json: mounts[0].options: unknown mount option {bad!r}"


def test_tmpcopyup_only_for_tmpfs():
    assert "tmpcopyup" in parse("tmpcopyup").extensions
    with pytest.raises(ConfigError, match="tmpcopyup is only valid for tmpfs"):
        parse("tmpcopyup", fstype="proc")


def test_validate_missing_bind_source(tmp_path):
    spec = {"mounts": [{"destination": "/a", "type": "tmpfs", "source": "tmpfs"},
                       {"destination": "/b", "source": "nowhere", "options": ["rbind"]}]}
    with pytest.raises(ConfigError) as error:
        mounts.validate(spec, str(tmp_path))
    assert str(error.value).startswith("config.json: mounts[1].source: nowhere does not exist")


def test_validate_relative_source_is_in_bundle(tmp_path):
    (tmp_path / "data").mkdir()
    spec = {"mounts": [{"destination": "/b", "type": "bind", "source": "data"}]}
    parsed = mounts.validate(spec, str(tmp_path))
    assert parsed[0].is_bind
    assert mounts.bind_source(spec["mounts"][0], str(tmp_path)) == str(tmp_path / "data")


@pytest.mark.parametrize("mount,field", [
    ({"type": "tmpfs"}, "mounts[0].destination"),
    ({"destination": "/x"}, "mounts[0].type"),
    ({"destination": "/x", "type": "tmpfs", "options": "ro"}, "mounts[0].options"),
    ({"destination": "/x", "type": "tmpfs", "options": ["idmap"]}, "mounts[0].options"),
])
def test_validate_names_the_field(mount, field, tmp_path):
    with pytest.raises(ConfigError) as error:
        mounts.validate({"mounts": [mount]}, str(tmp_path))
    assert error.value.field == field


def test_known_options_all_parse():
    words = mounts.known_options()
    assert {"ro", "rbind", "rslave", "rro", "idmap", "tmpcopyup"} <= set(words)
    for word in words:
        parse(word)
