"""Commands beyond the spec's five operations that engines call with runc's
flags (kill --all, pause/resume, features), and the features document."""
import json

import pytest

from conformance import harness

spec = pytest.mark.spec

SLEEPER = "echo ready > /tmp/ready; while true; do sleep 0.1; done"


def started(runtime, bundle, script):
    bundle.script(script).write()
    runtime.create(bundle.id, bundle)
    runtime.start(bundle.id)
    assert runtime.wait_status(bundle.id, "running") == "running"
    assert harness.wait_for_path(bundle.results / "ready")
    return bundle.id


# The init shell has no TERM handler, and an init ignores such signals; its
# child does not, so only a signal that reaches the child ends the wait.
CHILD_WATCHER = ("sleep 1000 & child=$!; echo ready > /tmp/ready; wait $child; "
                 "echo child-gone > /tmp/got; while true; do sleep 0.1; done")


@spec("runc-cli#kill", "kill --all signals every process of the container, not only init",
      level="runc-compat")
def test_kill_all(runtime, bundle):
    cid = started(runtime, bundle, CHILD_WATCHER)
    runtime.cmd("kill", "--all", cid, "TERM", check=True)
    assert harness.wait_for_path(bundle.results / "got")


@spec("runc-cli#pause", "pause freezes the container (status paused) and resume thaws it",
      level="runc-compat")
def test_pause_resume(runtime, bundle):
    cid = started(runtime, bundle, SLEEPER)
    runtime.cmd("pause", cid, check=True)
    assert runtime.status(cid) == "paused"
    runtime.cmd("resume", cid, check=True)
    assert runtime.status(cid) == "running"


@spec("features.md", "features prints a JSON document with ociVersionMin and ociVersionMax")
def test_features(runtime):
    res = runtime.cmd("features", check=True)
    doc = json.loads(res.stdout)
    assert doc["ociVersionMin"].startswith("1.")
    assert doc["ociVersionMax"].startswith("1.")


@spec("features.md", "features lists every hook and namespace this suite finds working",
      level="SHOULD")
def test_features_truthful(runtime):
    doc = json.loads(runtime.cmd("features", check=True).stdout)
    assert set(doc.get("hooks", [])) >= {"prestart", "createRuntime", "createContainer",
                                         "startContainer", "poststart", "poststop"}
    namespaces = set(doc.get("linux", {}).get("namespaces", []))
    assert namespaces >= {"pid", "network", "ipc", "uts", "mount", "user", "cgroup"}
