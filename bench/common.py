"""What every benchmark section shares: the programs compared, timed child
processes with their peak RSS, statistics, and the rows of the result table."""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The engine tests' host clean-up serves the benchmark too (same engines, same leftovers).
sys.path.insert(0, str(REPO / "tests" / "engines"))
from engines_cleanup import remove_cgroup_tree, unmount_under  # noqa: E402,F401 - unmount_under is used by images and engines
VENV_BIN = Path(sys.executable).parent
OCIRUN = os.environ.get("OCIRUN_BIN", str(VENV_BIN / "ocirun"))
BUNDLE_FROM_HUB = os.environ.get("BUNDLE_FROM_HUB_BIN", str(VENV_BIN / "bundle-from-hub"))
RUNC = "/usr/sbin/runc"
GNU_TIME = "/usr/bin/time"   # Debian package `time`
BUSYBOX_ROOTFS = REPO / "bundles" / "busybox" / "rootfs"
RESULTS = REPO / "bench" / "results"
CGROUP_PARENT = "ocirun-bench"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CACHE = Path("/var/cache/ocirun-bench")


@dataclass
class Timed:
    seconds: float
    maxrss_kib: int
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def why(self) -> str:
        """The first line that explains a failure, for the table's note."""
        lines = [l for l in (self.stderr + self.stdout).splitlines() if l.strip()]
        return (lines[-1] if lines else f"exit {self.returncode}")[:160]


def timed(cmd, env=None, cwd=None, timeout=120.0, rss=False) -> Timed:
    """Run CMD and take its wall time. RSS: also its peak RSS (of the largest
    process it waited for), through GNU time: a child forked from this Python
    process would start with this process's high-water mark, so the figure must
    come from a small parent; the timing then includes GNU time's fork+exec."""
    with tempfile.NamedTemporaryFile() as out, tempfile.TemporaryFile() as err:
        if rss:
            cmd = [GNU_TIME, "-f", "%M", "-o", out.name + ".rss", *cmd]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=env, cwd=cwd)
        killer = threading.Timer(timeout, _kill, (proc.pid,))
        killer.start()
        try:
            _, status, _ = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        maxrss = 0
        if rss:
            rss_file = Path(out.name + ".rss")
            lines = rss_file.read_text().split() if rss_file.exists() else []
            maxrss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
            rss_file.unlink(missing_ok=True)
        out.seek(0)
        err.seek(0)
        return Timed(seconds, maxrss, proc.returncode,
                     out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def median(values):
    return statistics.median(values) if values else None


@dataclass
class Row:
    """One line of the result table: a figure for ocirun next to its anchor's."""
    section: str
    metric: str
    unit: str
    ocirun: float | None
    anchor: float | None
    anchor_name: str
    target: float | None = None     # the largest acceptable ocirun/anchor ratio
    target_text: str = ""
    limit: float | None = None      # or the largest acceptable ocirun figure itself
    note: str = ""
    samples: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.ocirun is None or not self.anchor:
            return None
        return self.ocirun / self.anchor

    @property
    def met(self) -> bool | None:
        if self.limit is not None:
            return self.ocirun is not None and self.ocirun <= self.limit
        if self.target is None:
            return None
        return self.ratio is not None and self.ratio <= self.target

    def as_dict(self) -> dict:
        return {"section": self.section, "metric": self.metric, "unit": self.unit,
                "ocirun": self.ocirun, "anchor": self.anchor, "anchor_name": self.anchor_name,
                "ratio": self.ratio, "target": self.target, "limit": self.limit, "target_text": self.target_text,
                "met": self.met, "note": self.note, "samples": self.samples}


class Runtime:
    """An OCI runtime CLI with a state root of the benchmark's own."""

    def __init__(self, name: str, binary: str, root: Path):
        self.name = name
        self.binary = binary
        self.root = root
        self.failed = ""    # the first failure: the rest of a section skips this runtime

    def cmd(self, *args) -> list[str]:
        return [self.binary, "--root", str(self.root), *map(str, args)]

    def __call__(self, *args, timeout=120.0, rss=False) -> Timed:
        return timed(self.cmd(*args), timeout=timeout, rss=rss)

    def state(self, container_id: str) -> dict | None:
        result = self("state", container_id, timeout=30)
        if not result.ok:
            return None
        try:
            return json.loads(result.stdout)
        except ValueError:
            return None

    def cleanup(self):
        """Delete every container left in our root, then the root itself."""
        if self.root.is_dir():
            for container_id in os.listdir(self.root):
                self("delete", "--force", container_id, timeout=30)
            shutil.rmtree(self.root, ignore_errors=True)


def make_bundle(parent: Path, name: str, args=("/bin/true",)) -> Path:
    """A bundle dir whose config.json (the same for every runtime) runs ARGS in
    the shared read-only busybox rootfs, in a cgroup under /ocirun-bench."""
    from ocirun.specgen import default_spec
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = list(args)
    spec["root"] = {"path": str(BUSYBOX_ROOTFS), "readonly": True}
    spec["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{name}"
    bundle = parent / name
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def remove_cgroups(name: str = CGROUP_PARENT):
    """Remove the cgroup tree NAME, killing what still runs in it: only the
    benchmark puts anything there."""
    remove_cgroup_tree(name)


def log(msg: str):
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()
