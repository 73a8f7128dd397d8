"""Hostile images: symlinks that try to make mounts, directories or devices land on the host."""

import os
import shutil
import tempfile

import pytest

from .conftest import HOST_TARGETS

pytestmark = pytest.mark.root


@pytest.fixture(params=[False, True], ids=["openat2", "walk"])
def walk(request):
    return request.param


@pytest.fixture
def host_dir():
    """A directory on the host that a hostile image points at; it must stay untouched."""
    path = tempfile.mkdtemp(prefix=HOST_TARGETS)
    with open(os.path.join(path, "canary"), "w") as f:
        f.write("host\n")
    yield path
    assert sorted(os.listdir(path)) == ["canary"], "the container wrote to the host"
    shutil.rmtree(path)


def test_absolute_symlink_destination_stays_inside(container, spec, host_dir, walk):
    def hostile(upper):
        os.symlink(host_dir, os.path.join(upper, "etc"))

    spec["mounts"].append({"destination": "/etc/mnt", "type": "tmpfs", "source": "tmpfs"})
    spec["process"]["cwd"] = "/etc/cwd"
    spec["linux"]["devices"] = [{"path": "/etc/dev/null2", "type": "c", "major": 1, "minor": 3}]
    result = container(spec, f"ls {host_dir}; grep ' {host_dir}/mnt ' /proc/self/mountinfo",
                       upper_setup=hostile, walk=walk)
    assert result.status == 0, result.output
    # Inside the container the link resolved to the rootfs's own copy of that path.
    assert "mnt" in result.output and "cwd" in result.output and "tmpfs" in result.output


def test_dotdot_symlink_destination_stays_inside(container, spec, host_dir, walk):
    def hostile(upper):
        os.symlink("../../../../../../../.." + host_dir, os.path.join(upper, "escape"))
        os.makedirs(os.path.join(upper, "a", "b"))
        os.symlink("../../../../..", os.path.join(upper, "a", "b", "up"))

    spec["mounts"] += [
        {"destination": "/escape/bound", "type": "bind", "source": "/etc/hostname",
         "options": ["bind", "ro"]},
        {"destination": "/a/b/up/tmp/viaup", "type": "tmpfs", "source": "tmpfs"},
    ]
    result = container(spec, f"cat {host_dir}/bound; ls -d /tmp/viaup", upper_setup=hostile,
                       walk=walk)
    assert result.status == 0, result.output
    assert "/tmp/viaup" in result.output


def test_dev_symlink_is_refused_and_untouched(container, spec, host_dir):
    def hostile(upper):
        shutil.rmtree(os.path.join(upper, "dev"), ignore_errors=True)
        os.symlink(host_dir, os.path.join(upper, "dev"))

    result = container(spec, "echo started", upper_setup=hostile)
    assert result.status != 0
    assert "/dev is a symlink" in result.output and "started" not in result.output


@pytest.mark.parametrize("target", ["proc", "sys"])
def test_proc_and_sys_must_be_real_directories(container, spec, host_dir, target):
    def hostile(upper):
        os.symlink(host_dir, os.path.join(upper, target))

    result = container(spec, "echo started", upper_setup=hostile)
    assert result.status != 0
    assert f"/{target} in the rootfs is a symlink" in result.output
    assert "started" not in result.output


def test_fake_dev_null_is_not_used_for_masking(container, spec, tmp_path):
    # An image-provided /dev (bound, so not populated by us) whose null is a
    # link to a file the masking bind would then expose (CVE-2025-31133 class).
    fake_dev = tmp_path / "dev"
    fake_dev.mkdir()
    os.symlink("/proc/sys/kernel/core_pattern", fake_dev / "null")
    spec["mounts"] = [m for m in spec["mounts"] if not m["destination"].startswith("/dev")]
    spec["mounts"].append({"destination": "/dev", "type": "bind", "source": str(fake_dev),
                           "options": ["rbind"]})
    result = container(spec, "echo started")
    assert result.status != 0
    assert "not the null device" in result.output and "started" not in result.output


