"""Real cgroup v1 behaviour on this host, with forked processes standing in for containers."""

import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from ocirun.cgroups import commands, manager_from_state, signal_all
from ocirun.errors import OciError

pytestmark = pytest.mark.root
MiB = 1 << 20


def cgfile(manager, controller, name):
    with open(os.path.join(manager.paths[controller][1], name)) as f:
        return f.read().strip()


def wait_for(predicate, what, attempts=500, pause=0.02):
    for _ in range(attempts):
        if predicate():
            return
        time.sleep(pause)
    raise AssertionError(f"gave up waiting for {what}")


def invoke(store, command, args, input=None):
    return CliRunner().invoke(command, args, obj=SimpleNamespace(store=store), input=input)


def test_limits_are_written(sandbox):
    m = sandbox.manager()
    m.set({"memory": {"limit": 64 * MiB, "swap": 96 * MiB, "reservation": 32 * MiB, "swappiness": 10},
           "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
           "pids": {"limit": 50}})
    assert cgfile(m, "memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert cgfile(m, "memory", "memory.memsw.limit_in_bytes") == str(96 * MiB)
    assert cgfile(m, "memory", "memory.soft_limit_in_bytes") == str(32 * MiB)
    assert cgfile(m, "cpu", "cpu.shares") == "512"
    assert cgfile(m, "cpu", "cpu.cfs_quota_us") == "50000"
    assert cgfile(m, "cpuset", "cpuset.cpus") == "0"
    assert cgfile(m, "pids", "pids.max") == "50"


def test_memory_and_swap_are_ordered_both_ways(sandbox):
    m = sandbox.manager()
    m.set({"memory": {"limit": 64 * MiB, "swap": 128 * MiB}})
    # Raising both past the current memory+swap: swap has to go first.
    m.set({"memory": {"limit": 512 * MiB, "swap": 1024 * MiB}})
    assert cgfile(m, "memory", "memory.memsw.limit_in_bytes") == str(1024 * MiB)
    # Lowering both below the current memory limit: memory has to go first.
    m.set({"memory": {"limit": 32 * MiB, "swap": 48 * MiB}})
    assert cgfile(m, "memory", "memory.limit_in_bytes") == str(32 * MiB)
    assert cgfile(m, "memory", "memory.memsw.limit_in_bytes") == str(48 * MiB)
    m.set({"memory": {"limit": -1}})
    assert int(cgfile(m, "memory", "memory.memsw.limit_in_bytes")) > 1 << 60


def test_devices_v1(sandbox):
    m = sandbox.manager()
    m.set({"devices": [{"allow": False, "access": "rwm"}]}, linux_devices=[])
    allowed = cgfile(m, "devices", "devices.list").splitlines()
    assert "c 1:3 rwm" in allowed and "a *:* rwm" not in allowed
    # /dev/kmsg (c 1:11) exists on every host and is not in the default allow list.
    proc = sandbox.spawn(m, "(: </dev/null); echo null=$?; (: </dev/kmsg) 2>/dev/null; echo kmsg=$?",
                         stdout=subprocess.PIPE)
    assert proc.stdout.read() == b"null=0\nkmsg=1\n"


def test_oom_kill_is_counted_and_reported_by_events(sandbox, store, register):
    m = sandbox.manager()
    m.set({"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})
    script = f"read go; exec {sys.executable} -c 'x = b\"a\" * (256 << 20)'"
    proc = subprocess.Popen(["/bin/busybox", "sh", "-c", script], stdin=subprocess.PIPE)
    sandbox.procs.append(proc)
    m.apply(proc.pid)
    register("oom", m, proc)
    driver = ("import sys, types; from ocirun.cgroups.commands import events; "
              "from ocirun.state import Store; events.main(sys.argv[1:], obj=types.SimpleNamespace("
              f"store=Store({store.root!r})))")
    events = subprocess.Popen([sys.executable, "-c", driver, "--interval", "1h", "oom"],
                              stdout=subprocess.PIPE, text=True)
    try:
        first = json.loads(events.stdout.readline())
        assert first["type"] == "stats" and first["id"] == "oom"
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        assert proc.wait() == -9
        lines = [json.loads(line) for line in events.stdout]
    finally:
        events.kill()
        events.wait()
    assert {"type": "oom", "id": "oom"} in lines
    assert m.oom_count() >= 1


def test_pids_limit_stops_a_fork_bomb(sandbox):
    m = sandbox.manager()
    m.set({"pids": {"limit": 8}})
    # The shell gives up when fork fails; the sleeps keep what they got.
    proc = sandbox.spawn(m, "for i in $(seq 30); do sleep 600 </dev/null >/dev/null 2>&1 & done",
                         stderr=subprocess.PIPE)
    assert b"fork" in proc.stderr.read()
    proc.wait()
    assert 0 < len(m.pids()) <= 8
    assert m.stats()["pids"]["limit"] == 8
    signal_all(m, 9)
    wait_for(lambda: not m.pids(), "the processes to die")


def test_kill_all_reaches_every_process(sandbox):
    m = sandbox.manager()
    proc = sandbox.spawn(m, "sleep 600 & sleep 600 & echo up; wait", stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"up\n"
    wait_for(lambda: len(m.pids()) == 3, "three processes")
    signal_all(m, 15)
    wait_for(lambda: not m.pids(), "every process to be gone")
    assert not m.is_frozen()


def test_kill_all_reaches_a_paused_container(sandbox):
    m = sandbox.manager()
    proc = sandbox.spawn(m, "sleep 600 & echo up; wait", stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"up\n"
    m.freeze()
    signal_all(m, 9)
    assert proc.wait() == -9
    wait_for(lambda: not m.pids(), "every process to be gone")


def test_update_changes_live_limits_and_the_stored_config(sandbox, store, register):
    m = sandbox.manager()
    m.set({"memory": {"limit": 256 * MiB}, "pids": {"limit": 100}})
    proc = sandbox.spawn(m, "sleep 600")
    register("upd", m, proc, resources={"memory": {"limit": 256 * MiB},
                                                         "pids": {"limit": 100}})
    result = invoke(store, commands.update, ["--memory", "64m", "--memory-swap", "128m",
                                             "--pids-limit", "20", "--cpu-quota", "20000",
                                             "--cpu-period", "100000", "--cpu-share", "256", "upd"])
    assert result.exit_code == 0, result.output
    assert cgfile(m, "memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert cgfile(m, "memory", "memory.memsw.limit_in_bytes") == str(128 * MiB)
    assert cgfile(m, "pids", "pids.max") == "20"
    assert cgfile(m, "cpu", "cpu.cfs_quota_us") == "20000"
    assert cgfile(m, "cpu", "cpu.shares") == "256"
    resources = store.load("upd").config["linux"]["resources"]
    assert resources["memory"] == {"limit": 64 * MiB, "swap": 128 * MiB}
    assert resources["pids"] == {"limit": 20}
    # containerd's way: a LinuxResources document on stdin.
    result = invoke(store, commands.update, ["-r", "-", "upd"],
                    input=json.dumps({"pids": {"limit": 30}, "cpu": {"quota": 30000}}))
    assert result.exit_code == 0, result.output
    assert cgfile(m, "pids", "pids.max") == "30"
    assert cgfile(m, "cpu", "cpu.cfs_quota_us") == "30000"
    assert store.load("upd").config["linux"]["resources"]["cpu"]["period"] == 100000


@pytest.mark.parametrize("args, field", [
    (["--cpu-quota", "500", "--cpu-period", "100000"], "linux.resources.cpu.quota"),
    (["--cpuset-cpus", "64"], "linux.resources.cpu.cpus"),
    (["--memory", "lots"], "--memory"),
])
def test_update_rejects_bad_values(sandbox, store, args, field, register):
    m = sandbox.manager()
    proc = sandbox.spawn(m, "sleep 600")
    register("bad", m, proc)
    result = invoke(store, commands.update, [*args, "bad"])
    assert result.exit_code != 0
    assert isinstance(result.exception, OciError) and field in str(result.exception)


def test_update_below_current_usage_is_refused(sandbox, store, register):
    m = sandbox.manager()
    script = f"exec {sys.executable} -c 'import sys, time; x = b\"a\" * (64 << 20); print(1, flush=True); time.sleep(600)'"
    proc = sandbox.spawn(m, script, stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"1\n"
    register("big", m, proc, resources={})
    result = invoke(store, commands.update, ["--memory", "8m", "big"])
    assert result.exit_code != 0
    assert str(result.exception).startswith("update: linux.resources.memory.limit: ")
    assert "already uses more memory" in str(result.exception)
    assert proc.poll() is None
    assert store.load("big").config["linux"]["resources"] == {}


def test_pause_stops_a_busy_loop_and_resume_restarts_it(sandbox, store, register):
    m = sandbox.manager()
    proc = sandbox.spawn(m, "while :; do :; done")
    state = register("busy", m, proc)

    def cpu_time():
        return int(cgfile(m, "cpuacct", "cpuacct.usage"))

    start = cpu_time()
    wait_for(lambda: cpu_time() > start, "the loop to use CPU")
    assert invoke(store, commands.pause, ["busy"]).exit_code == 0
    assert store.status(store.load("busy")) == "paused"
    frozen_at = cpu_time()
    time.sleep(0.3)
    assert cpu_time() == frozen_at
    result = invoke(store, commands.pause, ["busy"])
    assert result.exit_code != 0 and "not running" in str(result.exception)
    assert invoke(store, commands.resume, ["busy"]).exit_code == 0
    assert store.status(state) == "running"
    wait_for(lambda: cpu_time() > frozen_at, "the loop to run again")
    result = invoke(store, commands.resume, ["busy"])
    assert result.exit_code != 0 and "not paused" in str(result.exception)


def test_ps_and_events_stats(sandbox, store, register):
    m = sandbox.manager()
    m.set({"pids": {"limit": 10}})
    proc = sandbox.spawn(m, "sleep 600 & echo up; wait", stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"up\n"
    register("ps", m, proc)
    result = invoke(store, commands.ps, ["--format", "json", "ps"])
    pids = json.loads(result.output)
    assert proc.pid in pids and len(pids) == 2
    table = invoke(store, commands.ps, ["ps"]).output.splitlines()
    assert table[0].split()[:2] == ["UID", "PID"] and len(table) == 3
    assert any("sleep 600" in line for line in table[1:])
    event = json.loads(invoke(store, commands.events, ["--stats", "ps"]).output)
    assert event["type"] == "stats" and event["id"] == "ps"
    assert event["data"]["pids"] == {"current": 2, "limit": 10}
    assert event["data"]["memory"]["usage"]["usage"] > 0
    assert set(event["data"]) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}


def test_failed_set_then_destroy_leaves_nothing(sandbox):
    m = sandbox.manager()
    with pytest.raises(OciError, match=r"^config.json: linux.resources.cpu.cpus: .*this host has CPUs"):
        m.set({"cpu": {"cpus": "64"}})
    created = list(m.created)
    m.destroy()
    assert not any(os.path.exists(p) for p in created)


def test_destroy_removes_subcgroups_the_container_made(sandbox):
    m = sandbox.manager()
    inner = os.path.join(m.paths["memory"][1], "nested")
    os.mkdir(inner)
    again = manager_from_state(m.to_state())
    again.destroy()
    assert not os.path.exists(m.paths["memory"][1])
