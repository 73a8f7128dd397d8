"""Hooks: each phase at its point, with the state on stdin, failures handled per phase."""

import json
import os
import time

import pytest

pytestmark = pytest.mark.root

PHASES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]


def recording_hook(log_dir, phase):
    """A hook that appends its phase, mount namespace and stdin to log_dir/<n>-<phase>."""
    # startContainer runs inside the container, where log_dir is bind-mounted at /mnt.
    target = "/mnt" if phase == "startContainer" else str(log_dir)
    script = (f'n=$(ls {target} | wc -l); '
              f'{{ readlink /proc/self/ns/mnt; cat; }} > {target}/$n-{phase}')
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def bundle_with_hooks(make_bundle, log_dir, hooks, args=("true",)):
    bundle = make_bundle(args=list(args))
    config = json.loads((bundle / "config.json").read_text())
    config["hooks"] = hooks
    config["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(log_dir),
                             "options": ["rbind", "rw"]})
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def read_log(log_dir):
    entries = sorted(os.listdir(log_dir), key=lambda name: int(name.split("-")[0]))
    result = []
    for name in entries:
        ns, _, stdin = (log_dir / name).read_text().partition("\n")
        result.append((name.split("-", 1)[1], ns, json.loads(stdin) if stdin.strip() else None))
    return result


def test_every_phase_in_order_with_state(ocirun, make_bundle, tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    bundle = bundle_with_hooks(make_bundle, log_dir,
                               {phase: [recording_hook(log_dir, phase)] for phase in PHASES})
    ocirun("create", "h1", "-b", bundle, check=True)
    ocirun("start", "h1", check=True)
    deadline = time.monotonic() + 10
    while json.loads(ocirun("state", "h1", check=True).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ocirun("delete", "h1", check=True)

    log = read_log(log_dir)
    assert [phase for phase, _, _ in log] == PHASES
    host_ns = os.readlink("/proc/self/ns/mnt")
    by_phase = {phase: (ns, state) for phase, ns, state in log}
    # The runtime's namespace for these; the container's for createContainer/startContainer.
    for phase in ("prestart", "createRuntime", "poststart", "poststop"):
        assert by_phase[phase][0] == host_ns, phase
    for phase in ("createContainer", "startContainer"):
        assert by_phase[phase][0] != host_ns, phase
    for phase, (_, state) in by_phase.items():
        assert state["id"] == "h1" and state["bundle"] == str(bundle), phase
        assert state["ociVersion"] and "annotations" in state, phase
    assert by_phase["createRuntime"][1]["status"] == "creating"
    assert by_phase["createRuntime"][1]["pid"] > 0
    assert by_phase["poststart"][1]["status"] == "running"
    assert by_phase["poststop"][1]["status"] == "stopped"


@pytest.mark.parametrize("phase", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_cleans_up(ocirun, make_bundle, tmp_path, phase):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    failing = {"path": "/bin/sh", "args": ["sh", "-c", "echo refused by hook >&2; exit 3"]}
    bundle = bundle_with_hooks(make_bundle, log_dir, {phase: [failing],
                                                      "poststop": [recording_hook(log_dir, "poststop")]})
    result = ocirun("create", "hf", "-b", bundle)
    assert result.returncode != 0
    assert f"hooks.{phase}[0]" in result.stderr and "refused by hook" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not os.path.exists(os.path.join(ocirun.root, "hf"))
    # The spec: after a failed prestart/createRuntime/createContainer hook, poststop still runs.
    assert [phase for phase, _, _ in read_log(log_dir)] == ["poststop"]


def test_failing_poststop_only_warns(ocirun, make_bundle, tmp_path):
    bundle = bundle_with_hooks(make_bundle, tmp_path, {"poststop": [{"path": "/bin/false"}]})
    ocirun("run", "ps1", "-b", bundle, check=True)
    assert not os.path.exists(os.path.join(ocirun.root, "ps1"))


def test_hook_timeout_is_enforced(ocirun, make_bundle, tmp_path):
    sleeper = {"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}
    bundle = bundle_with_hooks(make_bundle, tmp_path, {"createRuntime": [sleeper]})
    result = ocirun("create", "slow", "-b", bundle)
    assert result.returncode != 0 and "timed out after 1s" in result.stderr
    assert not os.path.exists(os.path.join(ocirun.root, "slow"))
