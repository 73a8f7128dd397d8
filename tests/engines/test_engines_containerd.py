"""containerd's runc v2 shim (io.containerd.runc.v2) driving the runtime under
test, through `ctr run --runc-binary`."""
import json
import os
import re
import uuid

import pytest

from engines_support import IMAGE, NAMESPACE, SLEEPER, run_in_pty, wait_for

pytestmark = [pytest.mark.engines, pytest.mark.root]


def name():
    return "ocirun-test-" + uuid.uuid4().hex[:8]


def start(ctr, cmd=SLEEPER):
    """`ctr run -d` whose output goes to a file, returned with the container id."""
    cid = name()
    log = ctr.base / f"{cid}.log"
    ctr.run("-d", "--log-uri", f"file://{log}", IMAGE, cid, *cmd, check=True)
    wait_for(lambda: log.exists() and "ready" in log.read_text(), f"{cid} to start")
    return cid, log


def task(ctr, cid):
    """(pid, status) of CID's task as `ctr tasks ls` shows it."""
    for line in ctr.out("tasks", "ls").splitlines()[1:]:
        fields = line.split()
        if fields[0] == cid:
            return int(fields[1]), fields[2]
    raise AssertionError(f"no task {cid}")


def remove(ctr, cid):
    ctr("tasks", "kill", "--signal", "SIGKILL", cid)
    wait_for(lambda: task(ctr, cid)[1] == "STOPPED", f"{cid} to stop")
    ctr("tasks", "delete", cid, check=True)
    ctr("containers", "delete", cid, check=True)


