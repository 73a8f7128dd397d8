"""config.md and config-linux.md: what the process sees inside the container,
observed from inside (via the results directory) and from the host."""
import os
from pathlib import Path

import pytest

from conformance import harness

spec = pytest.mark.spec


def run(runtime, bundle, script):
    """Run `script` in the container to completion; returns its stdout."""
    bundle.script(script).write()
    runtime.create(bundle.id, bundle)
    runtime.start(bundle.id)
    assert runtime.wait_status(bundle.id, "stopped") == "stopped"
    runtime.delete(bundle.id)
    return bundle.stdout()


def status_field(text, field):
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


# --- process ------------------------------------------------------------------

@spec("config.md#process", "process.env is the environment of the process")
def test_env(runtime, bundle):
    bundle.config["process"]["env"] += ["CONF_A=alpha", "CONF_B=with space"]
    out = run(runtime, bundle, 'echo "$CONF_A|$CONF_B|$PATH"')
    assert out == "alpha|with space|/usr/sbin:/usr/bin:/sbin:/bin\n"


@spec("config.md#process", "process.cwd is the working directory")
def test_cwd(runtime, bundle):
    bundle.config["process"]["cwd"] = "/etc"
    assert run(runtime, bundle, "pwd") == "/etc\n"


@spec("config.md#process", "process.args are passed as given (argv[0] included)")
def test_args(runtime, bundle):
    bundle.config["process"]["args"] = ["sh", "-c", 'echo "$0|$1|$2"', "zero", "one two", ""]
    bundle.write()
    runtime.create(bundle.id, bundle)
    runtime.start(bundle.id)
    runtime.wait_status(bundle.id, "stopped")
    assert bundle.stdout() == "zero|one two|\n"


@spec("config.md#user", "process.user uid, gid and additionalGids are applied")
def test_user(runtime, bundle, private_rootfs):
    bundle.with_rootfs(private_rootfs)
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20]}
    out = run(runtime, bundle, "id -u; id -g; id -G")
    uid, gid, groups = out.splitlines()
    assert (uid, gid) == ("1000", "1001")
    assert set(groups.split()) == {"1001", "10", "20"}


@spec("config.md#user", "process.user.umask is applied", level="SHOULD")
def test_umask(runtime, bundle):
    bundle.config["process"]["user"]["umask"] = 0o027
    assert run(runtime, bundle, "umask") == "0027\n"


@spec("config.md#hostname", "hostname is set in the container's UTS namespace")
def test_hostname(runtime, bundle):
    bundle.config["hostname"] = "conf-host"
    assert run(runtime, bundle, "hostname") == "conf-host\n"


@spec("config-linux.md#namespaces", "each listed namespace is new: it differs from the runtime's")
def test_new_namespaces(runtime, bundle):
    kinds = ["pid", "net", "ipc", "uts", "mnt", "cgroup"]
    bundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    out = run(runtime, bundle, "for n in " + " ".join(kinds) + "; do readlink /proc/self/ns/$n; done")
    for kind, link in zip(kinds, out.splitlines()):
        assert link != harness.host_ns(kind), kind


@spec("config-linux.md#namespaces", "a namespace type not listed is inherited from the runtime")
def test_unlisted_namespaces_inherited(runtime, bundle):
    bundle.config["linux"]["namespaces"] = [{"type": "mount"}, {"type": "pid"}]
    del bundle.config["hostname"]
    out = run(runtime, bundle, "for n in net ipc uts; do readlink /proc/self/ns/$n; done")
    assert out.splitlines() == [harness.host_ns(k) for k in ("net", "ipc", "uts")]


