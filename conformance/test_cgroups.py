"""config-linux.md#control-groups: placement by cgroupsPath, resources applied,
and removal on delete. Read from the host through /proc/<pid>/cgroup."""
import pytest

from conformance import harness

spec = pytest.mark.spec

MEMORY_LIMIT = 64 * 1024 * 1024


def created(runtime, bundle):
    bundle.write()
    runtime.create(bundle.id, bundle)
    return runtime.state(bundle.id)["pid"]


def controller_file(pid, controller, v1_name, v2_name):
    directory = harness.process_cgroup(pid, controller)
    assert directory is not None, f"process {pid} has no {controller} cgroup"
    return (directory / (v2_name if harness.cgroup_unified() else v1_name)).read_text().strip()


@spec("config-linux.md#cgroups-path", "the container's processes are placed in the cgroup at cgroupsPath")
def test_cgroups_path_placement(runtime, bundle):
    pid = created(runtime, bundle)
    expected = f"{harness.CGROUP_PARENT}/{bundle.id}"
    for controller in ("memory", "pids"):
        directory = harness.process_cgroup(pid, controller)
        assert directory is not None and str(directory).endswith(expected), (controller, directory)


@spec("config-linux.md#memory", "linux.resources.memory.limit is applied before the program starts")
def test_memory_limit(runtime, bundle):
    bundle.config["linux"]["resources"]["memory"] = {"limit": MEMORY_LIMIT}
    pid = created(runtime, bundle)
    assert int(controller_file(pid, "memory", "memory.limit_in_bytes", "memory.max")) == MEMORY_LIMIT


@spec("config-linux.md#pids", "linux.resources.pids.limit is applied")
def test_pids_limit(runtime, bundle):
    bundle.config["linux"]["resources"]["pids"] = {"limit": 42}
    pid = created(runtime, bundle)
    assert controller_file(pid, "pids", "pids.max", "pids.max") == "42"


@spec("config-linux.md#pids", "the pids limit is enforced: forks beyond it fail")
def test_pids_limit_enforced(runtime, bundle):
    bundle.config["linux"]["resources"]["pids"] = {"limit": 4}
    # ash gives up at the first failed fork, so the file holds how many
    # sleepers were forked; with sh itself that makes the limit of 4.
    bundle.script("for i in 1 2 3 4 5 6 7 8; do sleep 30 & echo $i > /tmp/forked; done").write()
    runtime.create(bundle.id, bundle)
    runtime.start(bundle.id)
    assert runtime.wait_status(bundle.id, "stopped") == "stopped"
    assert bundle.result("forked") == "3\n"


@spec("config-linux.md#cpu", "linux.resources.cpu shares, quota and period are applied")
def test_cpu(runtime, bundle):
    bundle.config["linux"]["resources"]["cpu"] = {"shares": 512, "quota": 50000, "period": 100000}
    pid = created(runtime, bundle)
    if harness.cgroup_unified():
        assert controller_file(pid, "cpu", "", "cpu.max") == "50000 100000"
    else:
        assert controller_file(pid, "cpu", "cpu.shares", "") == "512"
        assert controller_file(pid, "cpu", "cpu.cfs_quota_us", "") == "50000"
        assert controller_file(pid, "cpu", "cpu.cfs_period_us", "") == "100000"


@spec("config-linux.md#control-groups", "delete removes the cgroups the runtime created")
def test_cgroup_removed_on_delete(runtime, bundle):
    created(runtime, bundle)
    assert harness.existing_cgroup_dirs(bundle.id) != []
    runtime.kill(bundle.id, "KILL")
    assert runtime.wait_status(bundle.id, "stopped") == "stopped"
    runtime.delete(bundle.id)
    assert harness.existing_cgroup_dirs(bundle.id) == []


@spec("runc-cli#create", "a create that fails (program not found) leaves no cgroup behind",
      level="runc-compat")
def test_failed_create_removes_cgroup(runtime, bundle):
    bundle.config["process"]["args"] = ["/conf-no-such-binary"]
    bundle.write()
    assert not runtime.create(bundle.id, bundle, check=False).ok
    assert runtime.state(bundle.id) is None
    assert harness.existing_cgroup_dirs(bundle.id) == []


# /dev/kmsg (1:11) is not among the default devices runtimes always allow,
# and opening it write-only needs no capability; nothing is written to it.
KMSG_PROBE = "(exec 3>>/dev/conf-kmsg) 2>/dev/null && echo opened || echo refused"


def kmsg_bundle(bundle, allow):
    bundle.config["linux"]["devices"] = [
        {"path": "/dev/conf-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600}]
    if allow:
        bundle.config["linux"]["resources"]["devices"].append(
            {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rwm"})
    bundle.script(KMSG_PROBE).write()
    return bundle


def probe(runtime, bundle):
    runtime.create(bundle.id, bundle)
    runtime.start(bundle.id)
    assert runtime.wait_status(bundle.id, "stopped") == "stopped"
    return bundle.stdout().strip()


@spec("config-linux.md#allowed-device-list", "a device the allow list does not grant cannot be opened")
def test_device_not_allowed(runtime, bundle):
    assert probe(runtime, kmsg_bundle(bundle, allow=False)) == "refused"


@spec("config-linux.md#allowed-device-list", "a device the allow list grants can be opened")
def test_device_allowed(runtime, bundle):
    assert probe(runtime, kmsg_bundle(bundle, allow=True)) == "opened"
