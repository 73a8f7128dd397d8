"""runtime.md: state, lifecycle and operations (create/start/kill/delete)."""
import os
from pathlib import Path

import pytest

from conformance import harness

spec = pytest.mark.spec

SLEEPER = "echo ready > /tmp/ready; while true; do sleep 0.1; done"


def started(runtime, bundle, script=SLEEPER):
    bundle.script(script).write()
    runtime.create(bundle.id, bundle)
    runtime.start(bundle.id)
    assert runtime.wait_status(bundle.id, "running") == "running"
    return bundle.id


# --- state --------------------------------------------------------------------

@spec("runtime.md#state", "state has ociVersion, id, status, pid and bundle (absolute path)")
def test_state_fields(runtime, bundle):
    bundle.write()
    runtime.create(bundle.id, bundle)
    st = runtime.state(bundle.id)
    assert isinstance(st.get("ociVersion"), str) and st["ociVersion"]
    assert st["id"] == bundle.id
    assert st["status"] == "created"
    assert isinstance(st.get("pid"), int) and st["pid"] > 0
    assert os.path.isabs(st["bundle"])
    assert Path(st["bundle"]).resolve() == bundle.dir.resolve()


@spec("runtime.md#state", "state.pid is the container process as seen on the host")
def test_state_pid_is_container_process(runtime, bundle):
    bundle.write()
    runtime.create(bundle.id, bundle)
    pid = runtime.state(bundle.id)["pid"]
    # The container's init lives in the container's new pid namespace.
    assert os.readlink(f"/proc/{pid}/ns/pid") != harness.host_ns("pid")


@spec("runtime.md#state", "state.annotations carries config.json annotations")
def test_state_annotations(runtime, bundle):
    bundle.config["annotations"] = {"org.example.conformance": "yes", "x.y": "z"}
    bundle.write()
    runtime.create(bundle.id, bundle)
    st = runtime.state(bundle.id)
    assert st.get("annotations") == {"org.example.conformance": "yes", "x.y": "z"}


@spec("runtime.md#query-state", "state of a container that does not exist is an error")
def test_state_unknown_id(runtime, new_id):
    res = runtime.cmd("state", new_id())
    assert not res.ok


@spec("runtime.md#state", "status goes created -> running -> stopped")
def test_status_transitions(runtime, bundle):
    bundle.script("while [ ! -e /tmp/go ]; do sleep 0.1; done").write()
    runtime.create(bundle.id, bundle)
    assert runtime.status(bundle.id) == "created"
    runtime.start(bundle.id)
    assert runtime.status(bundle.id) == "running"
    (bundle.results / "go").touch()
    assert runtime.wait_status(bundle.id, "stopped") == "stopped"


@spec("runtime.md#state", "a container whose process exited is reported stopped")
def test_killed_init_is_stopped(runtime, bundle):
    cid = started(runtime, bundle)
    os.kill(runtime.state(cid)["pid"], 9)
    assert runtime.wait_status(cid, "stopped") == "stopped"


# --- create -------------------------------------------------------------------

@spec("runtime.md#create", "create does not run process.args; the process waits until start")
def test_create_does_not_run_program(runtime, bundle):
    bundle.script("echo ran > /tmp/marker").write()
    runtime.create(bundle.id, bundle)
    assert runtime.status(bundle.id) == "created"
    assert bundle.result("marker") is None
    runtime.start(bundle.id)
    assert harness.wait_for_path(bundle.results / "marker")
    assert bundle.result("marker") == "ran\n"


@spec("runtime.md#create", "a duplicate container id is an error and the existing container is untouched")
def test_create_duplicate_id(runtime, bundle, make_bundle):
    bundle.write()
    runtime.create(bundle.id, bundle)
    before = runtime.state(bundle.id)
    other = make_bundle(cid=bundle.id + "-dup")
    other.config["linux"]["cgroupsPath"] = bundle.config["linux"]["cgroupsPath"] + "-dup"
    other.write()
    res = runtime.cmd("create", "--bundle", other.path, bundle.id, stdout_path=other.stdout_path)
    assert not res.ok
    after = runtime.state(bundle.id)
    assert after["pid"] == before["pid"] and after["status"] == "created"
    assert Path(after["bundle"]).resolve() == bundle.dir.resolve()
    assert harness.existing_cgroup_dirs(other.id) == []