@spec("config-linux.md#namespaces", "a namespace with a path is joined (setns)")
def test_join_namespace_by_path(runtime, make_bundle):
    holder = make_bundle()
    holder.script("while true; do sleep 0.1; done").write()
    runtime.create(holder.id, holder)
    holder_pid = runtime.state(holder.id)["pid"]
    joiner = make_bundle()
    joiner.config["linux"]["namespaces"] = [
        {"type": "pid"}, {"type": "mount"}, {"type": "ipc"},
        {"type": "network", "path": f"/proc/{holder_pid}/ns/net"},
        {"type": "uts", "path": f"/proc/{holder_pid}/ns/uts"}]
    del joiner.config["hostname"]
    out = run(runtime, joiner, "readlink /proc/self/ns/net; readlink /proc/self/ns/uts")
    assert out.splitlines() == [os.readlink(f"/proc/{holder_pid}/ns/net"),
                                os.readlink(f"/proc/{holder_pid}/ns/uts")]


@spec("config-linux.md#user-namespace-mappings", "uidMappings/gidMappings are written for the user namespace")
def test_user_namespace_mappings(runtime, bundle, private_rootfs):
    # The rootfs copy is world-traversable, as the mapped root needs.
    bundle.with_rootfs(private_rootfs)
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    out = run(runtime, bundle, "cat /proc/self/uid_map /proc/self/gid_map; id -u; readlink /proc/self/ns/user")
    lines = out.splitlines()
    assert [l.split() for l in lines[:2]] == [["0", "100000", "65536"]] * 2
    assert lines[2] == "0"
    assert lines[3] != harness.host_ns("user")


# --- filesystem ----------------------------------------------------------------

def mountinfo_entry(mountinfo, mountpoint):
    """The last (topmost) mountinfo line for a mount point: (options, fstype)."""
    found = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " in line and fields[4] == mountpoint:
            sep = fields.index("-")
            found = (set(fields[5].split(",")) | set(fields[sep + 3].split(",")), fields[sep + 1])
    return found


@spec("config.md#mounts", "mounts are made at their destination with their type and options")
def test_mounts(runtime, bundle):
    bundle.config["mounts"].append({"destination": "/home", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["nosuid", "nodev", "noexec", "size=1m"]})
    opts, fstype = mountinfo_entry(run(runtime, bundle, "cat /proc/self/mountinfo"), "/home")
    assert fstype == "tmpfs"
    assert {"nosuid", "nodev", "noexec", "size=1024k"} <= opts


@spec("config.md#mounts", "a read-only bind mount cannot be written")
def test_readonly_bind_mount(runtime, bundle, workdir):
    source = workdir / "ro-source"
    source.mkdir()
    (source / "file").write_text("content\n")
    bundle.config["mounts"].append({"destination": "/home", "type": "bind", "source": str(source),
                                    "options": ["rbind", "ro"]})
    out = run(runtime, bundle, "cat /home/file; touch /home/new 2>/dev/null && echo writable || echo denied")
    assert out == "content\ndenied\n"
    assert not (source / "new").exists()


@spec("config.md#root", "root.readonly makes the root filesystem read-only")
def test_root_readonly(runtime, bundle, private_rootfs):
    bundle.with_rootfs(private_rootfs)
    out = run(runtime, bundle, "touch /conf-probe 2>/dev/null && echo writable || echo denied")
    assert out == "denied\n"
    assert not (private_rootfs / "conf-probe").exists()


@spec("config.md#root", "root.path is the container's root filesystem")
def test_root_path(runtime, bundle, private_rootfs):
    (private_rootfs / "etc" / "conf-marker").write_text("from the bundle rootfs\n")
    bundle.with_rootfs(private_rootfs)
    assert run(runtime, bundle, "cat /etc/conf-marker") == "from the bundle rootfs\n"


@spec("config-linux.md#masked-paths", "maskedPaths cannot be read: files read empty, directories list empty")
def test_masked_paths(runtime, bundle):
    # A masked path that does not exist is skipped, not an error.
    # /proc/version and /sys/firmware are never empty when unmasked.
    bundle.config["linux"]["maskedPaths"] = ["/proc/version", "/sys/firmware", "/proc/conf-does-not-exist"]
    out = run(runtime, bundle, "wc -c < /proc/version; ls /sys/firmware | wc -l")
    assert out.split() == ["0", "0"]