def freezer_state(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        path = next(line.split(":", 2)[2].strip() for line in f if ":freezer:" in line)
    with open(f"/sys/fs/cgroup/freezer{path}/freezer.state") as f:
        return f.read().strip()


def test_run_with_exit_code(ctr):
    result = ctr.run("--rm", IMAGE, name(), "sh", "-c", "echo hello; exit 3")
    assert (result.returncode, result.stdout) == (3, "hello\n"), result.stderr
    assert ctr.containers() == []


def test_run_puts_the_container_in_its_cgroup(ctr):
    cid = name()
    out = ctr.run("--rm", IMAGE, cid, "cat", "/proc/self/cgroup", check=True).stdout
    # ctr puts a container in /<namespace>/<id>: the namespace names our cgroup parent.
    assert f":memory:/{NAMESPACE}/{cid}\n" in out


def test_run_with_tty(ctr):
    code, screen = run_in_pty(["ctr", "run", *ctr.runtime_flags(), "--rm", "--tty", IMAGE, name(),
                               "sh"], ctr.env, send=b"tty; echo answer=$((6*7)); exit 4\r")
    assert code == 4, screen
    assert "/dev/pts/0" in screen and "answer=42" in screen, screen


def test_task_exec(ctr):
    cid, _ = start(ctr)
    pid, _ = task(ctr, cid)
    # The exec'd process joins the container's PID namespace and cgroup.
    assert "while :" in ctr.out("tasks", "exec", "--exec-id", "e1", cid,
                                "cat", "/proc/1/cmdline").replace("\0", " ")
    with open(f"/proc/{pid}/cgroup") as f:
        assert sorted(ctr.out("tasks", "exec", "--exec-id", "e2", cid,
                              "cat", "/proc/self/cgroup").splitlines()) == sorted(f.read().splitlines())
    assert ctr("tasks", "exec", "--exec-id", "e3", cid, "sh", "-c", "exit 5").returncode == 5
    assert ctr.out("tasks", "exec", "--exec-id", "e4", "--cwd", "/tmp", "--user", "65534", cid,
                   "sh", "-c", "pwd; id -u") == "/tmp\n65534"
    failed = ctr("tasks", "exec", "--exec-id", "e5", cid, "/no/such/program")
    assert failed.returncode != 0 and "/no/such/program" in failed.stderr, failed.stderr
    remove(ctr, cid)


def test_task_exec_with_tty(ctr):
    cid, _ = start(ctr)
    code, screen = run_in_pty(["ctr", "tasks", "exec", "--exec-id", "t1", "--tty", cid,
                               "sh", "-c", "tty; echo answer=$((6*7)); exit 6"], ctr.env)
    assert code == 6, screen
    assert "/dev/pts/" in screen and "answer=42" in screen, screen
    remove(ctr, cid)


def test_kill_with_signal(ctr):
    cid, log = start(ctr, ["sh", "-c", "trap 'echo got USR1' USR1; echo ready; "
                                       "while :; do sleep 0.1; done"])
    ctr("tasks", "kill", "--signal", "SIGUSR1", cid, check=True)
    wait_for(lambda: "got USR1" in log.read_text(), "the USR1 trap")
    assert task(ctr, cid)[1] == "RUNNING"
    ctr("tasks", "kill", "--signal", "SIGKILL", cid, check=True)
    wait_for(lambda: task(ctr, cid)[1] == "STOPPED", "SIGKILL to stop the task")
    deleted = ctr("tasks", "delete", cid, check=True)
    assert "exit code 137" in deleted.stderr, deleted.stderr
    ctr("containers", "delete", cid, check=True)


def test_ps(ctr):
    cid, _ = start(ctr)
    pid, status = task(ctr, cid)
    assert status == "RUNNING"
    pids = [int(line.split()[0]) for line in ctr.out("tasks", "ps", cid).splitlines()[1:]]
    assert pid in pids
    with open(f"/proc/{pid}/cmdline") as f:
        assert "while :" in f.read().replace("\0", " ")
    remove(ctr, cid)


def test_pause_resume(ctr):
    cid, log = start(ctr)
    pid, _ = task(ctr, cid)
    ctr("tasks", "pause", cid, check=True)
    assert task(ctr, cid)[1] == "PAUSED"
    assert freezer_state(pid) == "FROZEN"
    ctr("tasks", "resume", cid, check=True)
    assert task(ctr, cid)[1] == "RUNNING"
    assert freezer_state(pid) == "THAWED"
    remove(ctr, cid)


def test_metrics(ctr):
    cid, _ = start(ctr)
    text = ctr.out("tasks", "metrics", cid)
    assert re.search(r"^pids.current\s+[1-9]", text, re.M), text
    assert re.search(r"^memory.usage_in_bytes\s+[1-9]", text, re.M), text
    metrics = json.loads(ctr.out("tasks", "metrics", "--format", "json", cid))
    assert metrics["pids"]["current"] >= 1
    remove(ctr, cid)


def test_exit_while_watched_and_delete(ctr):
    cid, _ = start(ctr, ["sh", "-c", "echo ready; sleep 0.5; exit 7"])
    pid, _ = task(ctr, cid)
    with open(f"/proc/{pid}/cgroup") as f:
        memory = next(line.split(":", 2)[2].strip() for line in f if ":memory:" in line)
    # Nobody kills it: the shim notices the exit by itself.
    wait_for(lambda: task(ctr, cid)[1] == "STOPPED", "the task to exit")
    deleted = ctr("tasks", "delete", cid, check=True)
    assert "exit code 7" in deleted.stderr, deleted.stderr
    assert not os.path.exists(f"/sys/fs/cgroup/memory{memory}")
    assert not (ctr.base / f"{ctr.runtime}-root" / cid).exists()
    ctr("containers", "delete", cid, check=True)
    assert ctr.containers() == []


def test_runtime_error_reaches_ctr(ctr):
    # The shim reads the runtime's --log-format json log to explain a failure.
    result = ctr.run("--rm", IMAGE, name(), "/no/such/program")
    assert result.returncode != 0
    assert "OCI runtime create failed" in result.stderr, result.stderr
    assert "/no/such/program" in result.stderr, result.stderr
