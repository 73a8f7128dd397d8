"""config.md#posix-platform-hooks and runtime.md#lifecycle: when, where and
with what input each hook runs, and what a failing hook does."""
import json
import os

import pytest

from conformance import harness

spec = pytest.mark.spec

HOOK_ENV = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
HOST_HOOKS = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")


def recording_hook(name, results):
    """A hook run through the host's /bin/sh that appends its name to
    `order`, saves its stdin and the mount namespace it ran in."""
    return {"path": "/bin/sh", "env": HOOK_ENV, "args": ["sh", "-c", (
        f"cat > {results}/{name}.state; readlink /proc/self/ns/mnt > {results}/{name}.mntns; "
        f"echo {name} >> {results}/order")]}


def in_container_hook(name):
    """startContainer resolves its path in the container: busybox sh, and
    the results directory is the container's /tmp. It lingers a moment so
    that a runtime which runs poststart without waiting for the program to
    be executed shows up every time, not by chance."""
    r = harness.RESULTS_IN_CONTAINER
    return {"path": "/bin/sh", "env": HOOK_ENV, "args": ["sh", "-c", (
        f"cat > {r}/{name}.state; readlink /proc/self/ns/mnt > {r}/{name}.mntns; "
        f"sleep 0.3; echo {name} >> {r}/order")]}


def failing_hook():
    return {"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}


def all_hooks(bundle):
    hooks = {name: [recording_hook(name, bundle.results)] for name in HOST_HOOKS}
    hooks["startContainer"] = [in_container_hook("startContainer")]
    bundle.config["hooks"] = hooks
    return bundle


def run_with_hooks(runtime, bundle):
    """create, start, wait for exit, delete; returns the container's pid and
    the container's mount namespace as seen while it was created."""
    bundle.script("echo program >> /tmp/order").write()
    runtime.create(bundle.id, bundle)
    pid = runtime.state(bundle.id)["pid"]
    mntns = os.readlink(f"/proc/{pid}/ns/mnt")
    runtime.start(bundle.id)
    assert runtime.wait_status(bundle.id, "stopped") == "stopped"
    runtime.delete(bundle.id)
    return pid, mntns


@spec("config.md#posix-platform-hooks", "hooks run in lifecycle order: prestart, createRuntime, "
      "createContainer, startContainer, then the program and poststart, then poststop")
def test_hook_order(runtime, bundle):
    run_with_hooks(runtime, all_hooks(bundle))
    order = bundle.result("order").split()
    # poststart may run before or after the program has finished writing.
    without_poststart = [n for n in order if n != "poststart"]
    assert without_poststart == ["prestart", "createRuntime", "createContainer",
                                 "startContainer", "program", "poststop"]
    assert order.index("poststart") > order.index("startContainer")


@pytest.mark.parametrize("hook", ["prestart", "createRuntime", "createContainer",
                                  "startContainer", "poststart", "poststop"])
@spec("config.md#posix-platform-hooks", "each hook receives the container state (id, bundle) on stdin")
def test_hook_state_on_stdin(runtime, bundle, hook):
    run_with_hooks(runtime, all_hooks(bundle))
    st = json.loads(bundle.result(f"{hook}.state"))
    assert st["id"] == bundle.id
    assert os.path.realpath(st["bundle"]) == os.path.realpath(bundle.path)
    assert st.get("ociVersion")


@pytest.mark.parametrize("hook", ["prestart", "createRuntime", "createContainer", "startContainer"])
@spec("runtime.md#lifecycle", "the state given to hooks before the program runs has the container's pid")
def test_hook_state_pid(runtime, bundle, hook):
    pid, _ = run_with_hooks(runtime, all_hooks(bundle))
    assert json.loads(bundle.result(f"{hook}.state"))["pid"] == pid


@pytest.mark.parametrize("hook,where", [
    ("prestart", "runtime"), ("createRuntime", "runtime"), ("createContainer", "container"),
    ("startContainer", "container"), ("poststart", "runtime"), ("poststop", "runtime")])
@spec("config.md#posix-platform-hooks", "createContainer/startContainer run in the container "
      "namespace, the others in the runtime namespace (checked on the mount namespace)")
def test_hook_namespace(runtime, bundle, hook, where):
    _, container_mntns = run_with_hooks(runtime, all_hooks(bundle))
    seen = bundle.result(f"{hook}.mntns").strip()
    expected = container_mntns if where == "container" else harness.host_ns("mnt")
    assert seen == expected


@spec("config.md#posix-platform-hooks", "hook args and env are passed as given")
def test_hook_args_env(runtime, bundle):
    bundle.config["hooks"] = {"createRuntime": [{
        "path": "/bin/sh", "env": HOOK_ENV + ["CONF_HOOK=env-ok"],
        "args": ["sh", "-c", f'echo "$0 $1 $CONF_HOOK" > {bundle.results}/args', "arg0", "arg1"]}]}
    run_with_hooks(runtime, bundle)
    assert bundle.result("args") == "arg0 arg1 env-ok\n"


@pytest.mark.parametrize("hook", ["prestart", "createRuntime", "createContainer"])
@spec("runtime.md#lifecycle", "a failing prestart/createRuntime/createContainer hook fails create "
      "and the container is destroyed")
def test_failing_create_hook(runtime, bundle, hook):
    bundle.config["hooks"] = {hook: [failing_hook()],
                              "poststop": [recording_hook("poststop", bundle.results)]}
    bundle.script("echo ran > /tmp/marker").write()
    res = runtime.create(bundle.id, bundle, check=False)
    assert not res.ok
    # Lifecycle step 12: the container is destroyed, as if never created.
    assert runtime.state(bundle.id) is None
    assert bundle.result("marker") is None
    assert harness.existing_cgroup_dirs(bundle.id) == []


@spec("runtime.md#lifecycle", "after a failing createRuntime hook the poststop hooks still run "
      "(steps 12-13)")
def test_failing_create_hook_runs_poststop(runtime, bundle):
    bundle.config["hooks"] = {"createRuntime": [failing_hook()],
                              "poststop": [recording_hook("poststop", bundle.results)]}
    bundle.write()
    assert not runtime.create(bundle.id, bundle, check=False).ok
    assert bundle.result("order") == "poststop\n"


@spec("runtime.md#lifecycle", "a failing startContainer hook fails start and the program does not run")
def test_failing_start_container_hook(runtime, bundle):
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]}
    bundle.script("echo ran > /tmp/marker").write()
    runtime.create(bundle.id, bundle)
    assert not runtime.start(bundle.id, check=False).ok
    assert bundle.result("marker") is None
    assert runtime.wait_status(bundle.id, "stopped") in ("stopped", None)


