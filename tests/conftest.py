"""Shared fixtures: run the real ocirun binary against the busybox bundle.

Every test gets its own --root under /run/ocirun-test and puts its cgroups
under /ocirun-test, so that the leak check at the end (tests/test_leaks.py,
always run last) can tell what the suite left behind.
"""

import copy
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OCIRUN = str(Path(sys.executable).parent / "ocirun")
BUSYBOX_ROOTFS = REPO / "bundles" / "busybox" / "rootfs"
TEST_ROOT = Path("/run/ocirun-test")
TEST_CGROUP_PARENT = "ocirun-test"


def pytest_collection_modifyitems(items):
    """The leak check must see the machine after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("leakcheck") is not None)


def pytest_configure(config):
    config.addinivalue_line("markers", "leakcheck: the suite's final check for leftovers")


@pytest.fixture
def runtime_root():
    root = TEST_ROOT / f"lifecycle-{uuid.uuid4().hex[:8]}"
    yield str(root)
    leftovers = sorted(os.listdir(root)) if root.exists() else []
    for container_id in leftovers:
        subprocess.run([OCIRUN, "--root", str(root), "delete", "--force", container_id],
                       capture_output=True, timeout=60)
    if root.exists():
        root.rmdir()
    assert not leftovers, f"test left containers behind: {leftovers}"


@pytest.fixture
def ocirun(runtime_root):
    """ocirun(*args) -> CompletedProcess, with this test's --root; check=False by default."""
    def run(*args, input=None, timeout=60, check=False, env=None, **kwargs):
        result = subprocess.run([OCIRUN, "--root", runtime_root, *map(str, args)], input=input,
                                capture_output=True, text=True, timeout=timeout, env=env, **kwargs)
        if check and result.returncode != 0:
            raise AssertionError(f"ocirun {' '.join(map(str, args))} failed "
                                 f"({result.returncode}): {result.stderr.strip()}")
        return result
    run.root = runtime_root
    return run


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


@pytest.fixture
def make_bundle(tmp_path):
    """make_bundle(spec=None, **config changes) -> path of a bundle dir with that config.json."""
    counter = iter(range(1000))

    def make(spec=None, **changes):
        bundle = tmp_path / f"bundle{next(counter)}"
        bundle.mkdir()
        config = copy.deepcopy(spec) if spec is not None else busybox_config(**changes)
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle
    return make


@pytest.fixture(scope="session", autouse=True)
def _test_cgroup_parents():
    """Remove the tests' cgroup parent (only the empty dirs the runtime left) at the end."""
    yield
    for controller in Path("/sys/fs/cgroup").iterdir():
        parent = controller / TEST_CGROUP_PARENT
        if parent.is_dir():
            for leftover in sorted(parent.rglob("*"), reverse=True):
                if leftover.is_dir():
                    try:
                        leftover.rmdir()
                    except OSError:
                        pass
            try:
                parent.rmdir()
            except OSError:
                pass
