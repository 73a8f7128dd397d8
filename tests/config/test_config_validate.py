"""config.json validation: exact messages, versions, unknown fields, and agreement with jsonschema."""

import copy
import json
import os
import random

import pytest

from ocirun.config.validate import (
    ANNOTATION_KEYWORDS, SCHEMA_DIR, SUPPORTED_KEYWORDS, schema_violation, validate,
)
from ocirun.errors import ConfigError, OciError
from ocirun.specgen import default_spec

NAMESPACE_TYPES = '"mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time"'


def _set(path, value):
    def mutate(spec):
        node = spec
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return mutate


def _delete(path):
    def mutate(spec):
        node = spec
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
    return mutate


def _drop_namespace(kind):
    def mutate(spec):
        spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != kind]
    return mutate


INVALID = [
    ("empty args", _set(["process", "args"], []),
     "config.json: process.args: must be a non-empty array"),
    ("no args", _delete(["process", "args"]),
     "config.json: process.args: is required"),
    ("args as string", _set(["process", "args"], "sh"),
     "config.json: process.args: must be an array, not a string"),
    ("relative cwd", _set(["process", "cwd"], "tmp"),
     'config.json: process.cwd: must be an absolute path (got "tmp")'),
    ("no root.path", _delete(["root", "path"]),
     "config.json: root.path: is required"),
    ("empty root.path", _set(["root", "path"], ""),
     "config.json: root.path: must not be empty"),
    ("no root", _delete(["root"]),
     "config.json: root: is required on Linux: it names the container's root filesystem"),
    ("no process", _delete(["process"]),
     "config.json: process: is required to create a container: it says what to run"),
    ("no ociVersion", _delete(["ociVersion"]),
     "config.json: ociVersion: is required"),
    ("ociVersion not semver", _set(["ociVersion"], "1.0"),
     'config.json: ociVersion: must be a semantic version like 1.0.2 (got "1.0")'),
    ("unknown namespace", _set(["linux", "namespaces", 0, "type"], "pidx"),
     f'config.json: linux.namespaces[0].type: must be one of {NAMESPACE_TYPES} (got "pidx")'),
    ("namespace twice", lambda s: s["linux"]["namespaces"].append({"type": "pid"}),
     'config.json: linux.namespaces[6]: namespace type "pid" is listed twice'),
    ("mappings without userns", _set(["linux", "uidMappings"], [{"containerID": 0, "hostID": 1, "size": 1}]),
     'config.json: linux.uidMappings: needs a user namespace: add {"type": "user"} to linux.namespaces'),
    ("userns without mappings", lambda s: s["linux"]["namespaces"].append({"type": "user"}),
     "config.json: linux.uidMappings: must map at least one id when a new user namespace is created "
     "(or give the namespace a path)"),
    ("hostname without uts", _drop_namespace("uts"),
     'config.json: hostname: needs a uts namespace: add {"type": "uts"} to linux.namespaces'),
    ("negative uid", _set(["process", "user", "uid"], -1),
     "config.json: process.user.uid: must be between 0 and 4294967295 (got -1)"),
    ("bool uid", _set(["process", "user", "uid"], True),
     "config.json: process.user.uid: must be an integer, not a boolean"),
    ("bad rlimit", _set(["process", "rlimits", 0, "type"], "NOFILE"),
     'config.json: process.rlimits[0].type: must be an RLIMIT_* name (got "NOFILE")'),
    ("env without =", lambda s: s["process"]["env"].append("FOO"),
     'config.json: process.env[2]: must be a KEY=value string (got "FOO")'),
    ("relative hook", _set(["hooks"], {"prestart": [{"path": "true"}]}),
     'config.json: hooks.prestart[0].path: must be an absolute path (got "true")'),
    ("zero hook timeout", _set(["hooks"], {"poststop": [{"path": "/bin/true", "timeout": 0}]}),
     "config.json: hooks.poststop[0].timeout: must be at least 1 (got 0)"),
    ("annotation not a string", _set(["annotations"], {"org.example.n": 1}),
     'config.json: annotations["org.example.n"]: must be a string, not an integer'),
    ("mount without destination", _delete(["mounts", 0, "destination"]),
     "config.json: mounts[0].destination: is required"),
    ("memory limit as string", _set(["linux", "resources", "memory"], {"limit": "1G"}),
     "config.json: linux.resources.memory.limit: must be an integer, not a string"),
    ("oomScoreAdj out of range", _set(["process", "oomScoreAdj"], 1001),
     "config.json: process.oomScoreAdj: must be between -1000 and 1000 (got 1001)"),
    ("time offsets without timens", _set(["linux", "timeOffsets"], {"boottime": {"secs": 1}}),
     'config.json: linux.timeOffsets: needs a time namespace: add {"type": "time"} to linux.namespaces'),
    ("seccomp without defaultAction", _set(["linux", "seccomp"], {"syscalls": []}),
     "config.json: linux.seccomp.defaultAction: is required"),
    ("ociVersion 2", _set(["ociVersion"], "2.0.0"),
     'config.json: ociVersion: "2.0.0" is not supported: ocirun runs configs of runtime-spec 1.x '
     '(1.0.0 to 1.2.0)'),
]