@spec("runtime.md#lifecycle", "a failing poststart hook only warns: start succeeds, the program runs")
def test_failing_poststart_hook_warns(runtime, bundle):
    bundle.config["hooks"] = {"poststart": [failing_hook()]}
    bundle.script("echo ran > /tmp/marker").write()
    runtime.create(bundle.id, bundle)
    assert runtime.start(bundle.id, check=False).ok
    assert harness.wait_for_path(bundle.results / "marker")


@spec("runtime.md#lifecycle", "a failing poststop hook only warns: delete succeeds")
def test_failing_poststop_hook_warns(runtime, bundle):
    bundle.config["hooks"] = {"poststop": [failing_hook()]}
    bundle.write()
    runtime.create(bundle.id, bundle)
    runtime.start(bundle.id)
    runtime.wait_status(bundle.id, "stopped")
    assert runtime.delete(bundle.id, check=False).ok
    assert runtime.state(bundle.id) is None


@spec("runtime.md#lifecycle", "after a failing poststop hook the remaining poststop hooks run")
def test_failing_poststop_hook_continues(runtime, bundle):
    bundle.config["hooks"] = {"poststop": [failing_hook(), recording_hook("poststop", bundle.results)]}
    bundle.write()
    runtime.create(bundle.id, bundle)
    runtime.start(bundle.id)
    runtime.wait_status(bundle.id, "stopped")
    runtime.delete(bundle.id, check=False)
    assert bundle.result("order") == "poststop\n"


@spec("config.md#posix-platform-hooks", "a hook that exceeds its timeout fails the operation")
def test_hook_timeout(runtime, bundle):
    bundle.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", "sleep 5"], "timeout": 1}]}
    bundle.write()
    assert not runtime.create(bundle.id, bundle, check=False).ok
    assert runtime.state(bundle.id) is None
    assert harness.existing_cgroup_dirs(bundle.id) == []
