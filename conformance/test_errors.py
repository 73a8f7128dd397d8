"""Configurations a runtime must refuse (runtime.md#create: "If the runtime
cannot apply a property as specified in the configuration, it MUST generate
an error and a new container MUST NOT be created"), plus the runc-compatible
console and state extras that engines depend on."""
import os
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from conformance import harness

spec = pytest.mark.spec


def refused(runtime, bundle, program_writes_marker=True):
    """create must fail and leave neither a container nor a cgroup behind."""
    if program_writes_marker:
        bundle.script("echo ran > /tmp/marker")
    bundle.write()
    res = runtime.create(bundle.id, bundle, check=False)
    assert not res.ok, "create succeeded"
    assert runtime.state(bundle.id) is None
    assert harness.existing_cgroup_dirs(bundle.id) == []
    assert bundle.result("marker") is None
    return res


@spec("runtime.md#create", "a config.json that is not valid JSON fails create")
def test_invalid_json(runtime, bundle):
    (bundle.dir / "config.json").write_text("{ not json")
    assert not runtime.create(bundle.id, bundle, check=False).ok
    assert runtime.state(bundle.id) is None
    assert harness.existing_cgroup_dirs(bundle.id) == []


@spec("runtime.md#create", "a missing root.path fails create")
def test_missing_rootfs(runtime, bundle):
    bundle.with_rootfs(bundle.dir / "no-such-rootfs")
    refused(runtime, bundle)


@spec("config-linux.md#namespaces", "a namespace type listed twice is an error")
def test_duplicate_namespace(runtime, bundle):
    bundle.config["linux"]["namespaces"].append({"type": "network"})
    refused(runtime, bundle)


@spec("config-linux.md#namespaces", "a namespace path of another namespace type is an error")
def test_namespace_path_wrong_type(runtime, bundle):
    ns = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "network"]
    bundle.config["linux"]["namespaces"] = ns + [{"type": "network", "path": "/proc/self/ns/uts"}]
    refused(runtime, bundle)


@spec("config-linux.md#namespaces", "an unknown namespace type is an error")
def test_unknown_namespace_type(runtime, bundle):
    bundle.config["linux"]["namespaces"].append({"type": "conf-bogus"})
    refused(runtime, bundle)


@spec("config.md#posix-process", "an unknown rlimit type is an error")
def test_unknown_rlimit(runtime, bundle):
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_CONF_BOGUS", "soft": 1, "hard": 1}]
    refused(runtime, bundle)


@spec("config-linux.md#seccomp", "an unknown seccomp action is an error")
def test_unknown_seccomp_action(runtime, bundle):
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_CONF_BOGUS"}]}
    refused(runtime, bundle)


@spec("runc-cli#create", "a sysctl that is not namespaced is refused", level="runc-compat")
def test_non_namespaced_sysctl(runtime, bundle):
    # The current host value, so a runtime that wrongly writes it changes nothing.
    current = Path("/proc/sys/kernel/panic").read_text().strip()
    bundle.config["linux"]["sysctl"] = {"kernel.panic": current}
    refused(runtime, bundle)


@spec("runc-cli#create", "a hostname without a new UTS namespace is refused", level="runc-compat")
def test_hostname_without_uts(runtime, bundle):
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] != "uts"]
    refused(runtime, bundle)


@spec("runc-cli#create", "an args[0] not found fails create with runc's "
      "'executable file not found in $PATH' wording", level="runc-compat")
def test_executable_not_found(runtime, bundle):
    bundle.config["process"]["args"] = ["conf-no-such-program"]
    res = refused(runtime, bundle, program_writes_marker=False)
    # runc's text log quotes the message, escaping its inner quotes.
    assert 'exec: "conf-no-such-program": executable file not found in $PATH' in res.stderr.replace('\\"', '"')


@spec("runc-cli#create", "process.cwd that does not exist is created", level="runc-compat")
def test_cwd_created(runtime, bundle, private_rootfs):
    bundle.with_rootfs(private_rootfs)
    bundle.config["root"]["readonly"] = False
    bundle.config["process"]["cwd"] = "/conf/work/dir"
    bundle.script("pwd > /tmp/cwd").write()
    runtime.create(bundle.id, bundle)
    runtime.start(bundle.id)
    assert runtime.wait_status(bundle.id, "stopped") == "stopped"
    assert bundle.result("cwd") == "/conf/work/dir\n"


@spec("runc-cli#state", "state also reports created (RFC 3339) and rootfs", level="runc-compat")
def test_state_runc_extras(runtime, bundle):
    bundle.write()
    runtime.create(bundle.id, bundle)
    st = runtime.state(bundle.id)
    assert "T" in st.get("created", "") and st["created"][:4].isdigit()
    assert os.path.realpath(st["rootfs"]) == os.path.realpath(bundle.config["root"]["path"])


# --- console -------------------------------------------------------------------

class ConsoleReceiver:
    """A --console-socket listener that keeps the pty master it is sent."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(harness.WAIT_LIMIT)
        self.master = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
            self.master = fds[0] if fds else None

    def read_all(self):
        """Everything the container writes to its terminal until it closes."""
        self.thread.join(harness.WAIT_LIMIT)
        assert self.master is not None, "no pty master was sent to the console socket"
        data = b""
        deadline = time.monotonic() + harness.WAIT_LIMIT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: every slave end is closed
                break
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace").replace("\r\n", "\n")

    def close(self):
        self.sock.close()
        if self.master is not None:
            os.close(self.master)


@pytest.fixture
def console(workdir):
    receiver = ConsoleReceiver(workdir / "console.sock")
    yield receiver
    receiver.close()


def run_on_terminal(runtime, bundle, console, script):
    bundle.config["process"]["terminal"] = True
    bundle.script(script).write()
    runtime.create(bundle.id, bundle, "--console-socket", console.path)
    runtime.start(bundle.id)
    out = console.read_all()
    assert runtime.wait_status(bundle.id, "stopped") == "stopped"
    return out


@spec("config.md#process", "process.terminal gives the process a terminal (sent over --console-socket)")
def test_terminal(runtime, bundle, console):
    out = run_on_terminal(runtime, bundle, console, "[ -t 0 ] && [ -t 1 ] && echo on-a-tty")
    assert "on-a-tty" in out


@spec("config.md#process", "process.consoleSize sets the terminal size")
def test_console_size(runtime, bundle, console):
    bundle.config["process"]["consoleSize"] = {"height": 33, "width": 111}
    out = run_on_terminal(runtime, bundle, console, "stty size")
    assert "33 111" in out