@pytest.mark.parametrize("mutate,message", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_config_message(mutate, message, reference):
    spec = default_spec()
    mutate(spec)
    with pytest.raises(ConfigError) as caught:
        validate(spec)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)
    # A schema error must be one jsonschema also finds there; a rule beyond the schema, none.
    violation = schema_violation(spec)
    if violation is None:
        assert reference.error_paths(spec) == set()
    else:
        assert caught.value.field == violation.path
        assert violation.path in reference.error_paths(spec)


def test_valid_configs_pass(runc_specs, reference, full_spec):
    configs = {"default": default_spec(), "rootless": default_spec(rootless=True), "full": full_spec,
               **runc_specs}
    for name, spec in configs.items():
        validate(spec)
        assert reference.error_paths(spec) == set(), name


def test_containerd_spec_needs_only_args(ctr_spec, reference):
    spec = copy.deepcopy(ctr_spec)
    with pytest.raises(ConfigError) as caught:
        validate(spec)
    assert str(caught.value) == "config.json: process.args: is required"
    spec["process"]["args"] = ["true"]
    validate(spec)
    assert reference.error_paths(spec) == set()


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.2.1+dev"])
def test_supported_versions_accepted(version):
    spec = default_spec()
    spec["ociVersion"] = version
    validate(spec)


@pytest.mark.parametrize("version", ["2.0.0", "0.6.0"])
def test_other_majors_rejected(version):
    spec = default_spec()
    spec["ociVersion"] = version
    with pytest.raises(ConfigError) as caught:
        validate(spec)
    assert caught.value.field == "ociVersion"


def test_unknown_fields_are_ignored(reference, full_spec):
    spec = full_spec
    spec["vendorExtension"] = {"anything": [1, 2]}
    spec["process"]["futureField"] = 3
    spec["linux"]["resources"]["memory"]["futureKnob"] = "x"
    spec["linux"]["seccomp"]["syscalls"][0]["comment"] = "kept by docker profiles"
    spec["mounts"][0]["extra"] = None
    spec["windows"] = {"layerFolders": ["C:\\"]}
    validate(spec)
    assert reference.error_paths(spec) == set()


def _schema_nodes(node):
    """Every subschema of a schema document, for the keyword audit."""
    yield node
    for key in ("properties", "$defs"):
        for child in node.get(key, {}).values():
            yield from _schema_nodes(child)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _schema_nodes(node[key])


def test_schemas_are_valid_and_use_only_keywords_the_fast_validator_knows(reference):
    assert ANNOTATION_KEYWORDS < SUPPORTED_KEYWORDS
    names = sorted(n for n in os.listdir(SCHEMA_DIR) if n.endswith(".json"))
    assert {"config.schema.json", "config-linux.json", "defs.json", "state.schema.json",
            "features.schema.json"} <= set(names)
    for name in names:
        document = reference.documents[name]
        reference.check_schema(document)
        resolver = reference.registry.resolver(base_uri=document["$id"])
        for node in _schema_nodes(document):
            if "$ref" in node:
                resolver.lookup(node["$ref"])
            assert set(node) <= SUPPORTED_KEYWORDS, (name, set(node) - SUPPORTED_KEYWORDS)
            assert all(isinstance(choice, str) for choice in node.get("enum", [])), name
            assert node.get("additionalProperties") is not False, name


