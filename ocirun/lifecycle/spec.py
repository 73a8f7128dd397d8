"""spec: write a default config.json, as `runc spec` does."""

import json
import os

from ..errors import OciError
from ..specgen import default_spec


def write_spec(bundle: str, rootless: bool) -> None:
    path = os.path.join(bundle, "config.json")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise OciError(f"{path} exists: remove it first or pass another --bundle") from None
    except OSError as e:
        raise OciError(f"cannot write {path}: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        json.dump(default_spec(rootless), f, indent=2)
        f.write("\n")
