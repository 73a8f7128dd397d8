"""prepare/enter/finish for real, checked from inside with busybox (needs root)."""

import os

import pytest

from .conftest import BUSYBOX

pytestmark = pytest.mark.root


def mountinfo(output: str) -> dict[str, tuple[str, str, str]]:
    """mount point -> (per-mount options, fstype, super options); the last mount wins."""
    result = {}
    for line in output.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 10:
            continue
        dash = fields.index("-")
        result[fields[4]] = (fields[5], fields[dash + 1], fields[dash + 3])
    return result


def test_default_spec_mounts(container, spec):
    result = container(spec, "cat /proc/self/mountinfo")
    assert result.status == 0, result.output
    mounts = mountinfo(result.output)
    assert mounts["/proc"][1] == "proc"
    assert mounts["/dev"][1] == "tmpfs" and "nosuid" in mounts["/dev"][0]
    assert "size=65536k" in mounts["/dev"][2]
    assert mounts["/dev/pts"][1] == "devpts" and "ptmxmode=666" in mounts["/dev/pts"][2]
    assert mounts["/dev/shm"][0].startswith("rw,nosuid,nodev,noexec")
    assert mounts["/dev/mqueue"][1] == "mqueue"
    assert mounts["/sys"][0].startswith("ro,")
    cgroups = {p: v for p, v in mounts.items() if p.startswith("/sys/fs/cgroup/")}
    assert cgroups and all(v[0].startswith("ro,") for v in cgroups.values())
    assert mounts["/proc/sys"][0].startswith("ro,")
    assert mounts["/sys/firmware"][1] == "tmpfs" and mounts["/sys/firmware"][0].startswith("ro")
    # The old root is gone: nothing from the host is mounted any more.
    assert not [p for p in mounts if p.startswith(("/work", "/tmp/", "/run"))]


def test_default_devices_and_links(container, spec):
    result = container(spec, "ls -ln /dev; echo keys=$(wc -c < /proc/keys)")
    assert result.status == 0, result.output
    lines = {line.split()[-1]: line for line in result.output.splitlines()
             if line[:1] in "cl"}
    for name, numbers in {"null": "1,   3", "zero": "1,   5", "full": "1,   7",
                          "random": "1,   8", "urandom": "1,   9", "tty": "5,   0"}.items():
        assert lines[name].startswith("crw-rw-rw-") and numbers in lines[name], lines[name]
    assert "ptmx -> pts/ptmx" in result.output
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        assert f"{name} -> {target}" in result.output
    # /proc/keys is masked: it reads empty.
    assert "keys=0" in result.output


def test_linux_devices(container, spec):
    spec["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600,
         "uid": 1000, "gid": 1001},
        {"path": "/dev/sub/blk", "type": "b", "major": 7, "minor": 0},
        {"path": "/dev/fifo", "type": "p"},
    ]
    result = container(spec, "ls -ln /dev/fuse /dev/sub/blk /dev/fifo")
    assert result.status == 0, result.output
    listing = {line.split()[-1]: line.split() for line in result.output.splitlines()}
    assert listing["/dev/fuse"][:6] == ["crw-------", "1", "1000", "1001", "10,", "229"]
    assert listing["/dev/sub/blk"][:6] == ["brw-rw-rw-", "1", "0", "0", "7,", "0"]
    assert listing["/dev/fifo"][0] == "prw-rw-rw-"


def test_readonly_root_and_cwd(container, spec):
    spec["root"]["readonly"] = True
    spec["process"]["cwd"] = "/made/for/cwd"
    result = container(spec, "test -d /made/for/cwd && echo cwd-ok; touch /x || echo ro-ok;"
                              "touch /dev/shm/x && echo shm-rw")
    assert result.status == 0, result.output
    assert "cwd-ok" in result.output and "ro-ok" in result.output and "shm-rw" in result.output


