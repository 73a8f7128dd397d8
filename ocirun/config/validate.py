"""Checks a config.json against ocirun's schemas, then against the rules a schema cannot say.

The schemas under schemas/ are plain JSON Schema (2020-12) and jsonschema
accepts them, but importing jsonschema costs 0.08-0.18 s on the reference VM,
more than runc's whole create; this module imports in under 1 ms and checks a
full config in about 1 ms. So the hot path uses the small interpreter below,
which knows only the keywords our schemas use (SUPPORTED_KEYWORDS). The tests
run every schema and a corpus of good and mutated configs through both it and
jsonschema and require the same verdict at the same place, and fail as soon as
a schema uses a keyword the interpreter does not know. Unlike a cache of
validated hashes it needs no writable state, costs the same on the first run
and has no stale entry to trust.
"""

import json
import os
import re

from .. import OCI_VERSION
from ..errors import ConfigError, OciError

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "schemas")
CONFIG_SCHEMA = "config.schema.json"

# Keywords that only document or locate; they never reject anything.
ANNOTATION_KEYWORDS = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description"})
# Keywords the interpreter enforces. `enum` is limited to lists of strings and
# `additionalProperties` to its schema form (unknown fields must stay legal).
SUPPORTED_KEYWORDS = ANNOTATION_KEYWORDS | frozenset({
    "$ref", "type", "enum", "pattern", "minLength", "minimum", "maximum",
    "required", "properties", "additionalProperties", "minItems", "items",
})

_JSON_TYPE_NAMES = {
    "object": "an object", "array": "an array", "string": "a string", "integer": "an integer",
    "number": "a number", "boolean": "a boolean", "null": "null",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_documents: dict[str, dict] = {}
_refs: dict[tuple[str, str], tuple[dict, str]] = {}
_patterns: dict[str, re.Pattern] = {}


class Violation(Exception):
    """Where a document breaks its schema; `parts` is filled innermost first while unwinding."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.parts: list = []

    @property
    def path(self) -> str:
        return render_path(reversed(self.parts))


def render_path(parts) -> str:
    """JSON path as users write it: process.args[0], annotations["org.example.key"]."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def load_schema(name: str) -> dict:
    """One of the schema documents in schemas/, parsed once per process."""
    document = _documents.get(name)
    if document is None:
        path = os.path.join(SCHEMA_DIR, name)
        try:
            with open(path, encoding="utf-8") as f:
                document = _documents[name] = json.load(f)
        except (OSError, ValueError) as e:
            raise OciError(f"ocirun's schema {path} cannot be read ({e}); reinstall ocirun "
                           "with its schemas/ directory") from None
    return document


def _resolve(ref: str, base: str) -> tuple[dict, str]:
    key = (base, ref)
    found = _refs.get(key)
    if found is None:
        name, _, pointer = ref.partition("#")
        name = name or base
        node = load_schema(name)
        for token in pointer.split("/")[1:]:
            node = node[token.replace("~1", "/").replace("~0", "~")]
        found = _refs[key] = (node, name)
    return found


def _has_type(value, type_name: str) -> bool:
    if type_name == "object":
        return isinstance(value, dict)
    if type_name == "array":
        return isinstance(value, list)
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if type_name == "integer":
        # JSON Schema counts 1.0 as an integer; so does jsonschema.
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, (int, float))  # "number"


def json_type(value) -> str:
    """What `value` is in JSON words, with its article: an array, a string, null."""
    for type_name in ("null", "boolean", "object", "array", "string", "integer", "number"):
        if _has_type(value, type_name):
            return _JSON_TYPE_NAMES[type_name]
    return type(value).__name__


def _range_message(schema: dict, value) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f"must be between {low} and {high} (got {value})"
    if low is not None:
        return f"must be at least {low} (got {value})"
    return f"must be at most {high} (got {value})"


