"""Fixtures for the OCI runtime conformance suite.

    pytest conformance --runtime runc=/usr/sbin/runc [--runtime crun=/usr/bin/crun]
                       [--conformance-json results.json]

Every test carries `@pytest.mark.spec(ref, text, level=...)` naming the spec
requirement it checks; `--conformance-json` writes one record per test for
`python -m conformance.report`.
"""
import itertools
import json
import os
import shlex
import shutil
from pathlib import Path

import pytest

from conformance import harness

LEVELS = ("MUST", "SHOULD", "runc-compat")


def pytest_addoption(parser):
    group = parser.getgroup("conformance")
    group.addoption("--runtime", action="append", default=[], metavar="[NAME=]PATH [FLAG...]",
                    help="runtime to test, with global flags it needs, e.g. "
                    "'crun=/usr/bin/crun --cgroup-manager=disabled'; repeatable "
                    "(default: $CONFORMANCE_RUNTIME)")
    group.addoption("--conformance-json", metavar="PATH",
                    help="write one JSON record per test (requirement, runtime, outcome)")


def _runtimes(config):
    specs = config.getoption("--runtime") or (
        [os.environ["CONFORMANCE_RUNTIME"]] if os.environ.get("CONFORMANCE_RUNTIME") else [])
    runtimes = []
    for spec in specs:
        name, sep, command = spec.partition("=")
        if not sep:
            name, command = None, spec
        path, *global_args = shlex.split(command)
        resolved = shutil.which(path)
        if not resolved:
            raise pytest.UsageError(f"--runtime {spec}: {path} is not an executable")
        runtimes.append((name or Path(path).name, resolved, tuple(global_args)))
    return runtimes


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "spec(ref, text, level='MUST'): the runtime-spec requirement a test checks")
    if os.geteuid() != 0:
        raise pytest.UsageError("conformance: run as root (containers, cgroups and mounts)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        mark = item.get_closest_marker("spec")
        if mark is None:
            raise pytest.UsageError(f"{item.nodeid}: every conformance test needs @pytest.mark.spec")
        level = mark.kwargs.get("level", "MUST")
        if level not in LEVELS:
            raise pytest.UsageError(f"{item.nodeid}: spec level {level!r} not in {LEVELS}")


def pytest_generate_tests(metafunc):
    if "runtime_binary" in metafunc.fixturenames:
        runtimes = _runtimes(metafunc.config)
        if not runtimes:
            raise pytest.UsageError("conformance: give --runtime [NAME=]PATH (or $CONFORMANCE_RUNTIME)")
        metafunc.parametrize("runtime_binary", runtimes, ids=[r[0] for r in runtimes], scope="session")


@pytest.fixture(scope="session")
def scratch():
    """The suite's own directory for state roots and bundles; world-traversable
    so that containers in a user namespace can reach their bundle."""
    harness.SCRATCH_BASE.mkdir(parents=True, exist_ok=True)
    harness.sweep_dead_runs()
    d = harness.SCRATCH_BASE / f"conformance-{os.getpid()}"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)
    harness.remove_suite_cgroup_parents()


_counter = itertools.count()


@pytest.fixture
def workdir(scratch):
    d = scratch / f"t{next(_counter)}"
    d.mkdir(mode=0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def runtime(runtime_binary, workdir):
    """The runtime under test with a per-test --root. Teardown force-deletes
    every container the test created, then removes whatever is still there
    (processes, cgroups, host mounts) and fails the test if it found any, or
    a state entry."""
    name, path, global_args = runtime_binary
    rt = harness.Runtime(name, path, workdir / "state", global_args)
    yield rt
    leftovers = []
    for cid in rt.created_ids:
        try:
            if rt.state(cid) is not None:
                rt.delete(cid, force=True, check=False)
                if rt.state(cid) is not None:
                    leftovers.append(f"container {cid} still known after delete --force")
        except ValueError as err:  # state printed something that is not JSON
            leftovers.append(f"container {cid}: state output unreadable: {err}")
    killed = harness.kill_seen(rt.seen_pids) + harness.kill_mentioning(f"{workdir}/")
    if killed:
        leftovers.append(f"processes {sorted(set(killed))} still running")
    for cid in rt.created_ids:
        for d in harness.existing_cgroup_dirs(cid):
            leftovers.append(f"cgroup {d} left behind")
            harness.remove_cgroup_tree(d)
    mounts = harness.mounts_under(workdir)
    for point in mounts:
        harness.unmount(point)
    if mounts:
        leftovers.append(f"host mounts {mounts} left behind")
    if rt.root.exists():
        stale = [p.name for p in rt.root.iterdir()]
        if stale:
            leftovers.append(f"state entries {stale} left in {rt.root}")
    if leftovers:
        pytest.fail("cleanup: " + "; ".join(leftovers))


_ids = itertools.count()


@pytest.fixture
def new_id():
    """Container ids unique across concurrent runs of the suite."""
    return lambda: f"conf-{os.getpid()}-{next(_ids)}"


@pytest.fixture
def make_bundle(workdir, new_id):
    def make(cid=None, rootfs=harness.BUSYBOX_ROOTFS):
        return harness.Bundle(workdir, cid or new_id(), rootfs)
    return make


@pytest.fixture
def bundle(make_bundle):
    return make_bundle()


@pytest.fixture
def private_rootfs(workdir):
    return harness.copy_rootfs(workdir / "rootfs")


# --- result collection --------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    mark = item.get_closest_marker("spec")
    report.user_properties.append(("spec", {
        "ref": mark.args[0], "text": mark.args[1], "level": mark.kwargs.get("level", "MUST")}))
    callspec = getattr(item, "callspec", None)
    if callspec and "runtime_binary" in callspec.params:
        report.user_properties.append(("runtime", callspec.params["runtime_binary"][0]))


# nodeid -> record, one per test, written out by pytest_sessionfinish.
_RECORDS = {}


def pytest_runtest_logreport(report):
    props = dict(report.user_properties)
    if "spec" not in props:
        return
    rec = _RECORDS.setdefault(report.nodeid, {
        "nodeid": report.nodeid, "runtime": props.get("runtime"), **props["spec"],
        "outcome": "passed", "message": ""})
    if report.skipped:
        rec["outcome"] = "skipped"
        rec["message"] = _message(report)
    elif report.failed:
        # A failed check stays "failed" even when cleanup fails too.
        if rec["outcome"] != "failed":
            rec["outcome"] = "failed" if report.when == "call" else "error"
        rec["message"] = (rec["message"] + " | " if rec["message"] else "") + _message(report)


def _message(report):
    if report.skipped and isinstance(report.longrepr, tuple):
        return report.longrepr[2]
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.splitlines()[0][:400] if crash.message else ""
    return str(report.longrepr).strip().splitlines()[-1][:400] if report.longrepr else ""


def pytest_sessionfinish(session):
    path = session.config.getoption("--conformance-json")
    if path:
        Path(path).write_text(json.dumps(list(_RECORDS.values()), indent=2))
