"""Real podman (with conmon) and containerd (with ctr and the runc v2 shim),
each with storage, state and cgroups of the tests' own, driving either runc
or ocirun. Every test takes the `runtime` parameter so that a difference
between the two shows up side by side.
"""
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from engines_cleanup import existing_globals, remove_cgroup_tree, remove_new_globals, unmount_under
from engines_images import write_oci_archive
from engines_support import (APP_IMAGE, CGROUP_PARENT, IMAGE, NAMESPACE, RUNTIMES)

def _require(*programs):
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip("not installed: " + ", ".join(missing) + " (scripts/setup-host.sh installs them)")


@pytest.fixture(params=sorted(RUNTIMES))
def runtime(request):
    return request.param


def _kill_processes_with_arg(arg):
    for pid in _pids_with_arg(arg):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _iptables_chains(prefix):
    """{(table, chain)} of the firewall chains whose name starts with PREFIX."""
    if shutil.which("iptables") is None:
        return set()
    found = set()
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        for line in rules.stdout.splitlines():
            parts = line.split()
            if parts[:1] == ["-N"] and parts[1].startswith(prefix):
                found.add((table, parts[1]))
    return found


def _remove_iptables_chains(chains):
    """Delete CHAINS and the rules that jump to them (netavark leaves both)."""
    for table in {t for t, _ in chains}:
        ours = {c for t, c in chains if t == table}
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        for line in rules.stdout.splitlines():
            parts = shlex.split(line)
            if parts[0] == "-A" and parts[1] not in ours and set(parts) & ours:
                subprocess.run(["iptables", "-t", table, "-D", *parts[1:]], capture_output=True)
        for chain in ours:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
        for chain in ours:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)


def _pids_with_arg(arg):
    """Processes whose command line contains ARG (our own socket or root path)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if arg.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return [p for p in pids if p != os.getpid()]


@pytest.fixture(scope="session")
def engines_session():
    """Leftover bookkeeping shared by both engines."""
    existed = existing_globals()
    # podman's default network (netavark) installs firewall chains it never removes.
    chains_before = _iptables_chains("NETAVARK")
    base = pathlib.Path(f"/run/ocirun-test/engines-{os.getpid()}")
    base.mkdir(parents=True, exist_ok=True)
    yield base
    unmount_under(str(base))
    shutil.rmtree(base, ignore_errors=True)
    remove_cgroup_tree(CGROUP_PARENT)
    _remove_iptables_chains(_iptables_chains("NETAVARK") - chains_before)
    remove_new_globals(existed)


@pytest.fixture(scope="session")
def image_archives(engines_session):
    out = engines_session / "images"
    out.mkdir()
    return {
        IMAGE: write_oci_archive(str(out / "busybox.tar"), IMAGE),
        APP_IMAGE: write_oci_archive(str(out / "busybox-app.tar"), APP_IMAGE,
                                     user="app", with_app_user=True),
    }


class Podman:
    """podman with a storage, state and containers.conf of its own."""

    def __init__(self, base):
        self.base = base
        self.env = dict(os.environ,
                        CONTAINERS_CONF=str(base / "containers.conf"),
                        CONTAINERS_STORAGE_CONF=str(base / "storage.conf"),
                        CONTAINERS_REGISTRIES_CONF=str(base / "registries.conf"))
        self.runtime = "runc"

    def write_config(self):
        for d in ("root", "runroot", "tmp", "networks", "volumes"):
            (self.base / d).mkdir()
        runtimes = "\n".join(f'{name} = ["{path}"]' for name, path in RUNTIMES.items())
        (self.base / "containers.conf").write_text(f"""\
[containers]
# podman's defaults exceed this machine's hard limits; raising them needs
# CAP_SYS_RESOURCE, which the bounding set lacks (runc fails the same way).
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"

[network]
network_config_dir = "{self.base}/networks"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{self.base}/tmp"
volume_path = "{self.base}/volumes"
runtime = "runc"
runtime_supports_json = ["crun", "runc", "ocirun"]

[engine.runtimes]
{runtimes}
""")
        (self.base / "storage.conf").write_text(f"""\
