"""The order and flags of rootfs's system calls, recorded instead of made (no root needed)."""

import copy
import os
import stat

import pytest

from ocirun.container import rootfs
from ocirun.errors import ConfigError, OciError
from ocirun.specgen import default_spec
from ocirun.sys import mount as m


class Recorder:
    """Stands in for ocirun.sys.mount.Syscalls; fd paths are logged as what they point to."""

    def __init__(self, root):
        self.root = str(root)
        self.calls = []
        self.on_mount = None

    def _name(self, path):
        if path and path.startswith("/proc/self/fd/"):
            path = os.readlink(path)
            return "<root>" + path[len(self.root):] if path.startswith(self.root) else path
        return path

    def mount(self, source, target, fstype, flags, data=None):
        self.calls.append(("mount", self._name(source), self._name(target), fstype, flags, data))
        if self.on_mount:
            self.on_mount(target)

    def mknodat(self, dirfd, name, mode, device):
        self.calls.append(("mknod", self._name(f"/proc/self/fd/{dirfd}") + "/" + name,
                           stat.S_IFMT(mode), mode & 0o7777, device))
        # A regular file is enough for the code that follows to see it exists.
        os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=dirfd))

    def chownat(self, dirfd, name, uid, gid):
        self.calls.append(("chown", name, uid, gid))

    def __getattr__(self, name):
        def record(*args):
            self.calls.append((name, *args))
        return record

    def mounts(self):
        return [c for c in self.calls if c[0] == "mount"]


@pytest.fixture
def bundle(tmp_path):
    for d in ("rootfs/proc", "rootfs/sys", "rootfs/dev", "rootfs/etc"):
        (tmp_path / d).mkdir(parents=True)
    return tmp_path


@pytest.fixture
def spec():
    s = copy.deepcopy(default_spec())
    s["process"]["cwd"] = "/work/dir"
    return s


def prepare(spec, bundle):
    recorder = Recorder(os.path.realpath(bundle / "rootfs"))
    r = rootfs.prepare(spec, str(bundle), sys=recorder)
    return r, recorder


def test_prepare_order(spec, bundle):
    r, rec = prepare(spec, bundle)
    os.close(r.root_fd)
    root = rec.root
    mounts = rec.mounts()
    assert mounts[0] == ("mount", None, "/", None, m.MS_SLAVE | m.MS_REC, None)
    assert ("mount", root, root, "bind", m.MS_BIND | m.MS_REC, None) in mounts[:3]
    targets = [c[2] for c in mounts]
    order = ["<root>/proc", "<root>/dev", "<root>/dev/pts", "<root>/dev/shm", "<root>/dev/mqueue",
             "<root>/sys", "<root>/sys/fs/cgroup"]
    assert list(dict.fromkeys(t for t in targets if t in order)) == order
    proc = next(c for c in mounts if c[2] == "<root>/proc")
    assert proc[1:] == ("proc", "<root>/proc", "proc", 0, None)
    dev = next(c for c in mounts if c[2] == "<root>/dev")
    assert dev[3:] == ("tmpfs", m.MS_NOSUID | m.MS_STRICTATIME, "mode=755,size=65536k")
    sysfs = next(c for c in mounts if c[2] == "<root>/sys")
    assert sysfs[4] == m.MS_NOSUID | m.MS_NOEXEC | m.MS_NODEV | m.MS_RDONLY
    # Devices come after every mount, into the tmpfs on /dev.
    first_mknod = next(i for i, c in enumerate(rec.calls) if c[0] == "mknod")
    assert all(c[0] != "mount" for c in rec.calls[first_mknod:])
    nodes = [c for c in rec.calls if c[0] == "mknod"]
    assert [(c[1], c[4]) for c in nodes] == [
        ("<root>/dev/" + name, os.makedev(major, minor)) for name, major, minor in (
            ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
            ("urandom", 1, 9), ("tty", 5, 0))]
    assert all(c[2] == stat.S_IFCHR and c[3] == 0o666 for c in nodes)
    assert os.readlink(bundle / "rootfs/dev/ptmx") == "pts/ptmx"
    assert os.readlink(bundle / "rootfs/dev/fd") == "/proc/self/fd"
    assert (bundle / "rootfs/work/dir").is_dir()


