"""Constants and helpers the lead's tests share (conftest.py holds the fixtures).

A module of its own name, because several test folders have a conftest.py
and `import conftest` would find whichever comes first on sys.path.
"""

import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OCIRUN = str(Path(sys.executable).parent / "ocirun")
BUSYBOX_ROOTFS = REPO / "bundles" / "busybox" / "rootfs"
TEST_ROOT = Path("/run/ocirun-test")
TEST_CGROUP_PARENT = "ocirun-test"


def busybox_config(args=("sh", "-c", "echo hello"), **changes) -> dict:
    """A config like `ocirun spec`'s, pointing at the shared busybox rootfs (read-only)."""
    from ocirun.specgen import default_spec
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = list(args)
    spec["root"] = {"path": str(BUSYBOX_ROOTFS), "readonly": True}
    spec["linux"]["cgroupsPath"] = f"/{TEST_CGROUP_PARENT}/{uuid.uuid4().hex[:12]}"
    for key, value in changes.items():
        spec[key] = value
    return spec
