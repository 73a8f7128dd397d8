"""ocirun exec: a second process inside a running container."""

import json
import os

import pytest

pytestmark = pytest.mark.root


@pytest.fixture
def running(ocirun, make_bundle):
    bundle = make_bundle(args=["sleep", "1000"], hostname="exec-box")
    ocirun("run", "-d", "ex", "-b", bundle, check=True)
    yield "ex"
    ocirun("delete", "--force", "ex", check=True)


def test_exec_joins_the_container(ocirun, running):
    init_pid = json.loads(ocirun("state", running, check=True).stdout)["pid"]
    result = ocirun("exec", running, "sh", "-c", "hostname; readlink /proc/self/ns/pid; echo $$", check=True)
    hostname, pid_ns, pid = result.stdout.split()
    assert hostname == "exec-box"
    assert pid_ns == os.readlink(f"/proc/{init_pid}/ns/pid")
    assert int(pid) > 1  # a pid of the container's namespace, not the host's


def test_exec_exit_codes_and_errors(ocirun, running):
    assert ocirun("exec", running, "sh", "-c", "exit 5").returncode == 5
    missing = ocirun("exec", running, "no-such-tool")
    assert missing.returncode == 127
    assert 'exec: "no-such-tool": executable file not found in $PATH' in missing.stderr


def test_exec_process_file_user_env_cwd(ocirun, running, tmp_path):
    process = {"args": ["sh", "-c", "id -u; echo $COLOUR; pwd"], "cwd": "/tmp",
               "env": ["PATH=/bin", "COLOUR=green"], "user": {"uid": 1, "gid": 1}}
    (tmp_path / "process.json").write_text(json.dumps(process))
    result = ocirun("exec", "--process", tmp_path / "process.json", running, check=True)
    assert result.stdout.split() == ["1", "green", "/tmp"]


def test_exec_detached_writes_pid_file(ocirun, running, tmp_path):
    pid_file = tmp_path / "pid"
    ocirun("exec", "--detach", "--pid-file", pid_file, running, "sleep", "1000", check=True)
    pid = int(pid_file.read_text())
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"


def test_exec_into_stopped_or_paused_container(ocirun, make_bundle, running):
    ocirun("pause", running, check=True)
    paused = ocirun("exec", running, "true")
    assert paused.returncode != 0 and "paused" in paused.stderr
    ocirun("resume", running, check=True)
    ocirun("run", "-d", "done", "-b", make_bundle(args=["true"]), check=True)
    for _ in range(200):
        if json.loads(ocirun("state", "done", check=True).stdout)["status"] == "stopped":
            break
    stopped = ocirun("exec", "done", "true")
    assert stopped.returncode != 0 and "stopped" in stopped.stderr
    ocirun("delete", "done", check=True)