@spec("runtime.md#create", "an id that is not valid is an error and no container is created",
      level="runc-compat")
def test_create_invalid_id(runtime, bundle):
    bundle.write()
    res = runtime.cmd("create", "--bundle", bundle.path, "../escape", stdout_path=bundle.stdout_path)
    assert not res.ok
    assert runtime.state("../escape") is None
    assert not (runtime.root.parent / "escape").exists()


@spec("runtime.md#create", "a property that cannot be applied fails create and leaves no container")
def test_create_unapplicable_property(runtime, bundle):
    bundle.config["mounts"].append({"destination": "/home", "type": "bind",
                                    "source": str(bundle.dir / "does-not-exist"),
                                    "options": ["rbind"]})
    bundle.write()
    res = runtime.create(bundle.id, bundle, check=False)
    assert not res.ok
    assert runtime.state(bundle.id) is None
    assert harness.existing_cgroup_dirs(bundle.id) == []


@spec("runtime.md#create", "changes to config.json after create have no effect")
def test_config_changes_after_create_ignored(runtime, bundle):
    bundle.script("echo original > /tmp/which").write()
    runtime.create(bundle.id, bundle)
    bundle.script("echo changed > /tmp/which").write()
    runtime.start(bundle.id)
    assert harness.wait_for_path(bundle.results / "which")
    assert bundle.result("which") == "original\n"


@spec("runc-cli#create", "--pid-file receives the container's pid", level="runc-compat")
def test_create_pid_file(runtime, bundle):
    bundle.write()
    pid_file = bundle.dir / "pidfile"
    runtime.create(bundle.id, bundle, "--pid-file", pid_file)
    assert int(pid_file.read_text()) == runtime.state(bundle.id)["pid"]


# --- start --------------------------------------------------------------------

@spec("runtime.md#start", "start runs the user-specified program")
def test_start_runs_program(runtime, bundle):
    bundle.script("echo hello from $0 > /tmp/out").write()
    runtime.create(bundle.id, bundle)
    runtime.start(bundle.id)
    assert runtime.wait_status(bundle.id, "stopped") == "stopped"
    assert bundle.result("out") == "hello from sh\n"


@spec("runtime.md#start", "start of a running container is an error and has no effect")
def test_start_running_errors(runtime, bundle):
    cid = started(runtime, bundle)
    pid = runtime.state(cid)["pid"]
    assert not runtime.start(cid, check=False).ok
    st = runtime.state(cid)
    assert st["status"] == "running" and st["pid"] == pid


@spec("runtime.md#start", "start of a stopped container is an error")
def test_start_stopped_errors(runtime, bundle):
    bundle.write()
    runtime.create(bundle.id, bundle)
    runtime.start(bundle.id)
    assert runtime.wait_status(bundle.id, "stopped") == "stopped"
    assert not runtime.start(bundle.id, check=False).ok
    assert runtime.status(bundle.id) == "stopped"


@spec("runtime.md#start", "start of a container that does not exist is an error")
def test_start_unknown_errors(runtime, new_id):
    assert not runtime.start(new_id(), check=False).ok


# --- kill ---------------------------------------------------------------------

TRAP = ("trap 'echo usr1 >> /tmp/got' USR1; echo ready > /tmp/ready; "
        "while true; do sleep 0.1; done")


@pytest.mark.parametrize("sig", ["USR1", "SIGUSR1", "10"])
@spec("runtime.md#kill", "kill sends the named or numbered signal to the container process")
def test_kill_delivers_signal(runtime, bundle, sig):
    cid = started(runtime, bundle, TRAP)
    assert harness.wait_for_path(bundle.results / "ready")
    runtime.kill(cid, sig)
    assert harness.wait_for_path(bundle.results / "got")
    assert runtime.status(cid) == "running"


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9"])
@spec("runtime.md#kill", "kill with SIGKILL stops a running container")
def test_kill_running(runtime, bundle, sig):
    cid = started(runtime, bundle)
    runtime.kill(cid, sig)
    assert runtime.wait_status(cid, "stopped") == "stopped"