@spec("config-linux.md#readonly-paths", "readonlyPaths are mounted read-only")
def test_readonly_paths(runtime, bundle):
    bundle.config["linux"]["readonlyPaths"] = ["/proc/sys", "/proc/sysrq-trigger"]
    out = run(runtime, bundle, "cat /proc/self/mountinfo; "
                               "echo x 2>/dev/null > /proc/sys/kernel/hostname && echo writable || echo denied")
    opts, _ = mountinfo_entry(out, "/proc/sys")
    assert "ro" in opts
    assert out.splitlines()[-1] == "denied"


DEFAULT_DEVICES = {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7),
                   "/dev/random": (1, 8), "/dev/urandom": (1, 9), "/dev/tty": (5, 0)}


@spec("config-linux.md#default-devices", "the default devices exist as character devices")
def test_default_devices(runtime, bundle):
    out = run(runtime, bundle, "for d in " + " ".join(DEFAULT_DEVICES) +
              "; do stat -c '%n %F %t %T' $d; done")
    seen = {}
    for line in out.splitlines():
        name, rest = line.split(" ", 1)
        kind, major, minor = rest.rsplit(" ", 2)
        seen[name] = (kind, int(major, 16), int(minor, 16))
    assert seen == {d: ("character special file", *mm) for d, mm in DEFAULT_DEVICES.items()}


@spec("config-linux.md#default-devices", "the default devices are usable (read /dev/zero, write /dev/null)")
def test_default_devices_usable(runtime, bundle):
    out = run(runtime, bundle, "head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok")
    assert out.split() == ["4", "null-ok"]


@spec("config-linux.md#dev-symbolic-links", "/dev/fd, /dev/stdin, /dev/stdout, /dev/stderr link to /proc/self/fd")
def test_dev_symlinks(runtime, bundle):
    out = run(runtime, bundle, "for l in fd stdin stdout stderr; do readlink /dev/$l; done")
    assert out.split() == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2"]


@spec("config-linux.md#devices", "linux.devices are created with type, major/minor, mode and owner")
def test_linux_devices(runtime, bundle):
    bundle.config["linux"]["devices"] = [{"path": "/dev/conf-null", "type": "c", "major": 1, "minor": 3,
                                          "fileMode": 0o640, "uid": 7, "gid": 8}]
    bundle.config["linux"]["resources"]["devices"].append(
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
    out = run(runtime, bundle, "stat -c '%F %t %T %a %u %g' /dev/conf-null")
    assert out == "character special file 1 3 640 7 8\n"


# --- process security ----------------------------------------------------------

CAP_BITS = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13,
            "CAP_AUDIT_WRITE": 29}


def capmask(names):
    return sum(1 << CAP_BITS[n] for n in names)


@spec("config.md#linux-process", "process.capabilities sets the bounding, inheritable and ambient sets")
def test_capabilities(runtime, bundle):
    caps = {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
            "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
            "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
            "ambient": ["CAP_NET_BIND_SERVICE"]}
    bundle.config["process"]["capabilities"] = caps
    out = run(runtime, bundle, "cat /proc/self/status")
    # Root's permitted and effective sets are recomputed by execve from the
    # bounding and inheritable sets, so only these three are observable as given.
    assert int(status_field(out, "CapBnd"), 16) == capmask(caps["bounding"])
    assert int(status_field(out, "CapInh"), 16) == capmask(caps["inheritable"])
    assert int(status_field(out, "CapAmb"), 16) == capmask(caps["ambient"])