[storage]
# vfs: no overlay mounts to leak, and the busybox layer is tiny.
driver = "vfs"
graphroot = "{self.base}/root"
runroot = "{self.base}/runroot"
""")
        (self.base / "registries.conf").write_text('unqualified-search-registries = []\n')

    def __call__(self, *args, runtime=None, check=False, timeout=30, **kwargs):
        args = list(args)
        if args and args[0] in ("run", "create"):
            args.insert(1, f"--cgroup-parent=/{CGROUP_PARENT}")
        cmd = ["podman", "--runtime", runtime or self.runtime, *args]
        result = subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                                timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def out(self, *args, **kwargs):
        return self(*args, check=True, **kwargs).stdout.strip()

    def inspect(self, name, fmt):
        return self.out("inspect", "--format", fmt, name)

    def remove_all(self):
        try:
            self("rm", "--all", "--force", "--time", "0", timeout=60)
        except subprocess.TimeoutExpired:
            pass  # a hung runtime; the session's teardown kills what is left


@pytest.fixture(scope="session")
def podman_session(engines_session, image_archives):
    _require("podman", "conmon")
    engine = Podman(engines_session / "podman")
    engine.base.mkdir()
    engine.write_config()
    for archive in image_archives.values():
        engine("load", "--input", archive, check=True)
    yield engine
    engine.remove_all()
    engine("rmi", "--all", "--force")
    # conmon and runtime processes carry our paths in their arguments.
    _kill_processes_with_arg(str(engine.base))


@pytest.fixture
def podman(podman_session, runtime):
    podman_session.runtime = runtime
    yield podman_session
    # A failing test stops half-way: its containers go here.
    podman_session.remove_all()


class Containerd:
    """A containerd daemon of the tests' own, talked to with ctr."""

    def __init__(self, base):
        self.base = base
        self.socket = str(base / "containerd.sock")
        self.env = dict(os.environ, CONTAINERD_ADDRESS=self.socket,
                        CONTAINERD_NAMESPACE=NAMESPACE)
        self.proc = None
        self.runtime = "runc"

    def start(self):
        config = self.base / "config.toml"
        config.write_text(f"""\
version = 2
root = "{self.base}/root"
state = "{self.base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  address = "{self.base}/debug.sock"
[metrics]
  address = ""
""")
        self.log = open(self.base / "containerd.log", "w")
        self.proc = subprocess.Popen(["containerd", "--config", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            if self("version").returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("containerd did not come up; see " + str(self.base / "containerd.log"))

    def runtime_flags(self, runtime=None):
        runtime = runtime or self.runtime
        return ["--runc-binary", RUNTIMES[runtime], "--runc-root", str(self.base / f"{runtime}-root")]

    def __call__(self, *args, check=False, timeout=30, **kwargs):
        cmd = ["ctr", *args]
        result = subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                                timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def out(self, *args, **kwargs):
        return self(*args, check=True, **kwargs).stdout.strip()

    def run(self, *args, **kwargs):
        """`ctr run` with the runtime under test; args are ctr run's own."""
        return self("run", *self.runtime_flags(), *args, **kwargs)

    def containers(self):
        return self.out("containers", "list", "--quiet").split()

    def remove_all(self):
        for cid in self.containers():
            try:
                self("tasks", "delete", "--force", cid, timeout=20)
                self("containers", "delete", cid, timeout=20)
            except subprocess.TimeoutExpired:
                pass  # a hung runtime; stop() kills what is left

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Shims outlive containerd by design; ours, and the runtime processes
        # they started, carry our paths in their arguments.
        _kill_processes_with_arg(str(self.base))
        self.log.close()


@pytest.fixture(scope="session")
def containerd_session(engines_session, image_archives):
    _require("containerd", "ctr", "containerd-shim-runc-v2")
    engine = Containerd(pathlib.Path(f"/run/ocirun-test/containerd-{os.getpid()}"))
    engine.base.mkdir(parents=True)
    engine.start()
    try:
        for archive in image_archives.values():
            engine("images", "import", archive, check=True, timeout=120)
        yield engine
        engine.remove_all()
    finally:
        engine.stop()
        unmount_under(str(engine.base))
        shutil.rmtree(engine.base, ignore_errors=True)


@pytest.fixture
def ctr(containerd_session, runtime):
    containerd_session.runtime = runtime
    yield containerd_session
    containerd_session.remove_all()