def test_binds_ro_and_rw(container, spec, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inside").write_text("hello\n")
    (tmp_path / "file").write_text("single\n")
    spec["mounts"] += [
        {"destination": "/data/ro", "type": "bind", "source": str(tmp_path / "dir"),
         "options": ["rbind", "ro", "nosuid"]},
        {"destination": "/data/rw", "source": str(tmp_path / "dir"), "options": ["bind"]},
        {"destination": "/etc/single", "type": "none", "source": str(tmp_path / "file"),
         "options": ["bind", "ro"]},
    ]
    result = container(spec, "cat /data/ro/inside /etc/single; touch /data/ro/x || echo ro-dir;"
                              "echo > /etc/single || echo ro-file; touch /data/rw/made && echo rw;"
                              "cat /proc/self/mountinfo")
    assert result.status == 0, result.output
    assert "hello\nsingle\n" in result.output
    assert "ro-dir" in result.output and "ro-file" in result.output and "\nrw\n" in result.output
    mounts = mountinfo(result.output)
    assert mounts["/data/ro"][0].startswith("ro,nosuid")
    assert (tmp_path / "dir" / "made").exists()


def test_option_vocabulary_reaches_the_kernel(container, spec):
    spec["mounts"] += [
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
         "options": ["noexec", "nodev", "nosuid", "noatime", "mode=700", "size=1m", "uid=5",
                     "gid=6", "sync", "rshared"]},
        {"destination": "/strict", "type": "tmpfs", "source": "tmpfs",
         "options": ["strictatime", "nodiratime", "rro"]},
    ]
    result = container(spec, "cat /proc/self/mountinfo; ls -lnd /scratch")
    assert result.status == 0, result.output
    line = next(line for line in result.output.splitlines() if " /scratch " in line)
    assert line.split()[5] == "rw,nosuid,nodev,noexec,noatime"
    assert "rw,sync," in line
    assert " shared:" in line
    assert "size=1024k" in line and "mode=700" in line and "uid=5" in line and "gid=6" in line
    strict = next(line for line in result.output.splitlines() if " /strict " in line)
    assert strict.split()[5].startswith("ro,") and "nodiratime" in strict
    assert "relatime" not in strict.split()[5]


def test_tmpcopyup_keeps_the_image_content(container, spec):
    spec["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                           "options": ["tmpcopyup"]})
    result = container(spec, "cat /etc/hostname; grep ' /etc ' /proc/self/mountinfo")
    assert result.status == 0, result.output
    with open(BUSYBOX / "etc" / "hostname") as f:
        assert result.output.startswith(f.read())
    assert " - tmpfs " in result.output


def test_no_pivot(container, spec):
    result = container(spec, "ls /; cat /proc/self/mountinfo", no_pivot=True)
    assert result.status == 0, result.output
    assert "bin" in result.output and " /proc " in result.output


def test_rootfs_propagation_private(container, spec):
    spec["linux"]["rootfsPropagation"] = "rprivate"
    result = container(spec, "grep ' / / ' /proc/self/mountinfo")
    assert result.status == 0, result.output
    assert "master:" not in result.output and "shared:" not in result.output


def test_sysctl_in_namespaces(container, spec):
    spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234",
                               "kernel/msgmax": "9000"}
    result = container(spec, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni "
                              "/proc/sys/kernel/msgmax")
    assert result.status == 0, result.output
    assert result.output.split() == ["1", "1234", "9000"]
    with open("/proc/sys/kernel/shmmni") as f:
        assert f.read().strip() != "1234"


def test_cgroup_rw_when_asked(container, spec):
    for mount in spec["mounts"]:
        if mount["type"] == "cgroup":
            mount["options"] = ["nosuid", "noexec", "nodev", "rw"]
    result = container(spec, "cat /proc/self/mountinfo")
    assert result.status == 0, result.output
    cgroups = [v for p, v in mountinfo(result.output).items() if p.startswith("/sys/fs/cgroup/")]
    assert cgroups and all(v[0].startswith("rw,") for v in cgroups)


def test_cgroup_without_namespace_binds_own_cgroup(container, spec):
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"]
                                   if n["type"] != "cgroup"]
    with open("/proc/self/cgroup") as f:
        own = {line.split(":")[1]: line.strip().split(":", 2)[2] for line in f}
    result = container(spec, "cat /proc/self/mountinfo")
    assert result.status == 0, result.output
    lines = [line.split() for line in result.output.splitlines() if " /sys/fs/cgroup/" in line]
    by_point = {fields[4]: fields for fields in lines}
    if "memory" in own and os.path.isdir("/sys/fs/cgroup/memory"):
        assert by_point["/sys/fs/cgroup/memory"][3] == own["memory"]
    assert all(fields[5].startswith("ro,") for fields in lines)


