"""Sections 1, 3 and 4: the container cycle, the latency and peak RSS of each
command, the RSS of a waiting init, and the cost of each command as the number
of containers grows. ocirun and runc alternate, one command at a time."""

import json
import time
from pathlib import Path

from .common import Row, Runtime, make_bundle, median

OPS = ("create", "start", "state", "kill", "delete")
RSS_ROUNDS = 3   # peak RSS barely varies; each such run is not timed


def _alternate(runtimes: list[Runtime], i: int) -> list[Runtime]:
    """Each runtime goes first every other round, so neither always inherits
    the other's warm caches."""
    return runtimes if i % 2 == 0 else runtimes[::-1]


def _fail(runtime: Runtime, what: str, result):
    if not runtime.failed:
        runtime.failed = f"{what}: {result.why()}"


def cycle(runtimes: list[Runtime], work: Path, n: int) -> list[Row]:
    """N sequential foreground `run`s of /bin/true; run deletes on exit."""
    times = {r.name: [] for r in runtimes}
    peaks = {r.name: [] for r in runtimes}
    for i in range(n):
        for rt in _alternate(runtimes, i):
            if rt.failed:
                continue
            cid = f"cycle-{rt.name}-{i}"
            bundle = make_bundle(work, cid)
            result = rt("run", "--bundle", bundle, cid)
            if result.ok:
                times[rt.name].append(result.seconds)
            else:
                _fail(rt, "run", result)
    for i in range(RSS_ROUNDS):
        for rt in _alternate(runtimes, i):
            if not rt.failed:
                cid = f"cycle-rss-{rt.name}-{i}"
                result = rt("run", "--bundle", make_bundle(work, cid), cid, rss=True)
                if result.ok:
                    peaks[rt.name].append(result.maxrss_kib)
    return [
        _row("cycle", f"run /bin/true (median of {n})", "ms", times, 1000, 1.0, "<= 1.0x runc",
             runtimes),
        _row("cycle", f"run /bin/true, {n} in sequence", "s",
             {k: [sum(v)] if len(v) == n else [] for k, v in times.items()}, 1, 1.0,
             "<= 1.0x runc", runtimes),
        _row("memory", "peak RSS of run", "MiB", peaks, 1 / 1024, None, "", runtimes),
    ]


def _row(section, metric, unit, samples, scale, target, target_text, runtimes) -> Row:
    ours = median(samples.get("ocirun", []))
    theirs = median(samples.get("runc", []))
    failed = next((r.failed for r in runtimes if r.name == "ocirun" and r.failed), "")
    return Row(section, metric, unit,
               None if ours is None else ours * scale,
               None if theirs is None else theirs * scale, "runc", target, target_text,
               note=f"ocirun failed: {failed}" if failed and ours is None else "",
               samples={k: [round(x * scale, 3) for x in v] for k, v in samples.items()})