@spec("config.md#linux-process", "a non-root process has exactly its ambient capabilities after exec")
def test_ambient_capabilities_non_root(runtime, bundle, private_rootfs):
    bundle.with_rootfs(private_rootfs)
    names = ["CAP_NET_BIND_SERVICE"]
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.config["process"]["capabilities"] = {k: names for k in
                                                ("bounding", "effective", "permitted", "inheritable", "ambient")}
    out = run(runtime, bundle, "cat /proc/self/status")
    assert int(status_field(out, "CapEff"), 16) == capmask(names)
    assert int(status_field(out, "CapPrm"), 16) == capmask(names)
    assert int(status_field(out, "CapAmb"), 16) == capmask(names)


@spec("config.md#linux-process", "a non-root process without ambient capabilities has none effective")
def test_no_capabilities_non_root(runtime, bundle, private_rootfs):
    bundle.with_rootfs(private_rootfs)
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    out = run(runtime, bundle, "cat /proc/self/status")
    assert int(status_field(out, "CapEff"), 16) == 0
    assert int(status_field(out, "CapBnd"), 16) == capmask(harness.DEFAULT_CAPS)


@spec("config.md#posix-process", "process.rlimits set soft and hard limits")
def test_rlimits(runtime, bundle):
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
                                           {"type": "RLIMIT_NPROC", "soft": 1111, "hard": 2222}]
    out = run(runtime, bundle, "cat /proc/self/limits")
    limits = {l[:26].strip(): l[26:].split()[:2] for l in out.splitlines()[1:]}
    assert limits["Max open files"] == ["321", "654"]
    assert limits["Max processes"] == ["1111", "2222"]


@spec("config.md#linux-process", "noNewPrivileges sets no_new_privs")
def test_no_new_privileges(runtime, bundle):
    bundle.config["process"]["noNewPrivileges"] = True
    assert status_field(run(runtime, bundle, "cat /proc/self/status"), "NoNewPrivs") == "1"


@spec("config.md#linux-process", "noNewPrivileges false leaves no_new_privs unset")
def test_no_new_privileges_false(runtime, bundle):
    bundle.config["process"]["noNewPrivileges"] = False
    assert status_field(run(runtime, bundle, "cat /proc/self/status"), "NoNewPrivs") == "0"


@spec("config.md#linux-process", "process.oomScoreAdj is applied")
def test_oom_score_adj(runtime, bundle):
    bundle.config["process"]["oomScoreAdj"] = 123
    assert run(runtime, bundle, "cat /proc/self/oom_score_adj") == "123\n"


@spec("config-linux.md#seccomp", "a seccomp SCMP_ACT_ERRNO rule makes the syscall fail with errnoRet")
def test_seccomp_errno(runtime, bundle):
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]}
    out = run(runtime, bundle, "mkdir /tmp/conf-dir 2>&1; grep Seccomp: /proc/self/status")
    # errno 28 is ENOSPC, which a mkdir in the results directory never hits by itself.
    assert "No space left on device" in out
    assert status_field(out, "Seccomp") == "2"
    assert not (bundle.results / "conf-dir").exists()


@spec("config-linux.md#sysctl", "linux.sysctl values are set in the container")
def test_sysctl(runtime, bundle):
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_default_ttl": "42", "kernel.domainname": "conf.example"}
    out = run(runtime, bundle, "cat /proc/sys/net/ipv4/ip_default_ttl /proc/sys/kernel/domainname")
    assert out.split() == ["42", "conf.example"]


@spec("config.md#domainname", "domainname is set in the container's UTS namespace")
def test_domainname(runtime, bundle):
    bundle.config["domainname"] = "conf.domain"
    assert run(runtime, bundle, "cat /proc/sys/kernel/domainname") == "conf.domain\n"


@spec("config-linux.md#rootfs-mount-propagation", "the container's mounts do not propagate to the host")
def test_mounts_do_not_leak_to_host(runtime, bundle):
    bundle.config["mounts"].append({"destination": "/home", "type": "tmpfs", "source": "conf-leak-probe"})
    bundle.write()
    runtime.create(bundle.id, bundle)
    host_mounts = Path("/proc/self/mountinfo").read_text()
    assert "conf-leak-probe" not in host_mounts
