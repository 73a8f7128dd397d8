"""Shared fixtures: run the real ocirun binary against the busybox bundle.

Every test gets its own --root under /run/ocirun-test and puts its cgroups
under /ocirun-test, so that the leak check at the end (tests/leakcheck.py,
run once the session is over) can tell what the suite left behind.
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


def pytest_sessionfinish(session, exitstatus):
    """The leak check, once every fixture of every scope is gone: any mount,
    process, cgroup or state directory left behind fails the run."""
    if session.config.option.collectonly or not session.items:
        return
    from leakcheck import find_leaks
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    reporter.write("\n")
    leaks = find_leaks()
    if not leaks:
        reporter.write_line("leak check: nothing left behind (mounts, processes, cgroups, state dirs)")
        return
    reporter.write_line("LEAK CHECK FAILED: the test suite left these behind:", red=True, bold=True)
    for kind, found in leaks.items():
        for entry in found[:20]:
            reporter.write_line(f"  {kind}: {entry}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
def _test_cgroup_parent():
    """Remove the tests' cgroup parent at the end. Only the parent: a container
    cgroup still inside it is a leak, for the leak check to report."""
    yield
    for controller in Path("/sys/fs/cgroup").iterdir():
        try:
            (controller / TEST_CGROUP_PARENT).rmdir()
        except OSError:
            pass
