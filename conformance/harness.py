"""Black-box driver for an OCI runtime binary: runc's command line, bundles
built on the shared busybox rootfs, and the cgroup bookkeeping the suite
needs to prove it leaves nothing behind.

Nothing here imports ocirun: the same code drives ocirun, runc and crun.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

BUSYBOX_ROOTFS = Path(__file__).resolve().parent.parent / "bundles" / "busybox" / "rootfs"
SCRATCH_BASE = Path("/run/ocirun-test")
CGROUP_PARENT = "ocirun-test-conformance"
CGROUP_ROOT = Path("/sys/fs/cgroup")

# A safety net so one hung runtime cannot stall the whole suite; never an
# assertion about speed.
COMMAND_TIMEOUT = 20
WAIT_LIMIT = 30

# Inside the container the results directory is bind-mounted over /tmp,
# which already exists in the busybox rootfs, so no runtime ever has to
# create a mount point inside the shared, read-only rootfs.
RESULTS_IN_CONTAINER = "/tmp"


class CommandFailed(Exception):
    """A runtime command failed (or hung) where the test expected success."""


class Result:
    def __init__(self, argv, returncode, stdout, stderr):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self):
        return self.returncode == 0

    def __repr__(self):
        # The subcommand and its arguments, not the binary and --root: the
        # report shows the first few hundred characters of this.
        command = self.argv[self.argv.index("--root") + 2:] if "--root" in self.argv else self.argv
        return (f"`{' '.join(map(str, command))}` exited {self.returncode}: "
                f"stderr={self.stderr.strip()[:300]!r} stdout={self.stdout.strip()[:200]!r}")


class Runtime:
    """One runtime binary with its own --root state directory."""

    def __init__(self, name, path, root, global_args=()):
        self.name = name
        self.path = str(path)
        self.global_args = list(global_args)
        self.root = Path(root)
        self.created_ids = []
        # (pid, start time) of every container process a state call showed,
        # so that cleanup can kill what a broken delete leaves running.
        self.seen_pids = set()

    def cmd(self, *args, check=False, stdin=None, stdout_path=None):
        """Run `runtime [global flags] --root R args...`.

        Output goes to files, not pipes: a container started by `create`
        inherits the caller's stdio, and a pipe it holds open would make
        reading it wait for the container to exit.
        """
        argv = [self.path, *self.global_args, "--root", str(self.root), *map(str, args)]
        with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out_tmp:
            out = open(stdout_path, "wb") if stdout_path else out_tmp
            try:
                returncode = subprocess.run(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                            stdout=out, stderr=err, timeout=COMMAND_TIMEOUT).returncode
            except subprocess.TimeoutExpired:
                returncode = None
            finally:
                if stdout_path:
                    out.close()
            err.seek(0)
            stdout = ""
            if not stdout_path:
                out_tmp.seek(0)
                stdout = out_tmp.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
            if returncode is None:
                stderr += f"\n(killed: no answer after {COMMAND_TIMEOUT}s)"
            res = Result(argv, returncode, stdout, stderr)
        if check and not res.ok:
            raise CommandFailed(repr(res))
        return res

    def create(self, cid, bundle, *extra, check=True):
        if cid not in self.created_ids:
            self.created_ids.append(cid)
        return self.cmd("create", "--bundle", bundle.path, *extra, cid, check=check,
                        stdout_path=bundle.stdout_path)

    def start(self, cid, check=True):
        return self.cmd("start", cid, check=check)

    def kill(self, cid, sig=None, check=True):
        args = ["kill", cid] + ([sig] if sig is not None else [])
        return self.cmd(*args, check=check)

    def delete(self, cid, force=False, check=True):
        return self.cmd("delete", *(["--force"] if force else []), cid, check=check)

    def state(self, cid):
        """The parsed state document, or None when the runtime reports an error."""
        res = self.cmd("state", cid)
        if not res.ok:
            return None
        st = json.loads(res.stdout)
        if isinstance(st.get("pid"), int) and st["pid"] > 0:
            self.seen_pids.add((st["pid"], process_start_time(st["pid"])))
        return st

    def status(self, cid):
        st = self.state(cid)
        return st["status"] if st else None

    def wait_status(self, cid, wanted):
        """Poll until the container reaches a status (or disappears when
        wanted is None); returns the last status seen."""
        deadline = time.monotonic() + WAIT_LIMIT
        while True:
            status = self.status(cid)
            if status == wanted or time.monotonic() > deadline:
                return status
            time.sleep(0.05)


def wait_for_path(path, present=True):
    deadline = time.monotonic() + WAIT_LIMIT
    while Path(path).exists() != present and time.monotonic() < deadline:
        time.sleep(0.05)
    return Path(path).exists() == present


def base_config(cid, rootfs, results_dir):
    """A runc-like default config: every namespace but user, read-only root,
    the results directory at /tmp, and the cgroup under the suite's parent."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "true"],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "conformance",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": RESULTS_IN_CONTAINER, "type": "bind", "source": str(results_dir),
             "options": ["rbind", "rw"]},
        ],
        "linux": {
            "cgroupsPath": f"/{CGROUP_PARENT}/{cid}",
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        },
    }


DEFAULT_CAPS = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")


