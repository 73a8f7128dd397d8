"""linux.sysctl validation (no root needed)."""

import os

import pytest

from ocirun.container import sysctl
from ocirun.errors import ConfigError


def spec(keys, namespaces=("ipc", "network", "uts")):
    return {"linux": {"sysctl": keys, "namespaces": [{"type": t} for t in namespaces]}}


@pytest.mark.parametrize("key,kind", [
    ("kernel.shmmax", "ipc"), ("kernel.sem", "ipc"), ("fs.mqueue.msg_max", "ipc"),
    ("net.ipv4.ip_forward", "network"), ("net/ipv4/conf/all/forwarding", "network"),
    ("kernel.hostname", "uts"), ("kernel.domainname", "uts"),
])
def test_namespaced_keys(key, kind):
    assert sysctl.namespace_of(key) == kind
    assert sysctl.validate(spec({key: "1"})) == {key: "1"}


@pytest.mark.parametrize("key", ["vm.swappiness", "kernel.panic", "fs.file-max",
                                 "kernel.core_pattern"])
def test_non_namespaced_key_is_refused(key):
    with pytest.raises(ConfigError) as error:
        sysctl.validate(spec({key: "1"}))
    assert str(error.value).startswith(f"config.json: linux.sysctl: {key} is not namespaced")


def test_key_needs_its_namespace():
    with pytest.raises(ConfigError, match="net.ipv4.ip_forward needs a network namespace"):
        sysctl.validate(spec({"net.ipv4.ip_forward": "1"}, namespaces=("ipc",)))


def test_joining_the_host_namespace_is_refused():
    config = spec({"kernel.shmmax": "1"})
    config["linux"]["namespaces"] = [{"type": "ipc", "path": f"/proc/{os.getpid()}/ns/ipc"}]
    with pytest.raises(ConfigError, match="host's ipc namespace"):
        sysctl.validate(config)
    assert sysctl.validate(config, check_host_namespaces=False)


@pytest.mark.parametrize("key", ["net/../../vm/swappiness", "..", "/"])
def test_path_tricks_are_refused(key):
    with pytest.raises(ConfigError):
        sysctl.validate(spec({key: "1"}))


def test_proc_paths():
    assert sysctl.proc_path("net.ipv4.ip_forward") == "/proc/sys/net/ipv4/ip_forward"
    assert sysctl.proc_path("net/ipv4/conf/eth0.100/forwarding") == \
        "/proc/sys/net/ipv4/conf/eth0.100/forwarding"
