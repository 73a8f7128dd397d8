"""Process settings checked from inside real containers started with `ocirun run`,
including hostile bundles (fd leak probes, /proc/self/fd escapes) and bad input."""

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from process_helpers import BUSYBOX_ROOTFS, status_field

from ocirun.specgen import default_spec

OCIRUN = str(Path(sys.executable).parent / "ocirun")


@pytest.fixture
def state_root():
    root = Path("/run/ocirun-test") / f"process-{uuid.uuid4().hex[:8]}"
    yield root
    leftovers = sorted(os.listdir(root)) if root.exists() else []
    for container_id in leftovers:
        subprocess.run([OCIRUN, "--root", str(root), "delete", "--force", container_id],
                       capture_output=True, timeout=60, check=False)
    if root.exists():
        root.rmdir()
    assert not leftovers, f"test left containers behind: {leftovers}"


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    """A private copy of the busybox rootfs: the hostile bundles here must not be able
    to leave anything in the shared one, and it is made searchable by non-root users."""
    copy = tmp_path_factory.mktemp("process-rootfs") / "rootfs"
    subprocess.run(["cp", "-a", str(BUSYBOX_ROOTFS), str(copy)], check=True)
    copy.chmod(0o755)
    yield copy
    shutil.rmtree(copy)


@pytest.fixture
def run(state_root, tmp_path, rootfs):
    """run(args, process changes..., linux=..., preserve_fds=..., fd3=...) -> CompletedProcess of `ocirun run`."""
    def run_container(args, linux=None, extra_fds=(), preserve_fds=0, fd3=None, **process_changes):
        spec = default_spec()
        spec["process"].update(terminal=False, args=list(args), **process_changes)
        spec["root"] = {"path": str(rootfs), "readonly": True}
        spec["linux"].pop("cgroupsPath", None)
        spec["linux"].update(linux or {})
        bundle = tmp_path / f"bundle-{uuid.uuid4().hex[:6]}"
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(spec))
        command = [OCIRUN, "--root", str(state_root), "run", "--bundle", str(bundle)]
        if preserve_fds:
            command += ["--preserve-fds", str(preserve_fds)]
        command.append(f"process-{uuid.uuid4().hex[:8]}")
        if fd3 is not None:
            # Put the fd at number 3, where --preserve-fds expects it.
            move_to_3 = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.execv(sys.argv[2], sys.argv[2:])"
            command = [sys.executable, "-c", move_to_3, str(fd3), *command]
            extra_fds = (*extra_fds, fd3)
        return subprocess.run(command, capture_output=True, text=True, timeout=120, pass_fds=extra_fds,
                              check=False)
    return run_container


def assert_nothing_left(state_root):
    assert not state_root.exists() or not os.listdir(state_root)


def test_capabilities_no_new_privs_and_seccomp_seen_from_inside(run):
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]
    result = run(["sh", "-c", "grep -E '^(Cap|NoNew|Seccomp)' /proc/self/status; mkdir /tmp/x; echo rc=$?"],
                 capabilities={s: caps for s in ("bounding", "effective", "permitted")},
                 noNewPrivileges=True,
                 linux={"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                     {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]}})
    assert result.returncode == 0, result.stderr
    expected = (1 << 0) | (1 << 5) | (1 << 38) | (1 << 39) | (1 << 40)
    assert int(status_field(result.stdout, "CapBnd"), 16) == expected
    assert int(status_field(result.stdout, "CapEff"), 16) == expected
    assert status_field(result.stdout, "NoNewPrivs") == "1"
    assert status_field(result.stdout, "Seccomp") == "2"
    assert "Invalid cross-device link" in result.stderr + result.stdout and "rc=1" in result.stdout


def test_rlimits_seen_from_inside(run):
    result = run(["sh", "-c", "ulimit -n; ulimit -Hn"],
                 rlimits=[{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["321", "654"]


def test_no_runtime_fd_reaches_the_container(run):
    # An fd the caller leaks into ocirun (not asked for with --preserve-fds) must not get in either.
    leaked = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = run(["ls", "/proc/self/fd"], extra_fds=(leaked,))
    finally:
        os.close(leaked)
    assert result.returncode == 0, result.stderr
    # 3 is the directory ls itself opened to list.
    assert sorted(map(int, result.stdout.split())) == [0, 1, 2, 3], result.stdout


def test_preserved_fd_reaches_the_container(run):
    r, w = os.pipe()
    os.write(w, b"through-fd-3")
    os.close(w)
    try:
        result = run(["sh", "-c", "ls /proc/self/fd; cat <&3"], fd3=r, preserve_fds=1)
    finally:
        os.close(r)
    assert result.returncode == 0, result.stderr
    *fds, text = result.stdout.split()
    assert text == "through-fd-3"
    assert sorted(map(int, fds)) == [0, 1, 2, 3, 4], result.stdout


def test_cwd_through_proc_self_fd_is_refused(run, state_root):
    for fd in range(3, 12):
        result = run(["pwd"], cwd=f"/proc/self/fd/{fd}")
        assert result.returncode != 0, (fd, result.stdout)
        assert "process.cwd" in result.stderr, result.stderr
    assert_nothing_left(state_root)


def test_executable_through_proc_self_fd_is_refused(run, state_root):
    for fd in range(3, 12):
        result = run([f"/proc/self/fd/{fd}/../../../../bin/sh", "-c", "echo escaped"])
        assert result.returncode != 0 and "escaped" not in result.stdout, (fd, result.stdout)
    assert_nothing_left(state_root)


def test_rlimit_above_hard_limit_is_one_clear_line(run, state_root):
    result = run(["true"], rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1 << 40, "hard": 1 << 40}])
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "process.rlimits[0]" in lines[0] and "CAP_SYS_RESOURCE" in lines[0]
    assert_nothing_left(state_root)


def test_unknown_seccomp_action_is_one_clear_line(run, state_root):
    result = run(["true"], linux={"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_EXPLODE"}]}})
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "linux.seccomp.syscalls[0].action" in lines[0], result.stderr
    assert_nothing_left(state_root)


def test_unknown_capability_is_warned_about_and_skipped(run):
    result = run(["sh", "-c", "grep CapBnd /proc/self/status"],
                 capabilities={"bounding": ["CAP_CHOWN", "CAP_MAKE_COFFEE"], "effective": ["CAP_CHOWN"],
                               "permitted": ["CAP_CHOWN"]})
    assert result.returncode == 0, result.stderr
    assert "CAP_MAKE_COFFEE" in result.stderr
    assert int(status_field(result.stdout, "CapBnd"), 16) == 1


def test_non_root_user_with_groups_umask_and_ambient_capability(run):
    caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    result = run(["sh", "-c", "id; umask; grep -E '^Cap(Eff|Amb)' /proc/self/status; pwd"],
                 user={"uid": 1000, "gid": 1000, "additionalGids": [4, 24], "umask": 0o077},
                 cwd="/home/app/work",
                 capabilities={"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps,
                               "ambient": ["CAP_NET_BIND_SERVICE"]})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "uid=1000 gid=1000 groups=4,24" in out.replace("(", " ").split("\n")[0] or \
        ("uid=1000" in out and "groups=4" in out and "24" in out), out
    assert "0077" in out
    assert int(status_field(out, "CapAmb"), 16) == 1 << 10
    assert int(status_field(out, "CapEff"), 16) == 1 << 10
    assert out.strip().splitlines()[-1] == "/home/app/work"
