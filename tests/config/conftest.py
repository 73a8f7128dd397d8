"""Fixtures for the config.json tests: the reference validator and sample configs."""

import json
import os
import subprocess

import pytest

from ocirun.config.validate import SCHEMA_DIR, render_path
from ocirun.specgen import default_spec


class ReferenceValidator:
    """jsonschema over the same schema files: the oracle the fast validator must agree with."""

    def __init__(self):
        import jsonschema
        from referencing import Registry, Resource

        documents = {}
        for name in sorted(os.listdir(SCHEMA_DIR)):
            if name.endswith(".json"):
                with open(os.path.join(SCHEMA_DIR, name), encoding="utf-8") as f:
                    documents[name] = json.load(f)
        registry = Registry().with_resources(
            (doc["$id"], Resource.from_contents(doc)) for doc in documents.values())
        self._validators = {
            name: jsonschema.Draft202012Validator(doc, registry=registry)
            for name, doc in documents.items()
        }
        self.documents = documents
        self.registry = registry
        self.check_schema = jsonschema.Draft202012Validator.check_schema

    def error_paths(self, document, schema_name="config.schema.json") -> set[str]:
        """Where jsonschema finds errors, with a `required` error placed at the missing key."""
        paths = set()
        for error in self._validators[schema_name].iter_errors(document):
            parts = list(error.absolute_path)
            if error.validator == "required":
                for key in error.validator_value:
                    if key not in error.instance:
                        paths.add(render_path(parts + [key]))
            else:
                paths.add(render_path(parts))
        return paths


@pytest.fixture(scope="session")
def reference():
    return ReferenceValidator()


def _runc_spec(directory, rootless):
    args = ["runc", "spec", "--bundle", str(directory)] + (["--rootless"] if rootless else [])
    subprocess.run(args, check=True, capture_output=True)
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def ctr_spec():
    """containerd's default spec (`ctr oci spec`); its args come from the image, so it has none."""
    result = subprocess.run(["ctr", "oci", "spec"], check=True, capture_output=True, text=True)
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def runc_specs(tmp_path_factory):
    """What Debian's runc writes for `runc spec` and `runc spec --rootless`."""
    return {
        "runc": _runc_spec(tmp_path_factory.mktemp("config-runc"), rootless=False),
        "runc-rootless": _runc_spec(tmp_path_factory.mktemp("config-runc-rootless"), rootless=True),
    }


@pytest.fixture
def full_spec():
    """A config that uses nearly every field of runtime-spec 1.2, all valid."""
    return make_full_spec()


def make_full_spec() -> dict:
    spec = default_spec()
    spec["domainname"] = "example.org"
    spec["annotations"] = {"org.example.key": "value"}
    spec["hooks"] = {
        "prestart": [{"path": "/usr/bin/true"}],
        "createRuntime": [{"path": "/usr/bin/true", "args": ["true", "x"], "env": ["A=1"], "timeout": 5}],
        "createContainer": [], "startContainer": None, "poststart": [], "poststop": [],
    }
    spec["mounts"].append({"destination": "/data", "source": "/srv", "type": "bind",
                           "options": ["rbind", "idmap"],
                           "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                           "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]})
    process = spec["process"]
    process.update({
        "consoleSize": {"height": 24, "width": 80},
        "user": {"uid": 0, "gid": 0, "umask": 18, "additionalGids": [1, 2], "username": "root"},
        "apparmorProfile": "", "selinuxLabel": "", "oomScoreAdj": -500,
        "scheduler": {"policy": "SCHED_BATCH", "nice": 5, "priority": 0,
                      "flags": ["SCHED_FLAG_RESET_ON_FORK"], "runtime": 1, "deadline": 2, "period": 3},
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
        "execCPUAffinity": {"initial": "0", "final": "0-1"},
    })
    process["capabilities"]["ambient"] = ["CAP_KILL"]
    process["capabilities"]["inheritable"] = []
    linux = spec["linux"]
    linux["namespaces"] += [{"type": "user"}, {"type": "time"}]
    linux.update({
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "timeOffsets": {"monotonic": {"secs": 10, "nanosecs": 5}, "boottime": {"secs": -3}},
        "devices": [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 438,
                     "uid": 0, "gid": 0},
                    {"type": "p", "path": "/dev/fifo"}],
        "netDevices": {"eth1": {"name": "net0"}},
        "cgroupsPath": "/ocirun-test-config/x",
        "sysctl": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "vm.swappiness": "1"},
        "rootfsPropagation": "rslave",
        "mountLabel": "",
        "personality": {"domain": "LINUX32", "flags": []},
        "intelRdt": {"closID": "c1", "l3CacheSchema": "L3:0=ff", "memBwSchema": "MB:0=70",
                     "enableCMT": True, "enableMBM": False},
        "seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "listenerPath": "/run/agent.sock", "listenerMetadata": "meta",
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                 "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["bind"], "action": "SCMP_ACT_NOTIFY"},
            ],
        },
    })
    linux["resources"].update({
        "memory": {"limit": 1 << 30, "reservation": -1, "swap": -1, "kernel": 0, "kernelTCP": 0,
                   "swappiness": 60, "disableOOMKiller": False, "useHierarchy": True,
                   "checkBeforeUpdate": True},
        "cpu": {"shares": 1024, "quota": -1, "burst": 0, "period": 100000, "realtimeRuntime": 0,
                "realtimePeriod": 0, "cpus": "0-1", "mems": "0", "idle": 0},
        "blockIO": {"weight": 500, "leafWeight": 300,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 600}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1 << 20}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
        "pids": {"limit": 100},
        "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
        "unified": {"memory.high": "max"},
    })
    linux["resources"]["devices"].append({"allow": True, "type": "c", "major": 10, "minor": 229,
                                          "access": "rwm"})
    return spec
