"""update, pause, resume, ps and events: the commands engines drive through cgroups.

Each takes a click context whose ctx.obj.store is an ocirun.state.Store.
"""

import json
import re
import subprocess
import sys
import time

import click

from ..errors import OciError
from ..state import is_alive
from . import manager_from_state
from .base import signal_all

__all__ = ["events", "pause", "ps", "resume", "signal_all", "update"]


def _manager(state):
    if not state.cgroup:
        raise OciError(f"container {state.id} has no cgroup")
    return manager_from_state(state.cgroup)


# --- update ---------------------------------------------------------------------
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_bytes(value: str, flag: str) -> int:
    """Docker-style sizes: 1024, 64m, 1.5g (binary units); -1 means unlimited."""
    if value.strip() == "-1":
        return -1
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgtp]?)(?:i?b)?\s*", value.lower())
    if not m:
        raise OciError(f"{flag}: {value!r} is not a size (examples: 1048576, 512k, 64m, 1g, -1)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _flags_to_resources(f: dict) -> dict:
    def put(section, key, value):
        if value is not None:
            res.setdefault(section, {})[key] = value

    res: dict = {}
    for flag, key in (("memory", "limit"), ("memory_swap", "swap"), ("memory_reservation", "reservation"),
                      ("kernel_memory_tcp", "kernelTCP")):
        if f[flag] is not None:
            put("memory", key, parse_bytes(f[flag], "--" + flag.replace("_", "-")))
    for flag, key in (("cpu_shares", "shares"), ("cpu_quota", "quota"), ("cpu_period", "period"),
                      ("cpuset_cpus", "cpus"), ("cpuset_mems", "mems"),
                      ("cpu_rt_period", "realtimePeriod"), ("cpu_rt_runtime", "realtimeRuntime")):
        put("cpu", key, f[flag])
    put("pids", "limit", f["pids_limit"])
    put("blockIO", "weight", f["blkio_weight"])
    return res


def _read_resources(path: str) -> dict:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path) as f:
                text = f.read()
        doc = json.loads(text)
    except OSError as e:
        raise OciError(f"-r {path}: {e.strerror}") from None
    except ValueError as e:
        raise OciError(f"-r {path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise OciError(f"-r {path}: expected a JSON object (a LinuxResources document)")
    return doc


# Values the kernel takes as a pair: sending one alone would reset the other.
_PAIRS = {"memory": ("limit", "swap"), "cpu": ("quota", "period")}


def _merge(old: dict, new: dict) -> tuple[dict, dict]:
    """(merged resources to store, what to write to the cgroup now)."""
    merged = json.loads(json.dumps(old or {}))
    changes = {}
    for section, value in new.items():
        if section == "devices" or value is None:
            continue  # like runc, update never rewrites the device rules
        if isinstance(value, dict) and section not in ("unified", "rdma"):
            given = {k: v for k, v in value.items() if v is not None}
            merged.setdefault(section, {}).update(given)
            change = dict(given)
            for key in _PAIRS.get(section, ()):
                if set(_PAIRS[section]) & set(given) and merged[section].get(key) is not None:
                    change[key] = merged[section][key]
            changes[section] = change
        else:
            merged[section] = value
            changes[section] = value
    return merged, changes


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("container_id", metavar="ID")
@click.option("-r", "--resources", "resources_file", metavar="FILE",
              help="JSON LinuxResources to apply (- reads stdin); other flags are then ignored")
@click.option("--memory", help="memory limit (e.g. 64m; -1 for none)")
@click.option("--memory-swap", help="memory plus swap limit (e.g. 128m; -1 for none)")
@click.option("--memory-reservation", help="memory soft limit")
@click.option("--kernel-memory-tcp", help="kernel TCP buffer memory limit")
@click.option("--cpu-shares", "--cpu-share", "cpu_shares", type=int, help="relative CPU weight")
@click.option("--cpu-quota", type=int, help="CPU time in microseconds per period (-1 for none)")
@click.option("--cpu-period", type=int, help="CPU period in microseconds")
@click.option("--cpu-rt-period", type=int, help="real-time period in microseconds")
@click.option("--cpu-rt-runtime", type=int, help="real-time runtime in microseconds")
@click.option("--cpuset-cpus", help="CPUs to run on (e.g. 0-2,4)")
@click.option("--cpuset-mems", help="memory nodes to use")
@click.option("--pids-limit", type=int, help="maximum number of processes (-1 for none)")
@click.option("--blkio-weight", type=int, help="block IO weight (10-1000)")
@click.pass_context
def update(ctx, container_id, resources_file, **flags):
    """Change the resource limits of a running container."""
    store = ctx.obj.store
    new = _read_resources(resources_file) if resources_file else _flags_to_resources(flags)
    with store.lock(container_id):
        state = store.load(container_id)
        if store.status(state) == "stopped":
            raise OciError(f"container {container_id} is not running")
        manager = _manager(state)
        linux = state.config.setdefault("linux", {})
        merged, changes = _merge(linux.get("resources") or {}, new)
        manager.set(changes, source="update")
        linux["resources"] = merged
        store.save(state)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("container_id", metavar="ID")
@click.pass_context
def pause(ctx, container_id):
    """Freeze every process of the container."""
    store = ctx.obj.store
    with store.lock(container_id):
        state = store.load(container_id)
        if store.status(state) not in ("running", "created"):
            raise OciError(f"container {container_id} is not running")
        _manager(state).freeze()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("container_id", metavar="ID")
@click.pass_context
def resume(ctx, container_id):
    """Thaw a paused container."""
    store = ctx.obj.store
    with store.lock(container_id):
        state = store.load(container_id)
        if store.status(state) != "paused":
            raise OciError(f"container {container_id} is not paused")
        _manager(state).thaw()


@click.command(context_settings={"help_option_names": ["-h", "--help"],
                                 "ignore_unknown_options": True})
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.argument("container_id", metavar="ID")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ps(ctx, fmt, container_id, ps_args):
    """List the container's processes (table: ps(1) output, extra args go to ps)."""
    state = ctx.obj.store.load(container_id)
    pids = _manager(state).pids()
    if fmt == "json":
        if ps_args:
            raise OciError("ps: options for ps(1) only go with --format table")
        click.echo(json.dumps(pids))
        return
    args = list(ps_args) or ["-ef"]
    try:
        out = subprocess.run(["ps", *args], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        raise OciError("ps: the ps command is not installed; use --format json") from None
    except subprocess.CalledProcessError as e:
        raise OciError(f"ps {' '.join(args)}: {e.stderr.strip() or 'failed'}") from None
    lines = out.splitlines()
    if not lines:
        return
    header = lines[0].split()
    if "PID" not in header:
        raise OciError(f"ps {' '.join(args)}: the output has no PID column")
    column = header.index("PID")
    wanted = set(pids)
    click.echo(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            click.echo(line)


# --- events ---------------------------------------------------------------------
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration syntax (5s, 100ms, 1m30s), as runc's --interval takes."""
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise OciError(f"--interval: {text!r} is not a duration (examples: 5s, 500ms, 1m)")
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise OciError("--interval: must be greater than zero")
    return seconds


def _emit(kind: str, container_id: str, data=None) -> None:
    event = {"type": kind, "id": container_id}
    if data is not None:
        event["data"] = data
    click.echo(json.dumps(event))
    sys.stdout.flush()


def _stats(manager) -> dict:
    data = manager.stats()
    data.update({"intel_rdt": {}, "network_interfaces": None})
    return data


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--interval", default="5s", show_default=True, help="how often to report stats")
@click.option("--stats", "once", is_flag=True, help="print the stats once and exit")
@click.argument("container_id", metavar="ID")
@click.pass_context
def events(ctx, interval, once, container_id):
    """Stream JSON events: stats every --interval, and oom when the OOM killer fires."""
    period = parse_duration(interval)
    store = ctx.obj.store
    state = store.load(container_id)
    if store.status(state) == "stopped":
        raise OciError(f"container {container_id} is not running")
    manager = _manager(state)
    if once:
        _emit("stats", container_id, _stats(manager))
        return
    try:
        watch = manager.oom_watch()
    except (OciError, OSError):
        watch = None  # no memory controller: stats only
    try:
        next_stats = time.monotonic()
        while is_alive(state):
            now = time.monotonic()
            if now >= next_stats:
                _emit("stats", container_id, _stats(manager))
                next_stats = now + period
            # Wake at least every second to notice that the container has gone.
            timeout = min(next_stats - now, 1.0)
            if watch:
                for _ in range(watch.wait(timeout)):
                    _emit("oom", container_id)
            else:
                time.sleep(timeout)
    except BrokenPipeError:
        pass
    finally:
        if watch:
            watch.close()
