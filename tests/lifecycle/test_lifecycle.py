"""The OCI lifecycle through the real binary: create, start, state, kill, delete, run."""

import json
import os
import signal
import subprocess
import tempfile
import time

import pytest

from ocitest import OCIRUN

pytestmark = pytest.mark.root


def state_of(ocirun, container_id):
    result = ocirun("state", container_id, check=True)
    return json.loads(result.stdout)


def wait_status(ocirun, container_id, wanted, timeout=10):
    deadline = time.monotonic() + timeout
    status = "not created yet"
    while time.monotonic() < deadline:
        result = ocirun("state", container_id)
        if result.returncode == 0:
            status = json.loads(result.stdout)["status"]
            if status == wanted:
                return
        time.sleep(0.02)
    raise AssertionError(f"{container_id} never became {wanted} (last: {status})")


def test_create_waits_until_start(ocirun, make_bundle, tmp_path):
    marker = tmp_path / "out"
    marker.mkdir()
    bundle = make_bundle(args=["sh", "-c", "echo started > /mnt/marker"])
    config = json.loads((bundle / "config.json").read_text())
    config["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(marker),
                             "options": ["rbind", "rw"]})
    (bundle / "config.json").write_text(json.dumps(config))
    ocirun("create", "c1", "--bundle", bundle, check=True)
    state = state_of(ocirun, "c1")
    assert state["status"] == "created"
    assert state["pid"] > 0 and state["bundle"] == str(bundle) and state["id"] == "c1"
    assert {"ociVersion", "annotations", "created", "owner", "rootfs"} <= state.keys()
    assert not (marker / "marker").exists()
    ocirun("start", "c1", check=True)
    wait_status(ocirun, "c1", "stopped")
    assert (marker / "marker").read_text() == "started\n"
    ocirun("delete", "c1", check=True)
    assert ocirun("state", "c1").returncode != 0


def test_kill_and_delete_running(ocirun, make_bundle):
    bundle = make_bundle(args=["sleep", "1000"])
    ocirun("run", "--detach", "c2", "--bundle", bundle, check=True)
    assert state_of(ocirun, "c2")["status"] == "running"
    refused = ocirun("delete", "c2")
    assert refused.returncode != 0 and "running" in refused.stderr
    ocirun("kill", "c2", "KILL", check=True)
    wait_status(ocirun, "c2", "stopped")
    assert state_of(ocirun, "c2")["pid"] == 0
    killed_again = ocirun("kill", "c2", "TERM")
    assert killed_again.returncode != 0 and "not running" in killed_again.stderr
    ocirun("delete", "c2", check=True)


@pytest.mark.parametrize("signal_name", ["TERM", "SIGTERM", "15"])
def test_kill_signal_spellings(ocirun, make_bundle, signal_name):
    # As pid 1 of its namespace, the shell only dies of a signal it handles.
    bundle = make_bundle(args=["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"])
    ocirun("run", "-d", "c3", "-b", bundle, check=True)
    ocirun("kill", "c3", signal_name, check=True)
    wait_status(ocirun, "c3", "stopped")
    ocirun("delete", "c3", check=True)


def test_delete_force_running_and_created(ocirun, make_bundle):
    bundle = make_bundle(args=["sleep", "1000"])
    ocirun("run", "-d", "running", "-b", bundle, check=True)
    ocirun("create", "created", "-b", bundle, check=True)
    pids = [state_of(ocirun, c)["pid"] for c in ("running", "created")]
    ocirun("delete", "--force", "running", check=True)
    # runc's behaviour, which engines rely on: a created container is deleted without --force.
    ocirun("delete", "created", check=True)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split(")")[1][:3]
    assert ocirun("delete", "--force", "never-existed").returncode == 0
    assert ocirun("delete", "never-existed").returncode != 0


