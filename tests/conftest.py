"""Shared fixtures: run the real ocirun binary against the busybox bundle.

Every test gets its own --root under /run/ocirun-test and puts its cgroups
under /ocirun-test, so that the leak check at the end (tests/test_leaks.py,
always run last) can tell what the suite left behind.
"""

import copy
import json
import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from ocitest import OCIRUN, TEST_CGROUP_PARENT, TEST_ROOT, busybox_config


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
    def run(*args, input=None, timeout=60, check=False, env=None):
        # Files, not pipes: a created container's init inherits our stdio and
        # keeps it open, so reading a pipe to its end would wait for the container.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            completed = subprocess.run([OCIRUN, "--root", runtime_root, *map(str, args)],
                                       input=input, stdout=out, stderr=err, text=True,
                                       timeout=timeout, env=env,
                                       stdin=None if input is not None else subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(completed.args, completed.returncode,
                                                 out.read(), err.read())
        if check and result.returncode != 0:
            raise AssertionError(f"ocirun {' '.join(map(str, args))} failed "
                                 f"({result.returncode}): {result.stderr.strip()}")
        return result
    run.root = runtime_root
    return run


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
