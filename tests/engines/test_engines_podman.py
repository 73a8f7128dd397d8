"""podman (through conmon) driving the runtime under test, as users run it."""
import json
import re
import subprocess
import uuid

import pytest

from engines_support import (APP_IMAGE, CGROUP_PARENT, IMAGE, RUNTIMES, SLEEPER,
                             run_in_pty, wait_for)

pytestmark = [pytest.mark.engines, pytest.mark.root]


def name():
    return "ocirun-test-" + uuid.uuid4().hex[:8]


def start(podman, *args, image=IMAGE, cmd=SLEEPER):
    """`podman run -d` that waits until the container's command is up."""
    cid = name()
    podman("run", "-d", "--name", cid, *args, image, *cmd, check=True)
    wait_for(lambda: "ready" in podman("logs", cid).stdout, f"{cid} to start")
    return cid


def run(podman, *args, cmd, image=IMAGE):
    return podman("run", "--rm", *args, image, *cmd)


def output(podman, *args, cmd, image=IMAGE):
    result = run(podman, *args, cmd=cmd, image=image)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def cgroup_file(pid, controller, filename):
    """A cgroup v1 file of process PID, read on the host."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                with open(f"/sys/fs/cgroup/{controller}{path}/{filename}") as g:
                    return g.read().strip()
    raise AssertionError(f"process {pid} has no {controller} cgroup")


def cap_eff(text):
    return int(re.search(r"^CapEff:\s*([0-9a-f]+)$", text, re.M).group(1), 16)


CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_CHOWN = 12, 21, 0


# --- lifecycle ---------------------------------------------------------------

def test_run_rm(podman):
    result = run(podman, cmd=["echo", "hello from busybox"])
    assert (result.returncode, result.stdout) == (0, "hello from busybox\n"), result.stderr
    assert podman.out("ps", "--all", "--quiet") == ""


def test_runtime_given_by_absolute_path(podman, runtime):
    result = podman("run", "--rm", IMAGE, "true", runtime=RUNTIMES[runtime])
    assert result.returncode == 0, result.stderr


def test_run_detached_logs_stop_rm(podman):
    cid = start(podman, cmd=["sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo ready; "
                                         "while :; do sleep 0.1; done"])
    assert podman.inspect(cid, "{{.State.Status}}") == "running"
    podman("stop", "--time", "20", cid, check=True)
    assert "got TERM" in podman.out("logs", cid)
    assert podman.inspect(cid, "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
    podman("rm", cid, check=True)
    assert podman("inspect", cid).returncode != 0


def test_stop_escalates_to_sigkill(podman):
    # PID 1 without a TERM handler ignores TERM: only the SIGKILL after the timeout stops it.
    cid = start(podman)
    podman("stop", "--time", "1", cid, check=True)
    assert podman.inspect(cid, "{{.State.ExitCode}}") == "137"
    podman("rm", cid, check=True)


def test_kill_with_signal(podman):
    cid = start(podman, cmd=["sh", "-c", "trap 'echo got USR1' USR1; echo ready; "
                                         "while :; do sleep 0.1; done"])
    podman("kill", "--signal", "USR1", cid, check=True)
    wait_for(lambda: "got USR1" in podman("logs", cid).stdout, "the USR1 trap")
    assert podman.inspect(cid, "{{.State.Status}}") == "running"
    podman("kill", cid, check=True)
    assert podman.out("wait", cid) == "137"
    podman("rm", cid, check=True)


def test_exec(podman):
    cid = start(podman, "--env", "FROM_RUN=1")
    assert podman.out("exec", cid, "cat", "/etc/hostname") == podman.inspect(cid, "{{.Config.Hostname}}")
    assert podman.out("exec", cid, "sh", "-c", "echo $FROM_RUN") == "1"
    assert podman.out("exec", "--env", "E=x", "--workdir", "/tmp", "--user", "65534:65534", cid,
                      "sh", "-c", "echo $E $(pwd) $(id -u):$(id -g)") == "x /tmp 65534:65534"
    assert podman("exec", cid, "sh", "-c", "exit 5").returncode == 5
    missing = podman("exec", cid, "/no/such/program")
    assert missing.returncode == 127, missing.stderr
    assert "/no/such/program" in missing.stderr
    # The exec'd process shares the container's PID namespace and cgroup.
    assert "while :" in podman.out("exec", cid, "cat", "/proc/1/cmdline").replace("\0", " ")
    pid = podman.inspect(cid, "{{.State.Pid}}")
    exec_cgroup = podman.out("exec", cid, "cat", "/proc/self/cgroup")
    with open(f"/proc/{pid}/cgroup") as f:
        assert sorted(exec_cgroup.splitlines()) == sorted(f.read().splitlines())
    podman.remove_all()


def test_exec_interactive_tty(podman):
    cid = start(podman)
    code, screen = run_in_pty(["podman", "--runtime", podman.runtime, "exec", "-it", cid,
                               "sh", "-c", "tty; echo answer=$((6*7)); exit 3"], podman.env)
    assert code == 3, screen
    assert "/dev/pts/" in screen and "answer=42" in screen, screen
    podman.remove_all()


def test_run_interactive_tty(podman):
    code, screen = run_in_pty(
        ["podman", "--runtime", podman.runtime, "run", "-it", "--rm",
         f"--cgroup-parent=/{CGROUP_PARENT}", IMAGE, "sh"],
        podman.env, send=b"tty; stty size; echo answer=$((6*7)); exit 4\r")
    assert code == 4, screen
    assert "/dev/pts/0" in screen and "answer=42" in screen, screen


def test_pause_unpause(podman):
    cid = start(podman)
    podman("pause", cid, check=True)
    assert podman.inspect(cid, "{{.State.Status}}") == "paused"
    pid = podman.inspect(cid, "{{.State.Pid}}")
    assert cgroup_file(pid, "freezer", "freezer.state") == "FROZEN"
    podman("unpause", cid, check=True)
    assert podman.inspect(cid, "{{.State.Status}}") == "running"
    assert cgroup_file(pid, "freezer", "freezer.state") == "THAWED"
    assert podman.out("exec", cid, "echo", "thawed") == "thawed"
    podman.remove_all()


def test_top_and_ps(podman):
    cid = start(podman)
    assert "while :" in podman.out("top", cid)
    listed = podman.out("ps", "--format", "{{.Names}} {{.Status}}")
    assert re.search(rf"^{cid} Up", listed, re.M), listed
    podman.remove_all()


def test_inspect_state(podman):
    cid = start(podman)
    state = json.loads(podman.out("inspect", cid))[0]["State"]
    assert state["Status"] == "running" and state["Running"] is True
    assert state["OciVersion"]
    with open(f"/proc/{state['Pid']}/cmdline") as f:
        assert "while :" in f.read().replace("\0", " ")
    podman("kill", "--signal", "KILL", cid, check=True)
    podman("wait", cid, check=True)
    state = json.loads(podman.out("inspect", cid))[0]["State"]
    assert (state["Status"], state["Running"], state["ExitCode"], state["Pid"]) == \
        ("exited", False, 137, 0)
    podman.remove_all()


def test_wait(podman):
    cid = name()
    podman("run", "-d", "--name", cid, IMAGE, "sh", "-c", "sleep 0.5; exit 9", check=True)
    assert podman.out("wait", cid) == "9"
    assert podman.inspect(cid, "{{.State.ExitCode}}") == "9"
    podman.remove_all()


def test_restart(podman):
    cid = start(podman)
    first = podman.inspect(cid, "{{.State.Pid}}")
    podman("restart", "--time", "1", cid, check=True)
    assert podman.inspect(cid, "{{.State.Status}}") == "running"
    assert podman.inspect(cid, "{{.State.Pid}}") != first
    assert podman.out("exec", cid, "echo", "again") == "again"
    podman.remove_all()


# --- exit codes and errors ---------------------------------------------------

@pytest.mark.parametrize("code", [0, 1, 42])
def test_exit_code_of_the_command(podman, code):
    assert run(podman, cmd=["sh", "-c", f"exit {code}"]).returncode == code


def test_exit_125_for_podman_errors(podman):
    assert run(podman, "--memory", "lots", cmd=["true"]).returncode == 125


def test_exit_126_not_executable(podman):
    result = run(podman, cmd=["/etc/passwd"])
    assert result.returncode == 126, result.stderr
    assert "/etc/passwd" in result.stderr


def test_exit_127_not_found(podman):
    result = run(podman, cmd=["/no/such/program"])
    assert result.returncode == 127, result.stderr
    assert "/no/such/program" in result.stderr


def test_exit_137_when_killed(podman):
    cid = name()
    proc = subprocess.Popen(["podman", "--runtime", podman.runtime, "run", "--name", cid,
                             f"--cgroup-parent=/{CGROUP_PARENT}", IMAGE, *SLEEPER],
                            env=podman.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: podman("inspect", "--format", "{{.State.Running}}", cid).stdout.strip()
                 == "true", "the container to run")
        podman("kill", cid, check=True)
        assert proc.wait(timeout=60) == 137
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    podman.remove_all()


def test_runtime_refusal_is_shown(podman):
    # A hard limit above the host's needs CAP_SYS_RESOURCE: podman accepts the
    # option, the runtime must refuse it and podman must say why.
    result = run(podman, "--ulimit", "nofile=1048576:1048576", cmd=["true"])
    assert result.returncode == 126, result.stderr
    assert re.search(r"rlimit|nofile", result.stderr, re.I), result.stderr


# --- options that reach the runtime -----------------------------------------

def test_user(podman):
    assert output(podman, "--user", "1000:1000", cmd=["sh", "-c", "echo $(id -u):$(id -g)"]) \
        == "1000:1000"
    assert output(podman, cmd=["id", "-un"], image=APP_IMAGE) == "app"
    assert output(podman, "--user", "app", cmd=["sh", "-c", "echo $(id -u) $HOME"],
                  image=APP_IMAGE) == "1000 /home/app"
    assert output(podman, "--user", "root", cmd=["id", "-u"], image=APP_IMAGE) == "0"


def test_workdir_env_hostname(podman):
    assert output(podman, "--workdir", "/var", "--env", "GREETING=hi there",
                  "--hostname", "box.example", cmd=["sh", "-c", "pwd; echo $GREETING; hostname"]) \
        == "/var\nhi there\nbox.example"


def test_bind_volumes(podman, tmp_path):
    (tmp_path / "in.txt").write_text("from host\n")
    ro = tmp_path / "ro"
    ro.mkdir()
    assert output(podman, "-v", f"{tmp_path}:/data", "-v", f"{ro}:/ro:ro",
                  cmd=["sh", "-c", "cat /data/in.txt; echo from container > /data/out.txt; "
                                   "touch /ro/x 2>/dev/null || echo ro refused"]) \
        == "from host\nro refused"
    assert (tmp_path / "out.txt").read_text() == "from container\n"
    assert not (ro / "x").exists()


def test_tmpfs(podman):
    mounts = output(podman, "--tmpfs", "/scratch:size=1m", cmd=["cat", "/proc/mounts"])
    assert re.search(r"^tmpfs /scratch tmpfs .*size=1024k", mounts, re.M), mounts


def test_read_only(podman):
    result = run(podman, "--read-only", cmd=["sh", "-c", "touch /etc/x || echo refused; "
                                                        "touch /tmp/ok && echo tmp writable"])
    assert result.stdout.split("\n")[:2] == ["refused", "tmp writable"], result.stderr


def test_cap_add_and_drop(podman):
    default = cap_eff(output(podman, cmd=["cat", "/proc/self/status"]))
    assert not default & (1 << CAP_NET_ADMIN) and default & (1 << CAP_CHOWN)
    added = cap_eff(output(podman, "--cap-add", "NET_ADMIN", cmd=["cat", "/proc/self/status"]))
    assert added == default | (1 << CAP_NET_ADMIN)
    dropped = cap_eff(output(podman, "--cap-drop", "CHOWN", cmd=["cat", "/proc/self/status"]))
    assert dropped == default & ~(1 << CAP_CHOWN)
    assert cap_eff(output(podman, "--cap-drop", "ALL", cmd=["cat", "/proc/self/status"])) == 0
    assert "Operation not permitted" in run(podman, "--cap-drop", "ALL",
                                            cmd=["chown", "1", "/tmp"]).stderr


def test_privileged(podman):
    status = output(podman, "--privileged", cmd=["cat", "/proc/self/status"])
    assert cap_eff(status) & (1 << CAP_SYS_ADMIN)
    # Host devices appear and the device cgroup lets them be used.
    assert output(podman, "--privileged", cmd=["sh", "-c", "ls /dev/kmsg && head -c 3 /dev/zero | wc -c"]) \
        == "/dev/kmsg\n3"
    assert "Seccomp:\t0" in status


def test_no_new_privileges(podman):
    assert "NoNewPrivs:\t0" in output(podman, cmd=["cat", "/proc/self/status"])
    assert "NoNewPrivs:\t1" in output(podman, "--security-opt", "no-new-privileges",
                                      cmd=["cat", "/proc/self/status"])


def test_seccomp_profile_file(podman, tmp_path):
    profile = tmp_path / "seccomp.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }))
    result = run(podman, "--security-opt", f"seccomp={profile}",
                 cmd=["sh", "-c", "grep Seccomp: /proc/self/status; mkdir /tmp/d"])
    assert result.returncode == 1
    assert "Seccomp:\t2" in result.stdout
    assert "Operation not permitted" in result.stderr
    assert run(podman, cmd=["mkdir", "/tmp/d"]).returncode == 0


def test_resource_limits(podman):
    cid = start(podman, "--memory", "64m", "--cpus", "0.5", "--pids-limit", "32")
    pid = podman.inspect(cid, "{{.State.Pid}}")
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    quota = int(cgroup_file(pid, "cpu", "cpu.cfs_quota_us"))
    period = int(cgroup_file(pid, "cpu", "cpu.cfs_period_us"))
    assert quota * 2 == period
    assert cgroup_file(pid, "pids", "pids.max") == "32"
    assert f"/{CGROUP_PARENT}/" in open(f"/proc/{pid}/cgroup").read()
    podman.remove_all()


def test_ulimit(podman):
    # --ulimit replaces the configured defaults, so nproc has to stay below the hard limit too.
    assert output(podman, "--ulimit", "nofile=512:768", "--ulimit", "nproc=500:600", cmd=["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u"]) \
        == "512\n768\n500"


def test_device(podman):
    # /dev/fuse is outside the default device allow-list: without --device,
    # even a node made by hand cannot be opened.
    listing = output(podman, "--device", "/dev/fuse:/dev/myfuse",
                     cmd=["sh", "-c", "stat -c '%t,%T' /dev/myfuse && true < /dev/myfuse && echo opened"])
    assert listing == "a,e5\nopened"
    denied = run(podman, cmd=["sh", "-c", "mknod /tmp/fuse c 10 229 && true < /tmp/fuse"])
    assert denied.returncode != 0
    assert "Operation not permitted" in denied.stderr


def test_init(podman):
    assert "podman-init" in output(podman, "--init", cmd=["cat", "/proc/1/cmdline"])
    # The init reaps and forwards: the command's exit code still comes through.
    assert run(podman, "--init", cmd=["sh", "-c", "exit 6"]).returncode == 6


def test_network_none(podman):
    links = output(podman, "--network", "none", cmd=["ip", "-o", "link"])
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]


def test_default_network(podman):
    addresses = output(podman, cmd=["ip", "-o", "-4", "addr", "show", "eth0"])
    assert re.search(r"inet \d+\.\d+\.\d+\.\d+/", addresses), addresses
