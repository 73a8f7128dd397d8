"""Names and helpers shared by the engine tests and their fixtures."""
import errno
import fcntl
import os
import pathlib
import select
import subprocess
import termios
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
RUNTIMES = {
    "runc": "/usr/sbin/runc",
    # An absolute path: conmon and the shim do not search PATH the way a shell does.
    "ocirun": os.environ.get("OCIRUN_BIN", str(REPO / ".venv" / "bin" / "ocirun")),
}
CGROUP_PARENT = "ocirun-test-engines"
NAMESPACE = "ocirun-test-engines"
IMAGE = "localhost/ocirun-test/busybox:latest"
APP_IMAGE = "localhost/ocirun-test/busybox-app:latest"
# A command that keeps a container up until it is told otherwise.
SLEEPER = ["sh", "-c", "echo ready; while :; do sleep 0.1; done"]


def wait_for(predicate, what, attempts=300, delay=0.05):
    """Poll PREDICATE until it returns something true; engines settle asynchronously."""
    for _ in range(attempts):
        value = predicate()
        if value:
            return value
        time.sleep(delay)
    raise AssertionError("timed out waiting for " + what)


def run_in_pty(cmd, env, send=b"", timeout=60):
    """Run CMD with a real terminal as its stdin/stdout/stderr and controlling tty.

    SEND is typed once the program has written something (a shell's prompt),
    so it reaches the shell rather than a terminal still being set up. Returns
    (exit code, everything the program wrote to the terminal).
    """
    master, slave = os.openpty()

    def make_controlling_tty():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(cmd, env=env, stdin=slave, stdout=slave, stderr=slave,
                            preexec_fn=make_controlling_tty, close_fds=True)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    sent = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise
                    chunk = b""
                if not chunk:
                    break
                output += chunk
            if send and not sent and output:
                os.write(master, send)
                sent = True
            if proc.poll() is not None and not ready:
                break
        else:
            proc.kill()
            raise AssertionError(f"{cmd} did not finish; terminal so far: {output!r}")
        return proc.wait(timeout=timeout), output.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
