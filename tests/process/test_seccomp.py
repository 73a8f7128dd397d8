"""linux.seccomp: the translation to libseccomp (no root needed), the exported BPF,
and the filter's effect in a forked child and in busybox."""

import errno
import json
import os
import socket
import tempfile

import pytest
from process_helpers import base_spec, run_in_child, status_field

from ocirun.container import seccomp
from ocirun.errors import ConfigError
from ocirun.sys import seccomp as libseccomp


def nr(name):
    return libseccomp.syscall_number(name)


def test_actions_and_errno_values():
    program = seccomp.translate({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                     {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                     {"names": ["rmdir"], "action": "SCMP_ACT_TRACE", "errnoRet": 3},
                     {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS"},
                     {"names": ["tkill"], "action": "SCMP_ACT_LOG"}]})
    assert program.default_action == 0x00050000 | 38
    assert program.rules == [(0x7FFF0000, nr("getpid"), []), (0x00050000 | errno.EPERM, nr("mkdir"), []),
                             (0x7FF00000 | 3, nr("rmdir"), []), (0x80000000, nr("kill"), []),
                             (0x7FFC0000, nr("tkill"), [])]


def test_unknown_action_names_the_field():
    with pytest.raises(ConfigError, match=r"^config.json: linux.seccomp.syscalls\[1\].action: unknown seccomp "
                                          r"action 'SCMP_ACT_BOGUS'"):
        seccomp.translate({"defaultAction": "SCMP_ACT_ALLOW",
                           "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
                                        {"names": ["getpid"], "action": "SCMP_ACT_BOGUS"}]})
    with pytest.raises(ConfigError, match=r"linux.seccomp.defaultAction: unknown"):
        seccomp.translate({"defaultAction": "SCMP_ACT_NOPE"})


@pytest.mark.parametrize("config, field", [
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "linux.seccomp.defaultAction"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.listenerPath"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}, r"linux.seccomp.architectures\[0\]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}, r"linux.seccomp.flags\[0\]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW",
                                                       "errnoRet": 1}]}, r"linux.seccomp.syscalls\[0\].action"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["dup"], "action": "SCMP_ACT_ALLOW",
                                                       "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     r"linux.seccomp.syscalls\[0\].args\[0\].index"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["dup"], "action": "SCMP_ACT_ALLOW",
                                                       "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]},
     r"linux.seccomp.syscalls\[0\].args\[0\].op"),
])
def test_bad_seccomp_configs_name_the_field(config, field):
    with pytest.raises(ConfigError, match=f"^config.json: {field}: "):
        seccomp.translate(config)


def test_unknown_syscalls_are_skipped_and_default_action_rules_dropped():
    program = seccomp.translate({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["no_such_syscall", "mkdir"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]})
    assert [(a, n) for a, n, _ in program.rules] == [(0x00050000 | errno.EPERM, nr("mkdir"))]


def test_conditions_on_one_argument_become_separate_rules():
    args_same = [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]
    args_diff = [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                 {"index": 1, "value": 0xFF, "valueTwo": 4, "op": "SCMP_CMP_MASKED_EQ"}]
    program = seccomp.translate({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["dup"], "action": "SCMP_ACT_ERRNO", "args": args_same},
        {"names": ["dup2"], "action": "SCMP_ACT_ERRNO", "args": args_diff}]})
    eperm = 0x00050000 | errno.EPERM
    assert program.rules == [(eperm, nr("dup"), [(0, 4, 1, 0)]), (eperm, nr("dup"), [(0, 4, 2, 0)]),
                             (eperm, nr("dup2"), [(0, 4, 1, 0), (1, 7, 0xFF, 4)])]


def test_architectures_and_flags():
    program = seccomp.translate({"defaultAction": "SCMP_ACT_ALLOW",
                                 "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                                 "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]})
    assert program.arch_tokens == [libseccomp.arch_token(a) for a in ("x86_64", "x86", "x32")]
    assert all(program.arch_tokens)
    assert (libseccomp.ATTR_CTL_NNP, 0) in program.attrs
    assert (libseccomp.ATTR_CTL_LOG, 1) in program.attrs and (libseccomp.ATTR_CTL_SSB, 1) in program.attrs


def _export(config) -> bytes:
    seccomp_filter = seccomp.build(seccomp.translate(config))
    try:
        with tempfile.TemporaryFile() as f:
            seccomp_filter.export_bpf(f.fileno())
            f.seek(0)
            return f.read()
    finally:
        seccomp_filter.release()