@spec("runc-cli#kill", "kill without a signal sends SIGTERM", level="runc-compat")
def test_kill_default_sigterm(runtime, bundle):
    cid = started(runtime, bundle, "trap 'echo term > /tmp/got; exit 0' TERM; "
                                   "echo ready > /tmp/ready; while true; do sleep 0.1; done")
    assert harness.wait_for_path(bundle.results / "ready")
    runtime.kill(cid)
    assert harness.wait_for_path(bundle.results / "got")
    assert bundle.result("got") == "term\n"


@spec("runtime.md#kill", "kill of a created container is allowed and stops it")
def test_kill_created(runtime, bundle):
    bundle.write()
    runtime.create(bundle.id, bundle)
    runtime.kill(bundle.id, "KILL")
    assert runtime.wait_status(bundle.id, "stopped") == "stopped"


@spec("runtime.md#kill", "kill of a stopped container is an error")
def test_kill_stopped_errors(runtime, bundle):
    bundle.write()
    runtime.create(bundle.id, bundle)
    runtime.start(bundle.id)
    assert runtime.wait_status(bundle.id, "stopped") == "stopped"
    assert not runtime.kill(bundle.id, "KILL", check=False).ok
    assert runtime.status(bundle.id) == "stopped"


@spec("runc-cli#kill", "kill with an unknown signal is an error and has no effect", level="runc-compat")
def test_kill_unknown_signal(runtime, bundle):
    cid = started(runtime, bundle)
    assert not runtime.kill(cid, "SIGNOPE", check=False).ok
    assert runtime.status(cid) == "running"


# --- delete -------------------------------------------------------------------

@spec("runtime.md#delete", "delete of a stopped container removes it and its cgroup")
def test_delete_stopped(runtime, bundle):
    bundle.write()
    runtime.create(bundle.id, bundle)
    runtime.start(bundle.id)
    assert runtime.wait_status(bundle.id, "stopped") == "stopped"
    runtime.delete(bundle.id)
    assert runtime.state(bundle.id) is None
    assert harness.existing_cgroup_dirs(bundle.id) == []


@spec("runtime.md#delete", "after delete the container id may be used again")
def test_delete_frees_id(runtime, bundle, make_bundle):
    bundle.write()
    runtime.create(bundle.id, bundle)
    runtime.kill(bundle.id, "KILL")
    runtime.wait_status(bundle.id, "stopped")
    runtime.delete(bundle.id)
    again = make_bundle(cid=bundle.id + "-again")
    again.config["linux"]["cgroupsPath"] = bundle.config["linux"]["cgroupsPath"]
    again.write()
    runtime.cmd("create", "--bundle", again.path, bundle.id, check=True,
                stdout_path=again.stdout_path)
    assert runtime.status(bundle.id) == "created"


@spec("runtime.md#delete", "delete of a running container is an error and has no effect")
def test_delete_running_errors(runtime, bundle):
    cid = started(runtime, bundle)
    pid = runtime.state(cid)["pid"]
    assert not runtime.delete(cid, check=False).ok
    st = runtime.state(cid)
    assert st["status"] == "running" and st["pid"] == pid


@spec("runtime.md#delete", "delete of a created container is an error and has no effect")
def test_delete_created_errors(runtime, bundle):
    bundle.write()
    runtime.create(bundle.id, bundle)
    assert not runtime.delete(bundle.id, check=False).ok
    assert runtime.status(bundle.id) == "created"


@spec("runc-cli#delete", "delete of a created container kills and removes it", level="runc-compat")
def test_delete_created_runc(runtime, bundle):
    bundle.write()
    runtime.create(bundle.id, bundle)
    pid = runtime.state(bundle.id)["pid"]
    runtime.delete(bundle.id)
    assert runtime.state(bundle.id) is None
    assert not _alive(pid)
    assert harness.existing_cgroup_dirs(bundle.id) == []


@spec("runc-cli#delete", "delete --force kills and removes a running container", level="runc-compat")
def test_delete_force_running(runtime, bundle):
    cid = started(runtime, bundle)
    pid = runtime.state(cid)["pid"]
    runtime.delete(cid, force=True)
    assert runtime.state(cid) is None
    assert not _alive(pid)
    assert harness.existing_cgroup_dirs(cid) == []


@spec("runtime.md#delete", "delete of a container that does not exist is an error")
def test_delete_unknown_errors(runtime, new_id):
    assert not runtime.delete(new_id(), check=False).ok


def _alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
