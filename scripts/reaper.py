"""Run a command as a child subreaper and reap every orphan until it exits.

Detached containers outlive the `ocirun create` that forked them. Their
orphans go to the nearest subreaper; on a machine whose PID 1 does not reap
(as in some VMs and containers), they would stay zombies. Engines are
subreapers themselves (conmon, containerd-shim); this stands in for one when
tests or benchmarks drive ocirun directly. Exits with the command's status.
"""

import ctypes
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def main() -> int:
    if len(sys.argv) < 2:
        sys.stderr.write("usage: reaper.py COMMAND [ARG...]\n")
        return 2
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    child = os.fork()
    if child == 0:
        os.execvp(sys.argv[1], sys.argv[1:])
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