def test_cgroup_mounts_default_to_read_only(spec, bundle):
    _, rec = prepare(spec, bundle)
    cgroup = [c for c in rec.mounts() if c[2].startswith("<root>/sys/fs/cgroup/")
              and c[3] in ("cgroup", "cgroup2")]
    assert cgroup and all(c[4] & m.MS_RDONLY for c in cgroup)


def test_userns_binds_devices_from_the_host(spec, bundle):
    spec["linux"]["namespaces"].append({"type": "user"})
    _, rec = prepare(spec, bundle)
    assert not [c for c in rec.calls if c[0] == "mknod"]
    binds = {c[2]: c[1] for c in rec.mounts() if c[4] == m.MS_BIND}
    assert binds["<root>/dev/null"] == "/dev/null" and binds["<root>/dev/tty"] == "/dev/tty"


def test_ro_bind_is_remounted(spec, bundle, tmp_path):
    (tmp_path / "src").mkdir()
    spec["mounts"] = [{"destination": "/data", "type": "bind", "source": str(tmp_path / "src"),
                       "options": ["rbind", "ro", "nosuid", "rprivate"]}]
    _, rec = prepare(spec, bundle)
    data = [c for c in rec.mounts() if c[2] == "<root>/data"]
    assert data == [
        ("mount", str(tmp_path / "src"), "<root>/data", None, m.MS_BIND | m.MS_REC, None),
        ("mount", None, "<root>/data", None,
         m.MS_BIND | m.MS_REMOUNT | m.MS_RDONLY | m.MS_NOSUID, None),
        ("mount", None, "<root>/data", None, m.MS_PRIVATE | m.MS_REC, None),
    ]


def test_bad_input_fails_before_any_mount(spec, bundle):
    for mount, field in (
        ({"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["bogus"]},
         "mounts[7].options"),
        ({"destination": "/x", "type": "bind", "source": "/no/such/dir"}, "mounts[7].source"),
        ({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}, "mounts[7].destination"),
    ):
        config = copy.deepcopy(spec)
        config["mounts"].append(mount)
        rec = Recorder(bundle / "rootfs")
        with pytest.raises(ConfigError) as error:
            rootfs.prepare(config, str(bundle), sys=rec)
        assert error.value.field == field and "\n" not in str(error.value)
        assert rec.calls == []
    config = copy.deepcopy(spec)
    config["linux"]["sysctl"] = {"vm.swappiness": "0"}
    rec = Recorder(bundle / "rootfs")
    with pytest.raises(ConfigError, match="linux.sysctl: vm.swappiness is not namespaced"):
        rootfs.prepare(config, str(bundle), sys=rec)
    assert rec.calls == []


def test_destination_swapped_during_mount_is_detected(spec, bundle):
    (bundle / "rootfs/elsewhere").mkdir()
    spec["mounts"] = [{"destination": "/target", "type": "tmpfs", "source": "tmpfs",
                       "options": ["rshared"]}]

    def swap(target):
        # What another container sharing this rootfs could do between our calls.
        path = bundle / "rootfs/target"
        if target.startswith("/proc/self/fd/") and path.is_dir() and not path.is_symlink():
            os.rename(path, bundle / "rootfs/moved")
            os.symlink("/elsewhere", path)

    rec = Recorder(os.path.realpath(bundle / "rootfs"))
    rec.on_mount = swap
    with pytest.raises(OciError, match="/target changed while it was being mounted"):
        rootfs.prepare(spec, str(bundle), sys=rec)
    assert not [c for c in rec.mounts() if c[2] == "<root>/elsewhere"]


def test_enter_pivots_and_detaches_the_old_root(spec, bundle):
    r, rec = prepare(spec, bundle)
    rec.calls.clear()
    rootfs.enter(r)
    assert [c[0] for c in rec.calls] == ["fchdir", "pivot_root", "fchdir", "mount", "umount2",
                                         "chdir"]
    assert rec.calls[1][1:] == (".", ".")
    assert rec.calls[3][1:] == (None, ".", None, m.MS_SLAVE | m.MS_REC, None)
    assert rec.calls[4][1:] == (".", m.MNT_DETACH)
    assert r.root_fd is None


def test_enter_without_pivot(spec, bundle):
    r, rec = prepare(spec, bundle)
    rec.calls.clear()
    rootfs.enter(r, no_pivot=True)
    assert [c[0] for c in rec.calls] == ["fchdir", "mount", "chroot", "chdir"]
    assert rec.calls[1][1:] == (r.path, "/", None, m.MS_MOVE, None)


def test_unknown_root_propagation(spec, bundle):
    spec["linux"]["rootfsPropagation"] = "sideways"
    with pytest.raises(ConfigError, match="linux.rootfsPropagation"):
        rootfs.prepare(spec, str(bundle), sys=Recorder(bundle))


def test_dev_symlink_refused(spec, bundle, tmp_path):
    os.rmdir(bundle / "rootfs/dev")
    os.symlink(str(tmp_path), bundle / "rootfs/dev")
    rec = Recorder(os.path.realpath(bundle / "rootfs"))
    with pytest.raises(OciError, match="/dev is a symlink"):
        rootfs.prepare(spec, str(bundle), sys=rec)
    assert not [c for c in rec.calls if c[0] == "mknod"]


def test_validate_before_fork_compares_joined_namespaces(spec, bundle):
    spec["linux"]["sysctl"] = {"kernel.shmmax": "1"}
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "ipc"]
    spec["linux"]["namespaces"].append({"type": "ipc", "path": "/proc/self/ns/ipc"})
    with pytest.raises(ConfigError, match="host's ipc namespace"):
        rootfs.validate(spec, str(bundle))
    rootfs.validate(spec, str(bundle), check_host_namespaces=False)


