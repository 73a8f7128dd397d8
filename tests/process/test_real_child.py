"""The process steps for real: a forked child applies them and execs busybox,
whose view of itself (/proc/self/status, id, ulimit) is what we check."""

import fcntl
import os

from process_helpers import base_spec, run_in_child, status_field

CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE, CAP_SYS_ADMIN = 0, 5, 10, 21


def test_capabilities_bounding_effective_ambient_and_no_new_privs():
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    spec = base_spec(["cat", "/proc/self/status"], noNewPrivileges=True,
                     user={"uid": 1000, "gid": 1000},
                     capabilities={"bounding": caps, "effective": caps, "permitted": caps,
                                   "inheritable": caps, "ambient": ["CAP_NET_BIND_SERVICE"]})
    code, out = run_in_child(spec)
    assert code == 0, out
    expected = (1 << CAP_CHOWN) | (1 << CAP_KILL) | (1 << CAP_NET_BIND_SERVICE)
    assert int(status_field(out, "CapBnd"), 16) == expected
    assert int(status_field(out, "CapAmb"), 16) == 1 << CAP_NET_BIND_SERVICE
    # A non-root exec keeps only the ambient capabilities.
    assert int(status_field(out, "CapEff"), 16) == 1 << CAP_NET_BIND_SERVICE
    assert status_field(out, "NoNewPrivs") == "1"
    assert status_field(out, "Uid").split()[:2] == ["1000", "1000"]


def test_root_process_gets_the_bounding_set_and_no_seccomp_by_default():
    caps = ["CAP_CHOWN", "CAP_SYS_ADMIN"]
    spec = base_spec(["cat", "/proc/self/status"],
                     capabilities={"bounding": caps, "effective": caps, "permitted": caps})
    code, out = run_in_child(spec)
    assert code == 0, out
    assert int(status_field(out, "CapEff"), 16) == (1 << CAP_CHOWN) | (1 << CAP_SYS_ADMIN)
    assert status_field(out, "NoNewPrivs") == "0"
    assert status_field(out, "Seccomp") == "0"


def test_user_groups_and_umask():
    spec = base_spec(["sh", "-c", "id; umask"],
                     user={"uid": 1234, "gid": 567, "additionalGids": [10, 20], "umask": 0o027})
    code, out = run_in_child(spec)
    assert code == 0, out
    assert "uid=1234" in out and "gid=567" in out
    assert "groups=10,20" in out or "groups=10(" in out, out
    assert out.strip().splitlines()[-1] == "0027"


def test_rlimits_and_home_default():
    spec = base_spec(["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c; echo HOME=$HOME"],
                     rlimits=[{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                              {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}])
    code, out = run_in_child(spec)
    assert code == 0, out
    assert out.split() == ["512", "1024", "0", "HOME=/root"]


def test_cwd_is_created_and_entered():
    spec = base_spec(["pwd"], cwd="/tmp/a/b")
    code, out = run_in_child(spec)
    assert code == 0, out
    assert out.strip() == "/tmp/a/b"


def test_oom_score_adj_and_io_priority():
    spec = base_spec(["sh", "-c", "cat /proc/self/oom_score_adj; ionice -p $$"], oomScoreAdj=500,
                     ioPriority={"class": "IOPRIO_CLASS_IDLE", "priority": 0})
    code, out = run_in_child(spec)
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0] == "500"
    assert "idle" in lines[1].lower(), out


def test_scheduler_and_personality():
    spec = base_spec(["sh", "-c", "cat /proc/self/sched | grep -E '^policy'; uname -m"],
                     scheduler={"policy": "SCHED_BATCH", "nice": 5})
    spec["linux"]["personality"] = {"domain": "LINUX32"}
    code, out = run_in_child(spec)
    assert code == 0, out
    assert out.split()[-1] in ("i686", "i386", "armv8l", "armv7l"), out
    assert "3" == out.split()[out.split().index(":") + 1], out


def test_path_lookup_failures_are_worded_like_runc():
    code, out = run_in_child(base_spec(["no-such-program"]))
    assert code == 99
    assert 'exec: "no-such-program": executable file not found in $PATH' in out
    code, out = run_in_child(base_spec(["/etc/passwd"]))
    assert code == 99
    assert 'exec: "/etc/passwd": permission denied' in out


def test_runtime_fds_do_not_reach_the_container():
    leaked = os.open("/", os.O_RDONLY | os.O_DIRECTORY)  # inheritable in the child only via fork
    try:
        code, out = run_in_child(base_spec(["ls", "/proc/self/fd"]))
    finally:
        os.close(leaked)
    assert code == 0, out
    # ls's own directory fd is 3.
    assert sorted(int(x) for x in out.split()) == [0, 1, 2, 3], out


def test_preserved_fds_stay():
    r, w = os.pipe()
    kept = fcntl.fcntl(r, fcntl.F_DUPFD, 100)  # clear of pytest's own descriptors
    os.set_inheritable(kept, True)
    try:
        code, out = run_in_child(base_spec(["ls", "/proc/self/fd"]), keep_open=[kept])
    finally:
        for fd in (kept, r, w):
            os.close(fd)
    assert code == 0, out
    assert kept in [int(x) for x in out.split()], out


def test_cwd_through_a_runtime_fd_is_refused():
    leaked = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        code, out = run_in_child(base_spec(["pwd"], cwd=f"/proc/self/fd/{leaked}"))
    finally:
        os.close(leaked)
    assert code == 99
    assert "CHILD-ERROR: config.json: process.cwd:" in out, out


def test_executable_through_a_runtime_fd_is_refused():
    leaked = os.open("/usr/bin", os.O_RDONLY | os.O_DIRECTORY)
    try:
        code, out = run_in_child(base_spec([f"/proc/self/fd/{leaked}/true"]))
    finally:
        os.close(leaked)
    assert code == 99
    assert "leads outside of the container's root" in out, out
