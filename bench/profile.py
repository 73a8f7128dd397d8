"""Where one `ocirun state` and one `ocirun run` spend their time: import
times (python -X importtime), a cProfile of the command, and the cost of
start-up with and without up-to-date bytecode (PYTHONDONTWRITEBYTECODE)."""

import importlib.util
import os
import pstats
import re
import sys
from pathlib import Path

from .common import OCIRUN, REPO, Runtime, make_bundle, median, timed

PY = sys.executable


def _importtime(cmd: list[str]) -> list[tuple[int, int, str]]:
    """(self us, cumulative us, module) of each import, from -X importtime."""
    result = timed([PY, "-X", "importtime", *cmd])
    rows = []
    for line in result.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), len(m.group(3)), m.group(4)))
    return rows


def _top_level_imports(rows, n=12) -> list[str]:
    """The costliest imports at the first level below the script: what the
    command pulls in, each with everything it drags along."""
    shallowest = min((r[2] for r in rows), default=0)
    top = sorted((r for r in rows if r[2] == shallowest), key=lambda r: -r[1])[:n]
    total = sum(r[0] for r in rows)
    return [f"  total self time of all imports: {total / 1000:.1f} ms"] + [
        f"  {cum / 1000:7.1f} ms  {name}" for _, cum, _, name in top]


def _heavy(rows) -> list[str]:
    wanted = ("jsonschema", "click", "requests", "zstandard", "prctl", "ocirun.config",
              "ocirun.cli", "ocirun.lifecycle", "json", "ctypes", "subprocess", "logging")
    found = []
    for _, cum, _, name in rows:
        if name in wanted:
            found.append(f"  {cum / 1000:7.1f} ms  {name} (cumulative, where first imported)")
    return found


def _cprofile(cmd: list[str], out: Path, n=12) -> list[str]:
    """The command's own functions by cumulative time (what runs after the
    imports), then every function by self time (where the time goes)."""
    result = timed([PY, "-m", "cProfile", "-o", str(out), *cmd])
    if not result.ok or not out.exists():
        return [f"  the profiled command failed: {result.why()}"]
    entries = pstats.Stats(str(out)).stats.items()

    def line(key, value):
        (path, lineno, func), (_, calls, own, cumulative, _) = key, value
        return (f"  {cumulative * 1000:8.1f} ms cum {own * 1000:7.1f} ms self {calls:6d}x  "
                f"{func} ({Path(path).name}:{lineno})")
    ours = sorted(((k, v) for k, v in entries if f"{os.sep}ocirun{os.sep}" in k[0]
                   and k[2] != "<module>"), key=lambda kv: -kv[1][3])[:n]
    busiest = sorted(entries, key=lambda kv: -kv[1][2])[:n]
    return (["  ocirun's functions, by cumulative time:"] + [line(*kv) for kv in ours]
            + ["  all functions, by self time:"] + [line(*kv) for kv in busiest])


def _stale_bytecode() -> list[str]:
    """ocirun modules whose __pycache__ is missing or older than the source:
    with PYTHONDONTWRITEBYTECODE set, each run compiles them again."""
    stale = []
    for src in sorted((REPO / "ocirun").rglob("*.py")):
        pyc = Path(importlib.util.cache_from_source(str(src)))
        if not pyc.exists() or pyc.stat().st_mtime < src.stat().st_mtime:
            stale.append(str(src.relative_to(REPO)))
    return stale


def profile(runtimes: list[Runtime], work: Path) -> list[str]:
    ocirun = next(r for r in runtimes if r.name == "ocirun")
    bundle = make_bundle(work, "profile-state", args=("sleep", "3600"))
    report = [(f"ocirun at {OCIRUN}; PYTHONDONTWRITEBYTECODE="
               f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '(unset)')}")]
    created = ocirun("create", "--bundle", bundle, "profile-state")
    try:
        state_cmd = [OCIRUN, "--root", str(ocirun.root), "state", "profile-state"]
        if not created.ok:
            report.append("create failed, profiling `state` of a missing container: "
                          + created.why())
        run_bundle = make_bundle(work, "profile-run")
        for title, cmd in (
                ("ocirun state", state_cmd),
                ("ocirun run /bin/true", [OCIRUN, "--root", str(ocirun.root), "run", "--bundle",
                                          str(run_bundle), "profile-run"])):
            rows = _importtime(cmd)
            if title.endswith("true"):
                ocirun("delete", "--force", "profile-run")
                run_bundle = make_bundle(work, "profile-run2")
                cmd = cmd[:-2] + [str(run_bundle), "profile-run2"]
            report += [f"\n== {title}: imports (python -X importtime) ==", *_top_level_imports(rows),
                       "  the usual suspects:", *_heavy(rows)]
            report += [f"\n== {title}: cProfile, by cumulative time ==",
                       *_cprofile(cmd, work / f"{title.split()[1]}.prof")]
            if title.endswith("true"):
                ocirun("delete", "--force", "profile-run2")
    finally:
        ocirun("delete", "--force", "profile-state")

    stale = _stale_bytecode()
    report.append("\n== start-up ==")
    for label, code in (("python -c pass", "pass"), ("python -S -c pass", None),
                        ("import click", "import click"), ("import jsonschema", "import jsonschema"),
                        ("import ocirun.cli", "import ocirun.cli")):
        cmd = [PY, "-S", "-c", "pass"] if code is None else [PY, "-c", code]
        report.append(f"  {median([timed(cmd).seconds for _ in range(5)]) * 1000:7.1f} ms  {label}")
    for label, env in (("state, PYTHONDONTWRITEBYTECODE=1", dict(os.environ, PYTHONDONTWRITEBYTECODE="1")),
                       ("state, bytecode written", {k: v for k, v in os.environ.items()
                                                    if k != "PYTHONDONTWRITEBYTECODE"})):
        t = median([timed(state_cmd, env=env).seconds for _ in range(5)])
        report.append(f"  {t * 1000:7.1f} ms  ocirun {label}")
    report.append(f"  ocirun modules with missing or stale bytecode: {len(stale)}"
                  + (": " + ", ".join(stale[:12]) + (" ..." if len(stale) > 12 else "") if stale else ""))
    return report
