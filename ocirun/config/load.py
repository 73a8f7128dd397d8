"""Reads <bundle>/config.json; every failure is one line naming the file and the way out."""

import json
import os

from ..errors import ConfigError, OciError
from .validate import json_type, validate


def load_bundle(bundle_dir: str) -> dict:
    """The validated spec of the bundle at `bundle_dir`, whose root filesystem exists."""
    if not os.path.isdir(bundle_dir):
        raise OciError(f"bundle {bundle_dir}: not a directory; pass the bundle's directory with --bundle")
    path = os.path.join(bundle_dir, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise OciError(f"{path}: no such file; a bundle needs a config.json "
                       f"(`ocirun spec --bundle {bundle_dir}` writes a default one)") from None
    except IsADirectoryError:
        raise OciError(f"{path}: is a directory, not a file; "
                       "replace it with the container's configuration") from None
    except OSError as e:
        raise OciError(f"{path}: cannot read: {e.strerror}") from None

    try:
        spec = json.loads(raw)
    except UnicodeDecodeError as e:
        raise OciError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        raise OciError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(spec, dict):
        raise OciError(f"{path}: must hold a JSON object, not {json_type(spec)}")

    validate(spec)
    rootfs = os.path.join(bundle_dir, spec["root"]["path"])
    if not os.path.isdir(rootfs):
        raise ConfigError("root.path", f"{rootfs} is not a directory; "
                                       "unpack the container's root filesystem there")
    return spec