def _vmrss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _wait_stopped(rt: Runtime, cid: str, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = rt.state(cid)
        if state is None or state.get("status") == "stopped":
            return
        time.sleep(0.01)


def operations(runtimes: list[Runtime], work: Path, repeats: int) -> list[Row]:
    """create, state, start, kill and delete of a container that sleeps, one at a
    time; between create and start, the RSS of the waiting init. The first half
    of the rounds is timed, the second half takes each command's peak RSS."""
    times = {op: {r.name: [] for r in runtimes} for op in OPS}
    peaks = {op: {r.name: [] for r in runtimes} for op in OPS}
    init_rss = {r.name: [] for r in runtimes}
    for i in range(repeats):
        for rt in _alternate(runtimes, i):
            if rt.failed:
                continue
            cid = f"ops-{rt.name}-{i}"
            bundle = make_bundle(work, cid, args=("sleep", "3600"))
            try:
                _one_container(rt, cid, bundle, times, peaks, init_rss,
                               rss=i >= max(1, repeats // 2))
            finally:
                if rt.state(cid) is not None:
                    rt("delete", "--force", cid)
    rows = [_row("latency", op, "ms", times[op], 1000, 2.5 if op == "state" else None,
                 "<= 2.5x runc" if op == "state" else "", runtimes) for op in OPS]
    rows.append(_row("memory", "RSS of the init waiting for start", "MiB", init_rss, 1 / 1024,
                     1.0, "<= runc's", runtimes))
    rows += [_row("memory", f"peak RSS of {op}", "MiB", peaks[op], 1 / 1024, None, "", runtimes)
             for op in OPS]
    return rows


def _one_container(rt, cid, bundle, times, peaks, init_rss, rss):
    def step(op, *args):
        result = rt(*args, rss=rss)
        if not result.ok:
            _fail(rt, op, result)
            return None
        if rss:
            peaks[op][rt.name].append(result.maxrss_kib)
        else:
            times[op][rt.name].append(result.seconds)
        return result

    if not step("create", "create", "--bundle", bundle, cid):
        return
    state_result = step("state", "state", cid)
    if not state_result:
        return
    pid = json.loads(state_result.stdout).get("pid")
    waiting = _vmrss_kib(pid) if pid else None
    if waiting is not None:
        init_rss[rt.name].append(waiting)
    if not step("start", "start", cid):
        return
    if not step("kill", "kill", cid, "KILL"):
        return
    _wait_stopped(rt, cid)
    step("delete", "delete", cid)


def scale(runtimes: list[Runtime], work: Path, n: int) -> list[Row]:
    """N containers created and left waiting; after each create, a `state` of
    it and a `list` of all; then each deleted. Per command, the median of the
    first k against the last k (k = 10, or fewer in quick mode)."""
    k = max(1, min(10, n // 3))
    series = {op: {r.name: [] for r in runtimes} for op in ("create", "state", "list", "delete")}
    created = {r.name: [] for r in runtimes}
    try:
        for i in range(n):
            for rt in _alternate(runtimes, i):
                if rt.failed:
                    continue
                cid = f"scale-{rt.name}-{i}"
                bundle = make_bundle(work, cid, args=("sleep", "3600"))
                result = rt("create", "--bundle", bundle, cid)
                if not result.ok:
                    _fail(rt, "create", result)
                    continue
                created[rt.name].append(cid)
                series["create"][rt.name].append(result.seconds)
                for op, args in (("state", ("state", cid)), ("list", ("list",))):
                    result = rt(*args)
                    if result.ok:
                        series[op][rt.name].append(result.seconds)
                    else:
                        _fail(rt, op, result)
        for i in range(n):
            for rt in _alternate(runtimes, i):
                if i >= len(created[rt.name]):
                    continue
                result = rt("delete", "--force", created[rt.name][i])
                if result.ok:
                    series["delete"][rt.name].append(result.seconds)
                else:
                    _fail(rt, "delete", result)
    finally:
        for rt in runtimes:
            for cid in created[rt.name]:
                if rt.state(cid) is not None:
                    rt("delete", "--force", cid)
    rows = []
    for op, per_runtime in series.items():
        ends = {name: _ends(values, k, op) for name, values in per_runtime.items()}
        for label, index in ((f"{k} containers", 0), (f"{n} containers", 1)):
            rows.append(_row("scale", f"{op} with {label} (median of {k})", "ms",
                             {name: [e[index]] for name, e in ends.items() if e}, 1000,
                             None, "", runtimes))
        growth = {name: [e[1] / e[0]] for name, e in ends.items() if e}
        row = _row("scale", f"{op}: growth from {k} to {n} containers", "x", growth, 1,
                   None, "", runtimes)
        if op != "list":  # list prints every container: it grows for any runtime
            # 200 waiting inits slow the whole machine down a little: runc's
            # growth is the floor of what "no growth" can mean here.
            row.limit = max(1.25, row.anchor or 0)
            row.target_text = "<= 1.25 or runc's"
        row.samples = {name: [round(v * 1000, 3) for v in values]
                       for name, values in per_runtime.items()}
        rows.append(row)
    return rows


def _ends(values, k, op):
    """(median with few containers, median with many), or None if too few samples.
    create, state and list ran with 1..n containers present; delete with n..1."""
    if len(values) < 2 * k:
        return None
    first, last = median(values[:k]), median(values[-k:])
    return (first, last) if op != "delete" else (last, first)