class Bundle:
    """A bundle directory with a config.json the test may edit before create.

    `results` is a host directory the container sees at /tmp; `stdout_path`
    collects the container's stdout and stderr are discarded with create's.
    """

    def __init__(self, workdir, cid, rootfs=BUSYBOX_ROOTFS):
        self.dir = Path(workdir) / f"bundle-{cid}"
        self.dir.mkdir(parents=True)
        self.dir.chmod(0o755)
        self.results = self.dir / "results"
        self.results.mkdir()
        # World-writable so a container user mapped to any host uid can report.
        self.results.chmod(0o1777)
        self.stdout_path = self.dir / "stdout"
        self.id = cid
        self.config = base_config(cid, rootfs, self.results)

    @property
    def path(self):
        return str(self.dir)

    def script(self, text):
        self.config["process"]["args"] = ["sh", "-c", text]
        return self

    def write(self):
        (self.dir / "config.json").write_text(json.dumps(self.config, indent=2))
        return self

    def stdout(self):
        return self.stdout_path.read_text() if self.stdout_path.exists() else ""

    def result(self, name):
        p = self.results / name
        return p.read_text() if p.exists() else None

    def with_rootfs(self, rootfs):
        self.config["root"]["path"] = str(rootfs)
        return self


def copy_rootfs(dest):
    """A private, world-traversable copy of the busybox rootfs for tests that
    write into the root or run as a non-root (or mapped) user, which the
    shared rootfs (mode 700) would keep out."""
    shutil.copytree(BUSYBOX_ROOTFS, dest, symlinks=True)
    Path(dest).chmod(0o755)
    return Path(dest)


# --- leftovers ------------------------------------------------------------------

def process_start_time(pid):
    """The start time of a live process; None when it is gone or a zombie
    (a container's init can stay unreaped for a while after it exits)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def kill_seen(seen_pids):
    """SIGKILL the recorded processes still alive (same pid, same start time)."""
    killed = []
    for pid, start in seen_pids:
        if start is not None and process_start_time(pid) == start:
            _signal(pid)
            killed.append(pid)
    return killed


def kill_mentioning(marker):
    """SIGKILL processes whose command line names `marker` (a test's private
    directory): a runtime's forked helpers that outlived a failed command."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            _signal(int(entry.name))
            killed.append(int(entry.name))
    return killed


def mounts_under(*prefixes):
    """Host mount points inside any of the given directories, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(p) or point.startswith(str(p) + "/") for p in prefixes):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount(point):
    subprocess.run(["umount", "-l", point], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _signal(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- cgroups -----------------------------------------------------------------

def cgroup_unified():
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def cgroup_dirs_for(cid):
    """Every directory the cgroupsPath of `cid` maps to, in any hierarchy."""
    rel = Path(CGROUP_PARENT) / cid
    if cgroup_unified():
        return [CGROUP_ROOT / rel]
    dirs = []
    for hier in sorted(CGROUP_ROOT.iterdir()):
        if hier.is_dir() and not hier.is_symlink():
            dirs.append(hier / rel)
    return dirs


def existing_cgroup_dirs(cid):
    return [d for d in cgroup_dirs_for(cid) if d.exists()]


def process_cgroup(pid, controller):
    """The cgroup path of `pid` for a v1 controller, or the v2 path."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if cgroup_unified() and ctrls == "":
            return CGROUP_ROOT / path.lstrip("/")
        if controller in ctrls.split(","):
            return CGROUP_ROOT / ctrls / path.lstrip("/")
    return None


def remove_cgroup_tree(directory):
    """Kill what is left in a leaked cgroup and remove it, deepest first."""
    if not directory.exists():
        return
    for sub in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        _empty_and_rmdir(sub)
    _empty_and_rmdir(directory)


def _empty_and_rmdir(directory):
    # Killed processes take a moment to leave, and a shell loop may fork
    # again in between, so kill until the directory can go.
    deadline = time.monotonic() + 10
    while True:
        try:
            for pid in (directory / "cgroup.procs").read_text().split():
                _signal(int(pid))
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def sweep_dead_runs():
    """Clean up after earlier runs of the suite that were killed before their
    teardown: their processes, cgroups, mounts and scratch directories. Only
    runs whose pytest process is gone are touched."""
    def dead(pid):
        return pid.isdigit() and not Path(f"/proc/{pid}").exists()

    for d in SCRATCH_BASE.glob("conformance-*"):
        if dead(d.name.split("-", 1)[1]):
            kill_mentioning(f"{d}/")
            for point in mounts_under(d):
                unmount(point)
            shutil.rmtree(d, ignore_errors=True)
    for parent in suite_cgroup_parents():
        for sub in parent.glob("conf-*-*") if parent.is_dir() else ():
            if dead(sub.name.split("-")[1]):
                remove_cgroup_tree(sub)


def suite_cgroup_parents():
    if cgroup_unified():
        return [CGROUP_ROOT / CGROUP_PARENT]
    return [h / CGROUP_PARENT for h in CGROUP_ROOT.iterdir() if h.is_dir()]


def remove_suite_cgroup_parents():
    """Remove the suite's parent cgroups if no other run is using them."""
    for t in suite_cgroup_parents():
        try:
            t.rmdir()
        except OSError:
            pass


def host_ns(kind):
    return os.readlink(f"/proc/self/ns/{kind}")

