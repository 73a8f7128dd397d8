"""The rootfs through the real CLI: `ocirun run` of busybox bundles, good and hostile."""

import os
import shutil
import tempfile

import pytest
from ocitest import BUSYBOX_ROOTFS, busybox_config

from .conftest import HOST_TARGETS, mount_points

pytestmark = pytest.mark.root


@pytest.fixture
def run(ocirun, make_bundle):
    """run(spec) -> CompletedProcess of `ocirun run`, checking nothing is left behind."""
    before = mount_points()
    counter = iter(range(100))

    def go(spec, *flags):
        bundle = make_bundle(spec)
        container_id = f"rootfs-{os.getpid()}-{next(counter)}"
        result = ocirun("run", *flags, "--bundle", bundle, container_id)
        assert ocirun("list", "-q", check=True).stdout.strip() == "", "a container was left behind"
        return result

    yield go
    leaked = [p for p in mount_points() - before
              if p.startswith((HOST_TARGETS, str(BUSYBOX_ROOTFS))) or p in ("/", "/etc", "/dev")]
    assert not leaked, f"mounts leaked to the host: {leaked}"


@pytest.fixture
def hostile_rootfs(tmp_path):
    """A private copy of the busybox rootfs to plant symlinks in."""
    rootfs = tmp_path / "hostile-rootfs"
    shutil.copytree(BUSYBOX_ROOTFS, rootfs, symlinks=True)
    return rootfs


@pytest.fixture
def host_dir():
    path = tempfile.mkdtemp(prefix=HOST_TARGETS)
    yield path
    assert os.listdir(path) == [], "the container wrote to the host"
    os.rmdir(path)


def test_default_bundle(run):
    spec = busybox_config(args=["sh", "-c", "ls -ln /dev; wc -c < /proc/keys; touch /x || echo "
                                "ro-root; cat /proc/self/mountinfo"])
    result = run(spec)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1,   3" in out and "5,   0" in out and "ptmx -> pts/ptmx" in out
    assert "\n0\n" in out and "ro-root" in out
    lines = [line.split() for line in out.splitlines() if " - " in line]
    points = {fields[4]: fields for fields in lines}
    assert points["/"][5].startswith("ro")
    assert points["/proc/sys"][5].startswith("ro") and points["/sys"][5].startswith("ro")
    assert all(fields[5].startswith("ro") for p, fields in points.items()
               if p.startswith("/sys/fs/cgroup/"))


def test_no_pivot(run):
    result = run(busybox_config(args=["sh", "-c", "ls /; cat /proc/self/mountinfo"]),
                 "--no-pivot")
    assert result.returncode == 0, result.stderr
    assert "bin" in result.stdout and " /proc " in result.stdout


@pytest.mark.parametrize("change,field", [
    (lambda s: s["mounts"].append({"destination": "/x", "type": "tmpfs", "source": "tmpfs",
                                   "options": ["nosuid", "frobnicate"]}), "mounts[7].options"),
    (lambda s: s["mounts"].append({"destination": "/x", "type": "bind",
                                   "source": "/no/such/source", "options": ["rbind"]}),
     "mounts[7].source"),
    (lambda s: s["linux"].__setitem__("sysctl", {"vm.swappiness": "10"}), "linux.sysctl"),
    (lambda s: s["mounts"].__setitem__(0, {"destination": "/proc", "type": "tmpfs",
                                           "source": "tmpfs"}), "mounts[0].destination"),
])
def test_bad_input_is_one_line_naming_the_field(run, change, field):
    spec = busybox_config(args=["sh", "-c", "echo started"])
    change(spec)
    result = run(spec)
    assert result.returncode != 0 and "started" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"config.json: {field}:" in lines[0], result.stderr


def test_dev_symlink_to_host_dir(run, hostile_rootfs, host_dir):
    shutil.rmtree(hostile_rootfs / "dev")
    os.symlink(host_dir, hostile_rootfs / "dev")
    spec = busybox_config(args=["sh", "-c", "echo started"])
    spec["root"]["path"] = str(hostile_rootfs)
    result = run(spec)
    assert result.returncode != 0 and "started" not in result.stdout
    assert "/dev is a symlink" in result.stderr


def test_proc_symlink(run, hostile_rootfs, host_dir):
    os.rmdir(hostile_rootfs / "proc")
    os.symlink(host_dir, hostile_rootfs / "proc")
    spec = busybox_config(args=["sh", "-c", "echo started"])
    spec["root"]["path"] = str(hostile_rootfs)
    result = run(spec)
    assert result.returncode != 0 and "started" not in result.stdout
    assert "/proc in the rootfs is a symlink" in result.stderr


def test_symlinked_destinations_stay_in_the_rootfs(run, hostile_rootfs, host_dir):
    shutil.rmtree(hostile_rootfs / "etc")
    os.symlink(host_dir, hostile_rootfs / "etc")
    os.symlink("../../../../../../.." + host_dir, hostile_rootfs / "up")
    spec = busybox_config(args=["sh", "-c", f"ls -d {host_dir}/mnt {host_dir}/up; echo ok"])
    spec["root"] = {"path": str(hostile_rootfs), "readonly": False}
    spec["mounts"] += [{"destination": "/etc/mnt", "type": "tmpfs", "source": "tmpfs"},
                       {"destination": "/up/up", "type": "tmpfs", "source": "tmpfs"}]
    spec["linux"]["devices"] = [{"path": "/etc/null2", "type": "c", "major": 1, "minor": 3}]
    result = run(spec)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("ok\n")
    # What the image's links pointed at was created inside the rootfs.
    assert (hostile_rootfs / host_dir.lstrip("/") / "mnt").is_dir()