def _check(schema: dict, base: str, value) -> None:
    """Raise Violation for the first rule `value` breaks; keyword order fixes which one."""
    ref = schema.get("$ref")
    if ref is not None:
        target, target_base = _resolve(ref, base)
        _check(target, target_base, value)

    expected = schema.get("type")
    if expected is not None:
        types = expected if isinstance(expected, list) else (expected,)
        if not any(_has_type(value, t) for t in types):
            wanted = " or ".join(_JSON_TYPE_NAMES[t] for t in types)
            raise Violation(f"must be {wanted}, not {json_type(value)}")

    enum = schema.get("enum")
    if enum is not None and value not in enum:
        choices = ", ".join(json.dumps(choice) for choice in enum)
        raise Violation(f"must be one of {choices} (got {json.dumps(value)})")

    if isinstance(value, str):
        min_length = schema.get("minLength")
        if min_length is not None and len(value) < min_length:
            raise Violation("must not be empty" if min_length == 1
                            else f"must be at least {min_length} characters long")
        pattern = schema.get("pattern")
        if pattern is not None:
            compiled = _patterns.get(pattern)
            if compiled is None:
                compiled = _patterns[pattern] = re.compile(pattern)
            if not compiled.search(value):
                what = schema.get("description") or f"a string matching {pattern}"
                raise Violation(f"must be {what} (got {json.dumps(value)})")

    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            raise Violation(_range_message(schema, value))

    elif isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                violation = Violation("is required")
                violation.parts.append(key)
                raise violation
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            item_schema = properties.get(key, extra)
            if item_schema is not None:
                try:
                    _check(item_schema, base, item)
                except Violation as violation:
                    violation.parts.append(key)
                    raise

    elif isinstance(value, list):
        min_items = schema.get("minItems")
        if min_items is not None and len(value) < min_items:
            raise Violation("must be a non-empty array" if min_items == 1
                            else f"must have at least {min_items} entries")
        item_schema = schema.get("items")
        if item_schema is not None:
            for index, item in enumerate(value):
                try:
                    _check(item_schema, base, item)
                except Violation as violation:
                    violation.parts.append(index)
                    raise


def schema_violation(document, schema_name: str = CONFIG_SCHEMA) -> Violation | None:
    """The first way `document` breaks schemas/<schema_name>, or None if it conforms."""
    try:
        _check(load_schema(schema_name), schema_name, document)
    except Violation as violation:
        return violation
    return None


def validate(spec: dict) -> None:
    """Raise ConfigError naming the field if `spec` is not a config ocirun can create a container from."""
    violation = schema_violation(spec)
    if violation is not None:
        raise ConfigError(violation.path, violation.message)
    _check_version(spec["ociVersion"])
    _check_linux_rules(spec)


def _check_version(version: str) -> None:
    if version.split(".", 1)[0] != "1":
        raise ConfigError("ociVersion", f'"{version}" is not supported: ocirun runs configs of '
                                        f'runtime-spec 1.x (1.0.0 to {OCI_VERSION})')


_NS_HINT = 'add {{"type": "{}"}} to linux.namespaces'


def _check_linux_rules(spec: dict) -> None:
    """The Linux requirements of config.md and config-linux.md that a schema cannot state.

    Checks that need the host or belong to one concern stay with that concern's
    module: sysctl keys (container/sysctl.py), device numbers (container/devices.py),
    mount options, rlimits, seccomp names, cgroupsPath."""
    if "root" not in spec:
        raise ConfigError("root", "is required on Linux: it names the container's root filesystem")
    if "process" not in spec:
        raise ConfigError("process", "is required to create a container: it says what to run")

    linux = spec.get("linux") or {}
    namespaces: dict[str, dict] = {}
    for index, namespace in enumerate(linux.get("namespaces", ())):
        kind = namespace["type"]
        if kind in namespaces:
            raise ConfigError(f"linux.namespaces[{index}]", f'namespace type "{kind}" is listed twice')
        namespaces[kind] = namespace

    for field in ("uidMappings", "gidMappings"):
        if field in linux and "user" not in namespaces:
            raise ConfigError(f"linux.{field}", "needs a user namespace: " + _NS_HINT.format("user"))
    user = namespaces.get("user")
    if user is not None and not user.get("path"):
        for field in ("uidMappings", "gidMappings"):
            if not linux.get(field):
                raise ConfigError(f"linux.{field}", "must map at least one id when a new user "
                                                    "namespace is created (or give the namespace a path)")

    for field in ("hostname", "domainname"):
        if spec.get(field) and "uts" not in namespaces:
            raise ConfigError(field, "needs a uts namespace: " + _NS_HINT.format("uts"))
    if linux.get("timeOffsets") and "time" not in namespaces:
        raise ConfigError("linux.timeOffsets", "needs a time namespace: " + _NS_HINT.format("time"))
    if linux.get("netDevices") and "network" not in namespaces:
        raise ConfigError("linux.netDevices", "needs a network namespace: " + _NS_HINT.format("network"))