def test_run_foreground_exit_codes(ocirun, make_bundle):
    assert ocirun("run", "ok", "-b", make_bundle(args=["true"])).returncode == 0
    assert ocirun("run", "seven", "-b", make_bundle(args=["sh", "-c", "exit 7"])).returncode == 7



def test_run_exit_code_of_a_signal_death(ocirun, make_bundle):
    # Pid 1 of a namespace cannot be killed from inside it: signal it from outside.
    proc = subprocess.Popen([OCIRUN, "--root", ocirun.root, "run", "sig", "-b",
                             str(make_bundle(args=["sleep", "1000"]))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_status(ocirun, "sig", "running")
    ocirun("kill", "sig", "KILL", check=True)
    assert proc.wait(timeout=30) == 128 + 9


def test_run_output_and_environment(ocirun, make_bundle):
    bundle = make_bundle(args=["sh", "-c", "echo $GREETING; hostname; pwd"], hostname="box")
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["env"].append("GREETING=hi there")
    config["process"]["cwd"] = "/tmp"
    (bundle / "config.json").write_text(json.dumps(config))
    result = ocirun("run", "env", "-b", bundle)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hi there", "box", "/tmp"]


def test_run_forwards_signals(ocirun, make_bundle):
    bundle = make_bundle(args=["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"])
    proc = subprocess.Popen([OCIRUN, "--root", ocirun.root, "run", "fwd", "-b", str(bundle)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_status(ocirun, "fwd", "running")
    time.sleep(0.3)  # let the shell install its trap
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 42


@pytest.mark.parametrize("args, code, words", [
    (["no-such-program"], 127, 'exec: "no-such-program": executable file not found in $PATH'),
    (["/etc/passwd"], 126, 'exec: "/etc/passwd": permission denied'),
])
def test_missing_or_non_executable_program(ocirun, make_bundle, args, code, words):
    result = ocirun("run", "nx", "-b", make_bundle(args=args))
    assert result.returncode == code
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert ocirun("list", "-q").stdout.strip() == ""


def test_duplicate_and_invalid_ids(ocirun, make_bundle):
    bundle = make_bundle(args=["sleep", "1000"])
    ocirun("create", "dup", "-b", bundle, check=True)
    again = ocirun("create", "dup", "-b", bundle)
    assert again.returncode != 0 and "container dup already exists" in again.stderr
    ocirun("delete", "dup", check=True)
    for bad in ["..", ".", "a/b", "semi;colon", "sp ace"]:
        result = ocirun("create", bad, "-b", bundle)
        assert result.returncode != 0 and "invalid container id" in result.stderr, bad


def test_concurrent_creates_of_one_id(ocirun, make_bundle):
    bundle = make_bundle(args=["sleep", "1000"])
    # Files, not pipes: the winner's init keeps its stdio open.
    outputs = [tempfile.TemporaryFile("w+") for _ in range(4)]
    procs = [subprocess.Popen([OCIRUN, "--root", ocirun.root, "create", "race", "-b", str(bundle)],
                              stdout=subprocess.DEVNULL, stderr=out, text=True) for out in outputs]
    results = []
    for proc, out in zip(procs, outputs):
        code = proc.wait(timeout=60)
        out.seek(0)
        results.append((code, out.read()))
        out.close()
    assert sorted(code for code, _ in results) == [0, 1, 1, 1]
    assert all("already exists" in err for code, err in results if code)
    ocirun("delete", "--force", "race", check=True)


def test_start_only_a_created_container(ocirun, make_bundle):
    ocirun("run", "-d", "once", "-b", make_bundle(args=["sleep", "1000"]), check=True)
    again = ocirun("start", "once")
    assert again.returncode != 0 and "not created" in again.stderr
    ocirun("delete", "-f", "once", check=True)


def test_dead_init_is_stopped_even_if_pid_is_reused(ocirun, make_bundle):
    ocirun("create", "reuse", "-b", make_bundle(args=["true"]), check=True)
    state_file = os.path.join(ocirun.root, "reuse", "state.json")
    saved = json.load(open(state_file))
    # Point the record at a live process that is not the container's init.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        forged = dict(saved, pid=sleeper.pid)
        with open(state_file, "w") as f:
            json.dump(forged, f)
        assert state_of(ocirun, "reuse")["status"] == "stopped"
    finally:
        sleeper.kill()
        sleeper.wait()
        with open(state_file, "w") as f:
            json.dump(saved, f)
    ocirun("delete", "-f", "reuse", check=True)


def test_bad_inputs_are_one_clear_line(ocirun, make_bundle, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["create", "x", "-b", empty], "config.json"),
        (["state", "nope"], "does not exist"),
        (["kill", "nope"], "does not exist"),
        (["start", "nope"], "does not exist"),
        (["kill", "nope", "NOTASIGNAL"], "unknown signal"),
    ]
    bundle = make_bundle()
    config = json.loads((bundle / "config.json").read_text())
    config["root"]["path"] = str(tmp_path / "missing-rootfs")
    (bundle / "config.json").write_text(json.dumps(config))
    cases.append((["create", "x", "-b", bundle], "missing-rootfs"))
    for args, words in cases:
        result = ocirun(*args)
        assert result.returncode != 0, args
        assert words in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    leftovers = os.listdir(ocirun.root) if os.path.exists(ocirun.root) else []
    assert leftovers == []


def test_list_formats(ocirun, make_bundle):
    ocirun("create", "l1", "-b", make_bundle(args=["sleep", "1000"]), check=True)
    table = ocirun("list", check=True).stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[0] == "l1" and table[1].split()[2] == "created"
    documents = json.loads(ocirun("list", "--format", "json", check=True).stdout)
    assert [d["id"] for d in documents] == ["l1"] and documents[0]["status"] == "created"
    assert ocirun("list", "-q", check=True).stdout.split() == ["l1"]
    ocirun("delete", "l1", check=True)


def test_pid_file(ocirun, make_bundle, tmp_path):
    pid_file = tmp_path / "pid"
    ocirun("create", "pf", "-b", make_bundle(args=["sleep", "1000"]), "--pid-file", pid_file, check=True)
    assert int(pid_file.read_text()) == state_of(ocirun, "pf")["pid"]
    ocirun("delete", "pf", check=True)


def test_json_log_for_engines(ocirun, tmp_path):
    log = tmp_path / "log.json"
    result = ocirun("--log", log, "--log-format", "json", "state", "ghost")
    assert result.returncode != 0
    line = json.loads(log.read_text().strip().splitlines()[-1])
    assert line["level"] == "error" and "ghost" in line["msg"] and line["time"]


def test_spec_writes_a_runnable_default(ocirun, tmp_path):
    ocirun("spec", "--bundle", tmp_path, check=True)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["process"]["args"] == ["sh"] and config["root"]["path"] == "rootfs"
    again = ocirun("spec", "--bundle", tmp_path)
    assert again.returncode != 0 and "exists" in again.stderr
    rootless_dir = tmp_path / "rootless"
    rootless_dir.mkdir()
    ocirun("spec", "--rootless", "--bundle", rootless_dir, check=True)
    rootless = json.loads((rootless_dir / "config.json").read_text())
    assert {"type": "user"} in rootless["linux"]["namespaces"]


def test_version(ocirun):
    out = ocirun("--version", check=True).stdout
    assert out.startswith("ocirun version ") and "spec: 1.2" in out


def test_memory_limit_too_low_for_init(ocirun, make_bundle):
    bundle = make_bundle(args=["true"])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["resources"]["memory"] = {"limit": 4096}
    (bundle / "config.json").write_text(json.dumps(config))
    result = ocirun("run", "tiny", "-b", bundle)
    assert result.returncode != 0
    # The kernel either refuses the limit or OOM-kills init: either way the field is named.
    assert "linux.resources.memory.limit" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not os.path.exists(os.path.join(ocirun.root, "tiny"))