def test_proc_destination_takes_only_procfs(container, spec, tmp_path):
    spec["mounts"][0] = {"destination": "/proc", "type": "bind", "source": str(tmp_path),
                         "options": ["rbind"]}
    result = container(spec, "echo started")
    assert result.status != 0
    assert "mounts[0].destination: only procfs may be mounted on /proc" in result.output


def test_bind_over_proc_files_is_limited(container, spec, tmp_path):
    (tmp_path / "fake").write_text("0\n")
    spec["mounts"].append({"destination": "/proc/sys/kernel/core_pattern", "type": "bind",
                           "source": str(tmp_path / "fake"), "options": ["bind"]})
    result = container(spec, "echo started")
    assert result.status != 0 and "started" not in result.output
    assert "is inside /proc" in result.output


def test_allowed_proc_file_bind(container, spec, tmp_path):
    (tmp_path / "uptime").write_text("42.00 1.00\n")
    spec["mounts"].append({"destination": "/proc/uptime", "type": "bind",
                           "source": str(tmp_path / "uptime"), "options": ["bind", "ro"]})
    result = container(spec, "cat /proc/uptime")
    assert result.status == 0, result.output
    assert result.output == "42.00 1.00\n"


def test_symlink_to_proc_cannot_hide_proc(container, spec, walk):
    def hostile(upper):
        os.symlink("/proc", os.path.join(upper, "innocent"))
        os.makedirs(os.path.join(upper, "deep"))
        os.symlink("../proc/sys", os.path.join(upper, "deep", "sys"))

    spec["mounts"].append({"destination": "/innocent", "type": "tmpfs", "source": "tmpfs"})
    result = container(spec, "echo started", upper_setup=hostile, walk=walk)
    assert result.status != 0 and "started" not in result.output
    assert "mounts[7].destination: only procfs may be mounted on /proc" in result.output
    spec["mounts"][-1] = {"destination": "/deep/sys", "type": "tmpfs", "source": "tmpfs"}
    result = container(spec, "echo started", upper_setup=hostile, walk=walk)
    assert result.status != 0 and "started" not in result.output
    assert "/proc/sys is inside /proc" in result.output


def test_symlink_swapped_during_prepare(container, spec, host_dir, walk):
    """Another process flips a directory and a symlink to the host while we mount."""
    spec["mounts"] += [{"destination": f"/race/d{i}/x", "type": "tmpfs", "source": "tmpfs"}
                       for i in range(40)]

    def racer(rootfs):
        pid = os.fork()
        if pid:
            return pid
        race, real = os.path.join(rootfs, "race"), os.path.join(rootfs, "race.real")
        try:
            while True:
                try:
                    os.rename(race, real)
                    os.symlink("../" * 10 + host_dir.lstrip("/"), race)
                    os.unlink(race)
                    os.rename(real, race)
                except OSError:
                    pass
        finally:
            os._exit(0)

    for _ in range(3):
        result = container(spec, "echo started", racer=racer, walk=walk)
        # Either it got through or it noticed; the host directory stays empty
        # (checked by host_dir) and no mount reached the host (by container).
        assert result.status == 0 or "ERROR" in result.output, result.output


def test_planted_proc_self_fd_is_not_trusted(container, spec):
    # Without a proc mount, /proc is the image's: its self/fd/N could point anywhere.
    spec["mounts"] = [m for m in spec["mounts"] if m["type"] not in ("proc", "sysfs", "cgroup")]
    spec["linux"]["readonlyPaths"] = ["/etc"]

    def hostile(upper):
        fds = os.path.join(upper, "proc", "self", "fd")
        os.makedirs(fds)
        for n in range(3, 64):
            os.symlink("/bin", os.path.join(fds, str(n)))

    result = container(spec, "echo started", upper_setup=hostile)
    assert result.status != 0 and "started" not in result.output
    assert "linux.readonlyPaths[0] needs procfs on /proc" in result.output
