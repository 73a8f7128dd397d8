"""Namespaces the conformance suite does not cover: time offsets, bad paths."""

import json
import os

import pytest

pytestmark = pytest.mark.root


def with_namespaces(make_bundle, args, namespaces, **linux):
    bundle = make_bundle(args=args)
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["namespaces"] = namespaces
    config["linux"].update(linux)
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


DEFAULT = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/time"), reason="kernel without time namespaces")
def test_time_namespace_offsets(ocirun, make_bundle):
    day = 86400
    bundle = with_namespaces(make_bundle, ["cat", "/proc/uptime"], DEFAULT + [{"type": "time"}],
                             timeOffsets={"boottime": {"secs": 10 * day, "nanosecs": 0}})
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    result = ocirun("run", "tns", "-b", bundle, check=True)
    container_uptime = float(result.stdout.split()[0])
    assert container_uptime - host_uptime >= 10 * day - 60


def test_namespace_path_of_the_wrong_type(ocirun, make_bundle):
    namespaces = [ns for ns in DEFAULT if ns["type"] != "network"]
    namespaces.append({"type": "network", "path": "/proc/self/ns/ipc"})
    result = ocirun("create", "wrong", "-b", with_namespaces(make_bundle, ["true"], namespaces))
    assert result.returncode != 0
    assert "linux.namespaces[5].path: /proc/self/ns/ipc is a namespace of type ipc, not network" in result.stderr
    assert not os.path.exists(os.path.join(ocirun.root, "wrong"))


def test_namespace_listed_twice(ocirun, make_bundle):
    result = ocirun("create", "twice", "-b",
                    with_namespaces(make_bundle, ["true"], DEFAULT + [{"type": "ipc"}]))
    assert result.returncode != 0 and "ipc" in result.stderr and "twice" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