SAMPLE_VALUES = [None, True, False, 0, 1, -1, 1.5, 2.0, 1001, -1001, 2 ** 32, 2 ** 63, 2 ** 64, "", "x",
                 "/abs", "rel", "CAP_X", "RLIMIT_X", "SCMP_ACT_X", "A=1", "1.0.0", [], ["a"], [1], {},
                 {"type": "pid"}, {"a": 1}, {"path": "/p"}]


def _all_paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _all_paths(child, path + (key,))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _all_paths(child, path + (index,))


def _mutants(base, count, seed):
    rng = random.Random(seed)
    paths = list(_all_paths(base))[1:]
    for _ in range(count):
        spec = copy.deepcopy(base)
        for _ in range(rng.choice((1, 1, 2))):
            path = rng.choice(paths)
            parent = spec
            try:
                for part in path[:-1]:
                    parent = parent[part]
                if rng.random() < 0.3:
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = copy.deepcopy(rng.choice(SAMPLE_VALUES))
            except (KeyError, IndexError, TypeError):
                continue  # an earlier mutation removed or replaced the path's parent
        yield spec


@pytest.mark.parametrize("base", ["default", "full"])
def test_fast_validator_agrees_with_jsonschema(base, reference, full_spec):
    """No mutant may pass one validator and fail the other, and errors must be placed alike."""
    document = full_spec if base == "full" else default_spec()
    invalid = 0
    for spec in _mutants(document, 400, seed=base):
        violation = schema_violation(spec)
        expected = reference.error_paths(spec)
        if violation is None:
            assert expected == set(), json.dumps(spec)
        else:
            invalid += 1
            assert violation.path in expected, (violation.path, expected, json.dumps(spec))
    assert invalid > 100  # the corpus really exercises the failure path


def test_state_and_features_documents(reference):
    state = {"ociVersion": "1.2.0", "id": "c1", "status": "created", "pid": 42, "bundle": "/b",
             "annotations": {}, "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00Z", "owner": ""}
    features = {"ociVersionMin": "1.0.0", "ociVersionMax": "1.2.0", "hooks": ["prestart"],
                "mountOptions": ["ro"], "annotations": {"org.opencontainers.runc.version": "x"},
                "linux": {"namespaces": ["pid", "user"], "capabilities": ["CAP_KILL"],
                          "cgroup": {"v1": True, "v2": False, "systemd": False},
                          "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW"]},
                          "apparmor": {"enabled": False}, "mountExtensions": {"idmap": {"enabled": False}}}}
    for document, schema in ((state, "state.schema.json"), (features, "features.schema.json")):
        assert schema_violation(document, schema) is None
        assert reference.error_paths(document, schema) == set()
    state["status"] = "sleeping"
    assert schema_violation(state, "state.schema.json").path == "status"
    del features["ociVersionMax"]
    assert schema_violation(features, "features.schema.json").path == "ociVersionMax"


def test_joined_user_namespace_needs_no_mappings(reference):
    spec = default_spec()
    spec["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"})
    validate(spec)
    assert reference.error_paths(spec) == set()


def test_missing_schemas_are_one_clear_error(monkeypatch, tmp_path):
    import ocirun.config.validate as module
    monkeypatch.setattr(module, "SCHEMA_DIR", str(tmp_path))
    monkeypatch.setattr(module, "_documents", {})
    monkeypatch.setattr(module, "_refs", {})
    with pytest.raises(OciError) as caught:
        validate(default_spec())
    assert str(caught.value).startswith(f"ocirun's schema {tmp_path}/config.schema.json cannot be read (")
    assert str(caught.value).endswith("reinstall ocirun with its schemas/ directory")
