"""process.prepare's validation and the order of the steps, with the syscalls recorded (no root needed)."""

import errno
import os

import pytest
from process_helpers import Recorder, base_spec

from ocirun.container import capabilities, process
from ocirun.errors import ConfigError, ExecutableNotFound, PermissionDeniedExec
from ocirun.sys import proc as sysproc


def test_all_41_capabilities_are_known():
    assert len(capabilities.CAPABILITIES) == 41
    assert sorted(capabilities.CAPABILITIES.values()) == list(range(41))
    for name in ("CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE", "CAP_AUDIT_READ"):
        assert name in capabilities.CAPABILITIES


def test_capability_masks_skip_unknown_and_unavailable_names(capsys):
    masks = capabilities.parse({"bounding": ["CAP_CHOWN", "CAP_NOT_A_CAP", "CAP_CHECKPOINT_RESTORE"],
                                "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]}, last_cap=39)
    assert masks.bounding == 1 and masks.effective == 1 and masks.permitted == 1
    assert masks.inheritable == 0 and masks.ambient == 0
    err = capsys.readouterr().err
    assert "process.capabilities.bounding" in err and "CAP_NOT_A_CAP" in err and "CAP_CHECKPOINT_RESTORE" in err


def test_ambient_needs_permitted_and_inheritable(capsys):
    masks = capabilities.parse({"permitted": ["CAP_KILL", "CAP_CHOWN"], "inheritable": ["CAP_KILL"],
                                "ambient": ["CAP_KILL", "CAP_CHOWN"]}, last_cap=40)
    assert masks.ambient == 1 << 5
    assert "CAP_CHOWN" in capsys.readouterr().err


def test_effective_beyond_permitted_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^config.json: process.capabilities.effective: \['CAP_KILL'\]"):
        capabilities.parse({"effective": ["CAP_KILL"], "permitted": []}, last_cap=40)


def test_missing_capabilities_leave_them_untouched():
    assert capabilities.parse(None, 40) is None


def test_rlimit_table_and_values():
    plan = process.prepare(base_spec(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
                                              {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]))
    assert plan.rlimits == [(7, 100, 200), (4, 0, 0)]
    assert process.RLIMITS["RLIMIT_RTTIME"] == 15 and len(process.RLIMITS) == 16


def test_rlimit_above_the_hard_limit_without_cap_sys_resource():
    _, hard = sysproc.getrlimit(process.RLIMITS["RLIMIT_NOFILE"])
    # The test runner has CAP_SYS_RESOURCE neither in its bounding set nor (hence) in its effective set.
    with pytest.raises(ConfigError, match=r"^config.json: process.rlimits\[1\]: RLIMIT_NOFILE hard limit .* "
                                          r"CAP_SYS_RESOURCE.*lower soft and hard to at most " + str(hard)):
        process.prepare(base_spec(rlimits=[{"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                                           {"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard + 1}]))


@pytest.mark.parametrize("changes, field", [
    ({"rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]}, r"process.rlimits\[0\].type"),
    ({"rlimits": [{"type": "RLIMIT_CORE", "soft": 2, "hard": 1}]}, r"process.rlimits\[0\]"),
    ({"rlimits": [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}] * 2}, r"process.rlimits\[1\].type"),
    ({"env": ["NOEQUALS"]}, r"process.env\[0\]"),
    ({"args": []}, "process.args"),
    ({"cwd": "relative"}, "process.cwd"),
    ({"user": {"uid": -1}}, "process.user.uid"),
    ({"user": {"uid": 0, "gid": 0, "umask": 0o1777}}, "process.user.umask"),
    ({"oomScoreAdj": 1001}, "process.oomScoreAdj"),
    ({"ioPriority": {"class": "IOPRIO_CLASS_FAST", "priority": 0}}, "process.ioPriority.class"),
    ({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}, "process.ioPriority.priority"),
    ({"scheduler": {"policy": "SCHED_FAST"}}, "process.scheduler.policy"),
    ({"scheduler": {"policy": "SCHED_FIFO", "priority": 0}}, "process.scheduler.priority"),
    ({"scheduler": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_X"]}}, r"process.scheduler.flags\[0\]"),
    ({"apparmorProfile": "docker-default"}, "process.apparmorProfile"),
    ({"selinuxLabel": "system_u:system_r:container_t:s0"}, "process.selinuxLabel"),
])
def test_bad_process_settings_name_the_field(changes, field):
    # This host has neither AppArmor nor SELinux enabled, so asking for them is an error.
    with pytest.raises(ConfigError, match=f"^config.json: {field}: "):
        process.prepare(base_spec(**changes))


def test_personality():
    spec = base_spec()
    spec["linux"]["personality"] = {"domain": "LINUX32"}
    assert process.prepare(spec).personality == 0x0008
    spec["linux"]["personality"] = {"domain": "SVR4"}
    with pytest.raises(ConfigError, match="^config.json: linux.personality.domain: "):
        process.prepare(spec)
    spec["linux"]["personality"] = {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}
    with pytest.raises(ConfigError, match="^config.json: linux.personality.flags: "):
        process.prepare(spec)


def test_env_later_duplicate_wins_and_exec_takes_its_own_process():
    spec = base_spec(env=["A=1", "A=2", "B=x=y"])
    assert process.prepare(spec).env == {"A": "2", "B": "x=y"}
    exec_process = {"args": ["ls"], "cwd": "/tmp", "env": ["C=3"]}
    plan = process.prepare(spec, exec_process)
    assert plan.args == ["ls"] and plan.cwd == "/tmp" and plan.env == {"C": "3"}


def test_apply_early_order_and_values(monkeypatch):
    spec = base_spec(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}], oomScoreAdj=100,
                     ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 3},
                     scheduler={"policy": "SCHED_RR", "priority": 5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
                     user={"uid": 5, "gid": 5, "umask": 0o077})
    spec["linux"]["personality"] = {"domain": "LINUX"}
    plan = process.prepare(spec)
    rec = Recorder(files={"/etc/passwd": "root:x:0:0::/root:/bin/sh\nfive:x:5:5::/home/five:/bin/sh\n"})
    monkeypatch.setattr(process, "_open_cwd", lambda cwd: -1)  # the real one needs a rootfs
    process.apply_early(plan, rec)
    assert rec.calls == [("setrlimit", 7, 10, 20), ("write_proc", "/proc/self/oom_score_adj", "100"),
                         ("ioprio_set", 2, 3), ("sched_setattr", 2, 1, 0, 5, 0, 0, 0),
                         ("personality", 0), ("umask", 0o077)]
    assert plan.env["HOME"] == "/home/five"


def test_oom_score_lowering_refused_says_why():
    plan = process.prepare(base_spec(oomScoreAdj=-500))
    rec = Recorder(fail={"write_proc": PermissionError(errno.EACCES, "Permission denied")})
    with pytest.raises(ConfigError, match="^config.json: process.oomScoreAdj: cannot set -500: .*CAP_SYS_RESOURCE"):
        process.apply_early(plan, rec)


def test_switch_user_order(monkeypatch):
    caps = ["CAP_CHOWN", "CAP_KILL"]
    plan = process.prepare(base_spec(user={"uid": 1000, "gid": 100, "additionalGids": [7]},
                                     noNewPrivileges=True,
                                     capabilities={"bounding": caps, "effective": caps, "permitted": caps,
                                                   "inheritable": caps, "ambient": ["CAP_KILL"]}))
    plan.cwd_fd = 99
    rec = Recorder(files={"/proc/self/setgroups": "allow\n"})
    closed = []
    monkeypatch.setattr(process.os, "close", closed.append)
    process.switch_user(plan, sys=rec)
    monkeypatch.undo()
    names = rec.names()
    assert names[0] == "fchdir"  # entered as root first
    drops = [c[1] for c in rec.calls if c[0] == "bounding_drop"]
    assert 0 not in drops and 5 not in drops and len(drops) == 39
    after_drops = [n for n in names if n not in ("bounding_drop", "fchdir")]
    assert after_drops == ["set_keepcaps", "setgroups", "setresgid", "setresuid", "set_keepcaps",
                           "capset", "ambient_clear", "ambient_raise", "set_no_new_privs"]
    assert ("setgroups", [7]) in rec.calls and ("setresuid", 1000, 1000, 1000) in rec.calls
    assert ("capset", 0b100001, 0b100001, 0b100001) in rec.calls and ("ambient_raise", 5) in rec.calls
    assert closed == [99] and plan.cwd_fd == -1


def test_setgroups_denied_in_user_namespace_is_skipped_when_nothing_is_asked():
    plan = process.prepare(base_spec())
    rec = Recorder(files={"/proc/self/setgroups": "deny\n"})
    process.switch_user(plan, sys=rec)
    assert "setgroups" not in rec.names()


def test_cwd_outside_the_root_is_refused():
    plan = process.prepare(base_spec())
    plan.cwd_fd = 3
    rec = Recorder()
    rec.getcwd = lambda: (_ for _ in ()).throw(FileNotFoundError(errno.ENOENT, "unreachable"))
    with pytest.raises(process.OciError, match="outside of the container's root; possible container breakout"):
        process.switch_user(plan, sys=rec)


def test_executable_lookup(tmp_path):
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    data = tmp_path / "bin" / "data"
    data.write_text("x")
    plan = process.prepare(base_spec(["tool"], env=[f"PATH=/nonexistent:{tmp_path}/bin"]))
    assert process.resolve_executable(plan) == str(tool)
    plan.args = ["data"]
    with pytest.raises(ExecutableNotFound):
        process.resolve_executable(plan)
    plan.args = [str(data)]
    with pytest.raises(PermissionDeniedExec):
        process.resolve_executable(plan)
    plan.args = [str(tmp_path / "bin")]
    with pytest.raises(PermissionDeniedExec):
        process.resolve_executable(plan)
    plan.env = {}
    plan.args = ["tool"]
    with pytest.raises(ExecutableNotFound, match=r'exec: "tool": executable file not found in \$PATH'):
        process.resolve_executable(plan)


def test_make_non_dumpable():
    import prctl
    pid = os.fork()
    if pid == 0:
        process.make_non_dumpable()
        os._exit(0 if prctl.get_dumpable() == 0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
