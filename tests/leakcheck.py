"""The suite's leak check: nothing that the runtime or the tests made is left behind.

Run from conftest.py's pytest_sessionfinish, i.e. after every fixture of
every scope has been torn down (a last test item would still see the
session-scoped engines and registries alive).
"""

import json
import os
from pathlib import Path

from ocirun.state import DEFAULT_ROOT
from ocitest import TEST_CGROUP_PARENT, TEST_ROOT


def _our_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.strip() for line in f if "ocirun" in line or "/bundle" in line]


def _runtime_processes() -> list[str]:
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if "ocirun" in cmdline and "pytest" not in cmdline and "reaper.py" not in cmdline:
            found.append(f"{entry.name} [{stat.rsplit(')', 1)[1].split()[0]}] {cmdline.strip()}")
    return found


def _leftover_cgroups() -> list[str]:
    leftovers = []
    for controller in Path("/sys/fs/cgroup").iterdir():
        parent = controller / TEST_CGROUP_PARENT
        if parent.is_dir():
            leftovers += [str(p) for p in parent.iterdir() if p.is_dir()]
        for name in ("ocirun",):
            if (controller / name).is_dir() and any(p.is_dir() for p in (controller / name).iterdir()):
                leftovers.append(str(controller / name))
    return leftovers


def _leftover_state() -> list[str]:
    leftovers = [str(p) for p in TEST_ROOT.rglob("*")] if TEST_ROOT.exists() else []
    # podman drives ocirun with its default --root: containers of the tests'
    # own podman (bundles under TEST_ROOT) must be gone from there too.
    for state_file in Path(DEFAULT_ROOT).glob("*/state.json"):
        try:
            bundle = json.loads(state_file.read_text()).get("bundle", "")
        except (OSError, ValueError):
            continue
        if bundle.startswith(str(TEST_ROOT)):
            leftovers.append(str(state_file.parent))
    return leftovers


def find_leaks() -> dict[str, list[str]]:
    leaks = {
        "mounts": _our_mounts(),
        "processes": _runtime_processes(),
        "cgroups": _leftover_cgroups(),
        "state dirs": _leftover_state(),
    }
    return {kind: found for kind, found in leaks.items() if found}