def test_exported_bpf_carries_the_errno_and_grows_with_rules():
    plain = _export({"defaultAction": "SCMP_ACT_ALLOW"})
    ruled = _export({"defaultAction": "SCMP_ACT_ALLOW",
                     "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0x4D2}]})
    assert len(plain) % 8 == 0 and len(ruled) > len(plain)
    # A BPF "ret" instruction returning SECCOMP_RET_ERRNO|0x4D2 is in the program.
    assert (0x000504D2).to_bytes(4, "little") in ruled
    assert (0x000504D2).to_bytes(4, "little") not in plain


def _in_forked_child(config, probe) -> int:
    """Load the filter in a child and return what probe() gave (an int < 256)."""
    seccomp_filter = seccomp.build(seccomp.translate(config))
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            os.sched_setaffinity  # noqa: B018 - imported before the filter may forbid anything
            from ocirun.sys import caps
            caps.set_no_new_privs()
            seccomp_filter.load()
            code = probe()
        finally:
            os._exit(code)
    seccomp_filter.release()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _errno_of(call):
    def probe():
        try:
            call()
        except OSError as e:
            return e.errno
        return 0
    return probe


def test_denied_syscall_returns_the_configured_errno_in_a_child():
    config = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV}]}
    assert _in_forked_child(config, _errno_of(lambda: os.mkdir("/nonexistent-dir/x"))) == errno.EXDEV


def test_argument_conditions_in_a_child():
    config = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.E2BIG,
                            "args": [{"index": 2, "value": os.SEEK_END, "op": "SCMP_CMP_EQ"}]}]}
    with tempfile.TemporaryFile() as f:
        assert _in_forked_child(config, _errno_of(lambda: os.lseek(f.fileno(), 0, os.SEEK_SET))) == 0
        assert _in_forked_child(config, _errno_of(lambda: os.lseek(f.fileno(), 0, os.SEEK_END))) == errno.E2BIG


def test_default_errno_ret_in_a_child():
    config = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOTSUP,
              "syscalls": [{"names": ["exit", "exit_group", "getpid"], "action": "SCMP_ACT_ALLOW"}]}
    assert _in_forked_child(config, _errno_of(lambda: os.rmdir("/nonexistent"))) == errno.ENOTSUP


def test_busybox_under_a_filter_with_no_new_privileges():
    spec = base_spec(["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; mkdir /tmp/x; echo rc=$?"],
                     noNewPrivileges=True)
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                              "errnoRet": errno.EROFS}]}
    code, out = run_in_child(spec)
    assert code == 0, out
    assert status_field(out, "Seccomp") == "2"
    assert status_field(out, "NoNewPrivs") == "1"
    assert "Read-only file system" in out and "rc=1" in out, out


def test_filter_without_no_new_privileges_is_loaded_before_dropping_caps():
    caps = ["CAP_CHOWN"]
    spec = base_spec(["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status"],
                     user={"uid": 1000, "gid": 1000},
                     capabilities={"bounding": caps, "effective": caps, "permitted": caps})
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    code, out = run_in_child(spec)
    assert code == 0, out
    assert status_field(out, "Seccomp") == "2"
    assert status_field(out, "NoNewPrivs") == "0"
    assert int(status_field(out, "CapEff"), 16) == 0


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_listener_gets_the_notify_fd_and_the_state(tmp_path, no_new_privileges):
    path = str(tmp_path / "agent.sock")
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    agent.bind(path)
    agent.listen(1)
    spec = base_spec(["true"], noNewPrivileges=no_new_privileges)
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                                "listenerMetadata": "hello-agent",
                                "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    state = {"ociVersion": "1.0.2", "id": "process-notify", "status": "creating", "pid": 4242,
             "bundle": "/b", "annotations": {}}
    try:
        code, out = run_in_child(spec, listener_state=state)
        conn, _ = agent.accept()
        with conn:
            message, fds, _, _ = socket.recv_fds(conn, 65536, 4)
        assert code == 0, out
        for fd in fds:
            assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:seccomp notify"
            os.close(fd)
        assert len(fds) == 1
        decoded = json.loads(message)
        assert decoded["fds"] == ["seccompFd"] and decoded["pid"] == 4242
        assert decoded["metadata"] == "hello-agent" and decoded["state"]["id"] == "process-notify"
    finally:
        agent.close()


def test_listener_path_that_nobody_listens_on_is_a_config_error(tmp_path):
    from ocirun.container import process
    spec = base_spec(["true"])
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "none.sock"),
                                "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    with pytest.raises(ConfigError, match="^config.json: linux.seccomp.listenerPath: cannot connect"):
        process.prepare(spec)


@pytest.mark.parametrize("entry", [{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4095},
                                   {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                                       {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": -1}]}])
def test_errno_values_libseccomp_refuses_are_config_errors(entry):
    with pytest.raises(ConfigError, match="must be an integer from 0 to 4094"):
        seccomp.translate(entry)
