"""Reading <bundle>/config.json: one-line errors for every way it can be wrong, and no jsonschema import."""

import json
import os
import subprocess
import sys

import pytest

from ocirun.config.load import load_bundle
from ocirun.errors import ConfigError, OciError
from ocirun.specgen import default_spec


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(default_spec()))
    return tmp_path


def _error(bundle_dir) -> str:
    with pytest.raises(OciError) as caught:
        load_bundle(str(bundle_dir))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_valid_bundle_returns_the_spec(bundle):
    assert load_bundle(str(bundle)) == default_spec()


def test_missing_bundle_directory(tmp_path):
    assert _error(tmp_path / "nope") == (f"bundle {tmp_path}/nope: not a directory; "
                                         "pass the bundle's directory with --bundle")


def test_missing_config(tmp_path):
    assert _error(tmp_path) == (f"{tmp_path}/config.json: no such file; a bundle needs a config.json "
                                f"(`ocirun spec --bundle {tmp_path}` writes a default one)")


def test_config_is_a_directory(tmp_path):
    (tmp_path / "config.json").mkdir()
    assert _error(tmp_path) == (f"{tmp_path}/config.json: is a directory, not a file; "
                                "replace it with the container's configuration")


def test_bad_json_names_line_and_column(bundle):
    (bundle / "config.json").write_text('{\n  "ociVersion": "1.0.0",\n  "process": }\n')
    assert _error(bundle) == (f"{bundle}/config.json: invalid JSON at line 3 column 14: "
                              "Expecting value")


def test_not_utf8(bundle):
    (bundle / "config.json").write_bytes(b'{"ociVersion": "\xff"}')
    assert _error(bundle) == f"{bundle}/config.json: not UTF-8 text (byte 16); save it as UTF-8 JSON"


@pytest.mark.parametrize("text,kind", [("[]", "an array"), ("null", "null"), ('"x"', "a string")])
def test_not_an_object(bundle, text, kind):
    (bundle / "config.json").write_text(text)
    assert _error(bundle) == f"{bundle}/config.json: must hold a JSON object, not {kind}"


def test_invalid_config_is_a_config_error(bundle):
    spec = default_spec()
    spec["process"]["args"] = []
    (bundle / "config.json").write_text(json.dumps(spec))
    with pytest.raises(ConfigError) as caught:
        load_bundle(str(bundle))
    assert str(caught.value) == "config.json: process.args: must be a non-empty array"


def test_missing_rootfs(bundle):
    os.rmdir(bundle / "rootfs")
    with pytest.raises(ConfigError) as caught:
        load_bundle(str(bundle))
    assert str(caught.value) == (f"config.json: root.path: {bundle}/rootfs is not a directory; "
                                 "unpack the container's root filesystem there")


def test_absolute_root_path(bundle, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("config-rootfs")
    spec = default_spec()
    spec["root"]["path"] = str(elsewhere)
    (bundle / "config.json").write_text(json.dumps(spec))
    assert load_bundle(str(bundle))["root"]["path"] == str(elsewhere)


def test_loading_does_not_import_jsonschema(bundle):
    """The hot path of `ocirun create` must not pay for jsonschema's import."""
    code = ("import sys; from ocirun.config.load import load_bundle; "
            f"load_bundle({str(bundle)!r}); "
            "print(sorted(m for m in sys.modules if m.startswith('jsonschema')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
