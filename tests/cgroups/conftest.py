"""Fixtures for cgroup tests: a fake v2 kernel on a tmpdir, and real v1 test cgroups."""

import os
import subprocess
import uuid

import pytest

from ocirun.cgroups.fs import CgroupFS
from ocirun.state import ContainerState, Store, process_start_time

V2_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma"
# Interface files the fake kernel puts in every non-root cgroup, with their defaults.
V2_FILES = {
    "cgroup.procs": "", "cgroup.subtree_control": "", "cgroup.freeze": "0",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
    "cpu.stat": "usage_usec 7\nuser_usec 5\nsystem_usec 2\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    "cpuset.cpus": "", "cpuset.mems": "",
    "memory.max": "max", "memory.high": "max", "memory.swap.max": "max", "memory.low": "0", "memory.current": "4096",
    "memory.swap.current": "0", "memory.peak": "8192",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", "memory.stat": "anon 4096\nfile 0\n",
    "pids.max": "max", "pids.current": "1",
    "io.weight": "default 100", "io.max": "", "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n",
    "hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max", "hugetlb.2MB.current": "0",
    "hugetlb.2MB.events": "max 0\n", "rdma.max": "",
}


class FakeV2Kernel(CgroupFS):
    """A tmpdir that behaves like a cgroup2 mount for what the manager does."""

    def __init__(self, root: str, own: str = "/runtime"):
        self.root = root
        self.writes: list[tuple[str, str]] = []
        self.programs: dict[str, bytes] = {}
        self.own = own
        with open(os.path.join(root, "cgroup.controllers"), "w") as f:
            f.write(V2_CONTROLLERS + "\n")
        for name in ("cgroup.subtree_control", "cgroup.procs", "cpuset.cpus.effective"):
            with open(os.path.join(root, name), "w") as f:
                f.write("0-3\n" if name == "cpuset.cpus.effective" else "")

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        parent = os.path.dirname(path)
        with open(os.path.join(parent, "cgroup.subtree_control")) as f:
            delegated = f.read().split()
        files = {"cgroup.controllers": " ".join(delegated)}
        for name, value in V2_FILES.items():
            prefix = name.split(".")[0]
            if prefix == "cgroup" or prefix in delegated:
                files[name] = value
        for name, value in files.items():
            with open(os.path.join(path, name), "w") as f:
                f.write(value)

    def rmdir(self, path: str) -> None:
        for name in os.listdir(path):
            if os.path.isfile(os.path.join(path, name)):
                os.unlink(os.path.join(path, name))
        os.rmdir(path)

    def write(self, path: str, value: str) -> None:
        if not os.path.isfile(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        self.writes.append((self.rel(path), value))
        name = os.path.basename(path)
        if name == "cgroup.subtree_control":
            current = self.read(path).split()
            value = " ".join(current + [value.lstrip("+")])
        elif name == "cgroup.freeze":
            with open(os.path.join(os.path.dirname(path), "cgroup.events"), "w") as f:
                f.write(f"populated 1\nfrozen {value}\n")
        with open(path, "w") as f:
            f.write(value)

    def own_cgroups(self) -> dict:
        return {"": self.own}

    def set_device_program(self, cgroup_dir: str, code: bytes) -> None:
        self.programs[self.rel(cgroup_dir)] = code


@pytest.fixture
def fake_v2(tmp_path):
    root = tmp_path / "cgroup"
    root.mkdir()
    return FakeV2Kernel(str(root))


def _v1_available() -> bool:
    return os.path.isfile("/sys/fs/cgroup/memory/cgroup.procs") and os.geteuid() == 0


class Sandbox:
    """Real v1 cgroups under /ocirun-test-cgroups with forked processes in them."""

    def __init__(self):
        self.managers, self.procs = [], []

    def manager(self, name: str | None = None):
        from ocirun.cgroups import new_manager
        m = new_manager(name or "t", f"/ocirun-test-cgroups/{uuid.uuid4().hex[:12]}")
        m.create()
        self.managers.append(m)
        return m

    def spawn(self, manager, script: str, **kw) -> subprocess.Popen:
        """Run script with busybox sh inside manager's cgroup (placed before it starts)."""
        proc = subprocess.Popen(["/bin/busybox", "sh", "-c", f"read go; {script}"],
                                stdin=subprocess.PIPE, **kw)
        self.procs.append(proc)
        manager.apply(proc.pid)
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        return proc

    def cleanup(self):
        from ocirun.cgroups import signal_all
        for m in self.managers:
            signal_all(m, 9)
        for proc in self.procs:
            proc.kill()
            proc.wait()
        for m in self.managers:
            m.destroy()
        # The shared parent may have been made by a concurrent run of these tests.
        for mount, _ in (self.managers[0].paths.values() if self.managers else ()):
            try:
                os.rmdir(os.path.join(mount, "ocirun-test-cgroups"))
            except OSError:
                pass


@pytest.fixture
def sandbox():
    if not _v1_available():
        pytest.skip("needs root and cgroup v1 controllers")
    box = Sandbox()
    yield box
    box.cleanup()


@pytest.fixture
def store():
    root = f"/run/ocirun-test/cgroups-{uuid.uuid4().hex[:10]}"
    s = Store(root)
    yield s
    import shutil
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def register(store):
    """Writes a state.json for a 'container' that is just a forked process placed by a manager."""

    def register_container(container_id: str, manager, proc: subprocess.Popen,
                           resources: dict | None = None) -> ContainerState:
        store.reserve(container_id)
        state = ContainerState(id=container_id, bundle="/nonexistent", rootfs="/nonexistent",
                               pid=proc.pid, pid_start=process_start_time(proc.pid), started=True,
                               cgroup=manager.to_state(),
                               config={"linux": {"resources": resources or {}}})
        store.save(state)
        return state
    return register_container