@pytest.mark.parametrize("device,field", [
    ({"path": "dev/x", "type": "c", "major": 1, "minor": 3}, "linux.devices[0].path"),
    ({"path": "/dev/x", "type": "z", "major": 1, "minor": 3}, "linux.devices[0].type"),
    ({"path": "/dev/x", "type": "c", "minor": 3}, "linux.devices[0].major"),
    ({"path": "/dev/x", "type": "b", "major": 1, "minor": -1}, "linux.devices[0].minor"),
])
def test_bad_devices(spec, bundle, device, field):
    spec["linux"]["devices"] = [device]
    with pytest.raises(ConfigError) as error:
        rootfs.validate(spec, str(bundle))
    assert error.value.field == field


def test_masking_refuses_a_fake_null(spec, bundle, monkeypatch):
    # finish() works on "/" after pivot_root: point it at the bundle's rootfs instead.
    root = bundle / "rootfs"
    (root / "dev" / "null").write_text("not a device")
    (root / "proc" / "kcore").write_text("secret")
    real_open = os.open

    def open_in_fake_root(path, flags, *args, **kwargs):
        return real_open(str(root) if path == "/" else path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_in_fake_root)
    spec["linux"]["readonlyPaths"] = []
    spec["linux"]["maskedPaths"] = ["/proc/kcore"]
    rec = Recorder(os.path.realpath(root))
    r = rootfs.Rootfs(path="/", spec=spec, sys=rec, userns=False)
    with pytest.raises(OciError, match=r"not the null device \(char 1:3\)"):
        rootfs.finish(r)
    assert rec.mounts() == []


@pytest.mark.parametrize("cgroupns", [True, False])
def test_cgroup2_host(spec, bundle, monkeypatch, cgroupns):
    monkeypatch.setattr(rootfs, "_host_is_cgroup2", lambda: True)
    monkeypatch.setattr(rootfs, "_own_cgroups", lambda: {"": "/ocirun-test/c1"})
    if not cgroupns:
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"]
                                       if n["type"] != "cgroup"]
    _, rec = prepare(spec, bundle)
    calls = [c for c in rec.mounts() if c[2] == "<root>/sys/fs/cgroup"]
    ro = m.MS_NOSUID | m.MS_NOEXEC | m.MS_NODEV | m.MS_RELATIME | m.MS_RDONLY
    if cgroupns:
        assert calls == [("mount", "cgroup2", "<root>/sys/fs/cgroup", "cgroup2", ro, None)]
    else:
        assert calls == [
            ("mount", "/sys/fs/cgroup/ocirun-test/c1", "<root>/sys/fs/cgroup", None,
             m.MS_BIND | m.MS_REC, None),
            ("mount", None, "<root>/sys/fs/cgroup", None, m.MS_BIND | m.MS_REMOUNT | ro, None)]