def test_user_namespace_binds_host_devices(container, spec, tmp_path):
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["mounts"] = [m for m in spec["mounts"] if m["type"] != "cgroup"]
    for mount in spec["mounts"]:
        mount["options"] = [o for o in mount.get("options", []) if o != "gid=5"]
    spec["root"]["readonly"] = True
    (tmp_path / "src").mkdir()
    spec["mounts"].append({"destination": "/data", "type": "bind", "source": str(tmp_path / "src"),
                           "options": ["rbind", "ro"]})
    result = container(spec, "ls -ln /dev/null /dev/tty; echo hi > /dev/null && echo null-ok;"
                              "touch /data/x || echo data-ro;"
                              "grep ' /dev/null ' /proc/self/mountinfo")
    assert result.status == 0, result.output
    assert "null-ok" in result.output and "data-ro" in result.output
    listing = {line.split()[-1]: line.split() for line in result.output.splitlines()
               if line.startswith("c")}
    assert listing["/dev/null"][4:6] == ["1,", "3"] and listing["/dev/tty"][4:6] == ["5,", "0"]
    # A bind mount of the host's node, not a node we made.
    assert " /dev/null " in result.output


def test_idmapped_bind(container, spec, tmp_path):
    source = tmp_path / "owned"
    source.mkdir()
    (source / "file").write_text("x")
    spec["mounts"].append({"destination": "/idmapped", "type": "bind", "source": str(source),
                           "options": ["bind", "idmap", "ro"],
                           "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                           "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]})
    result = container(spec, "ls -ln /idmapped/file; grep ' /idmapped ' /proc/self/mountinfo")
    assert result.status == 0, result.output
    # Owned by 0 on disk, seen as 1000 (containerID -> hostID, as for linux.uidMappings).
    assert result.output.split()[2:4] == ["1000", "1000"], result.output
    assert " /idmapped ro," in result.output and "idmapped" in result.output.split(" - ")[0]
    assert os.stat(source / "file").st_uid == 0


@pytest.mark.parametrize("propagation,shared", [("rshared", True), ("rslave", False),
                                                (None, False)])
def test_rootfs_propagation(container, spec, propagation, shared):
    if propagation:
        spec["linux"]["rootfsPropagation"] = propagation
    result = container(spec, "grep ' / / ' /proc/self/mountinfo")
    assert result.status == 0, result.output
    assert ("shared:" in result.output) == shared


def test_readonly_dev_is_populated_first(container, spec):
    spec["mounts"][1]["options"].append("ro")
    result = container(spec, "ls /dev/null && grep ' /dev ' /proc/self/mountinfo; "
                              "touch /dev/x || echo dev-ro")
    assert result.status == 0, result.output
    assert " /dev ro," in result.output and "dev-ro" in result.output


@pytest.mark.parametrize("mount,message", [
    ({"destination": "/x", "type": "nosuchfs", "source": "none"},
     "mounts[7]: cannot mount nosuchfs on /x: No such device; check mounts[7].type"),
    ({"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=lots"]},
     "mounts[7]: cannot mount tmpfs on /x: Invalid argument; check mounts[7].options"),
])
def test_kernel_refusals_name_the_field(container, spec, mount, message):
    spec["mounts"].append(mount)
    result = container(spec, "echo started")
    assert result.status != 0 and "started" not in result.output
    assert result.output.strip() == f"ERROR ConfigError: config.json: {message}"


def test_console_is_the_pty(container, spec):
    result = container(spec, "ls -ln /dev/console; grep ' /dev/console ' /proc/self/mountinfo",
                       console=True)
    assert result.status == 0, result.output
    assert result.output.startswith("c")
    assert "136," in result.output.split("\n")[0]
    assert " /dev/console " in result.output and " - devpts " in result.output


def test_console_replaces_a_planted_symlink(container, spec):
    spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/dev"]

    def hostile(upper):
        os.makedirs(os.path.join(upper, "dev"), exist_ok=True)
        os.symlink("/etc/passwd", os.path.join(upper, "dev", "console"))

    result = container(spec, "ls -ln /dev/console; head -c 5 /etc/passwd", console=True,
                       upper_setup=hostile)
    assert result.status == 0, result.output
    assert "136," in result.output.split("\n")[0] and result.output.endswith("root:")
