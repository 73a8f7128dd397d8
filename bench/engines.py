"""Section 2: `podman run --rm IMAGE true` and `ctr run --rm` with ocirun as
the runtime against runc, each engine with storage, state and cgroups of the
benchmark's own. The image is the engine tests' offline busybox archive."""

import os
import shutil
import subprocess
import time
from pathlib import Path

from .common import (
    CGROUP_PARENT,
    OCIRUN,
    RUNC,
    Row,
    log,
    median,
    timed,
    unmount_under,
)

from engines_images import write_oci_archive  # noqa: E402 - on sys.path through .common

IMAGE = "localhost/ocirun-bench/busybox:latest"
RUNTIMES = {"ocirun": OCIRUN, "runc": RUNC}
# podman's defaults exceed this machine's hard limits; raising them needs
# CAP_SYS_RESOURCE, which the bounding set lacks.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"
[network]
network_config_dir = "{base}/networks"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{base}/tmp"
volume_path = "{base}/volumes"
runtime_supports_json = ["runc", "ocirun"]
[engine.runtimes]
ocirun = ["{ocirun}"]
runc = ["{runc}"]
"""


def _kill_processes_with_arg(arg: str):
    """Engines' helpers (conmon, shims) outlive their commands; ours carry
    our paths in their arguments."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if arg.encode() in f.read():
                    os.kill(int(entry), 9)
        except OSError:
            pass


# Engine-wide paths podman and containerd create outside the roots we give
# them; removed afterwards only when the benchmark created them.
def _compare(name, runtimes_cmds, repeats, target, target_text) -> list[Row]:
    """RUNTIMES_CMDS: {runtime: function(i) -> command}; alternated, medians."""
    times = {r: [] for r in runtimes_cmds}
    failed = {}
    for i in range(repeats):
        order = list(runtimes_cmds) if i % 2 == 0 else list(runtimes_cmds)[::-1]
        for runtime in order:
            if runtime in failed:
                continue
            cmd, env = runtimes_cmds[runtime](i)
            result = timed(cmd, env=env, timeout=120)
            if result.ok:
                times[runtime].append(result.seconds)
            else:
                failed[runtime] = result.why()
                log(f"{name} with {runtime} failed: {failed[runtime]}")
    note = "; ".join(f"{r} failed: {why}" for r, why in failed.items() if not times[r])
    return [Row("engines", f"{name} (median of {repeats})", "s", median(times["ocirun"]),
                median(times["runc"]), "runc", target, target_text, note=note,
                samples={r: [round(t, 4) for t in v] for r, v in times.items()})]


def podman(work: Path, repeats: int) -> list[Row]:
    if shutil.which("podman") is None:
        return [Row("engines", "podman run --rm", "s", None, None, "runc", 1.1,
                    "<= 1.1x runc", note="podman is not installed")]
    base = work / "podman"
    for d in ("root", "runroot", "tmp", "networks", "volumes"):
        (base / d).mkdir(parents=True)
    (base / "containers.conf").write_text(CONTAINERS_CONF.format(base=base, ocirun=OCIRUN,
                                                                 runc=RUNC))
    (base / "storage.conf").write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{base}/root"\n'
                                       f'runroot = "{base}/runroot"\n')
    (base / "registries.conf").write_text("unqualified-search-registries = []\n")
    env = dict(os.environ, CONTAINERS_CONF=str(base / "containers.conf"),
               CONTAINERS_STORAGE_CONF=str(base / "storage.conf"),
               CONTAINERS_REGISTRIES_CONF=str(base / "registries.conf"))
    archive = write_oci_archive(str(work / "busybox-podman.tar"), IMAGE)
    try:
        subprocess.run(["podman", "load", "--input", archive], env=env, check=True,
                       capture_output=True, timeout=120)
        return _compare("podman run --rm IMAGE true", {
            runtime: (lambda i, runtime=runtime: (
                ["podman", "--runtime", runtime, "run", "--rm", "--network=none",
                 f"--cgroup-parent=/{CGROUP_PARENT}", IMAGE, "true"], env))
            for runtime in RUNTIMES}, repeats, 1.1, "<= 1.1x runc")
    finally:
        subprocess.run(["podman", "rm", "--all", "--force", "--time", "0"], env=env,
                       check=False, capture_output=True, timeout=120)
        subprocess.run(["podman", "rmi", "--all", "--force"], env=env, check=False, capture_output=True,
                       timeout=120)
        _kill_processes_with_arg(str(base))
        unmount_under(str(base))
        shutil.rmtree(base, ignore_errors=True)


def containerd(work: Path, repeats: int) -> list[Row]:
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        return [Row("engines", "ctr run --rm", "s", None, None, "runc", 1.1, "<= 1.1x runc",
                    note="containerd is not installed")]
    # A short path: the shim's sockets live under it and must fit sun_path.
    base = Path(f"/run/ocirun-bench-ctrd-{os.getpid()}")
    base.mkdir(parents=True)
    socket = str(base / "containerd.sock")
    (base / "config.toml").write_text(f"""\
version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = "{base}/debug.sock"
[metrics]
  address = ""
""")
    env = dict(os.environ, CONTAINERD_ADDRESS=socket, CONTAINERD_NAMESPACE="ocirun-bench")
    daemon_log = open(base / "containerd.log", "w")  # noqa: SIM115  closed after the daemon stops
    daemon = subprocess.Popen(["containerd", "--config", str(base / "config.toml")],
                              stdout=daemon_log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            if subprocess.run(["ctr", "version"], env=env, check=False, capture_output=True).returncode == 0:
                break
            if daemon.poll() is not None:
                raise RuntimeError("containerd did not start; see " + str(base / "containerd.log"))
            time.sleep(0.05)
        archive = write_oci_archive(str(base / "busybox-ctr.tar"), IMAGE)
        subprocess.run(["ctr", "images", "import", archive], env=env, check=True,
                       capture_output=True, timeout=120)
        return _compare("ctr run --rm IMAGE true", {
            runtime: (lambda i, runtime=runtime: (
                ["ctr", "run", "--rm", "--runc-binary", RUNTIMES[runtime],
                 "--runc-root", str(base / f"{runtime}-root"),
                 "--cgroup", f"/{CGROUP_PARENT}/ctr-{runtime}-{i}", IMAGE,
                 f"bench-{runtime}-{i}", "true"], env))
            for runtime in RUNTIMES}, repeats, 1.1, "<= 1.1x runc")
    finally:
        listing = subprocess.run(["ctr", "containers", "list", "--quiet"], env=env,
                                 check=False, capture_output=True, text=True)
        for cid in listing.stdout.split():
            subprocess.run(["ctr", "tasks", "delete", "--force", cid], env=env,
                           check=False, capture_output=True, timeout=30)
            subprocess.run(["ctr", "containers", "delete", cid], env=env, check=False, capture_output=True,
                           timeout=30)
        daemon.terminate()
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        daemon_log.close()
        _kill_processes_with_arg(str(base))
        unmount_under(str(base))
        shutil.rmtree(base, ignore_errors=True)
