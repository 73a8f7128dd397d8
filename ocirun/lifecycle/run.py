"""run: create + start, and in the foreground, wait and pass on the exit code.

In the foreground we become a child subreaper before forking, so that init,
orphaned when stage1 exits, is re-parented to us and we can wait for it. The
container is deleted once its process has exited, as runc does.
"""

import os
import signal

from ..log import logger
from ..state import Store
from ..sys.libc import check, libc
from .create import create
from .delete import delete
from .start import start

PR_SET_CHILD_SUBREAPER = 36
# Signals the kernel itself sends to a terminal's foreground process group:
# when the container shares our terminal it receives them directly.
TTY_SIGNALS = {signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGWINCH}


def run(store: Store, container_id: str, bundle: str, *, detach: bool = False, **create_options) -> int:
    if detach:
        create(store, container_id, bundle, **create_options)
        _start_or_delete(store, container_id)
        return 0

    become_subreaper()
    shares_tty = not create_options.get("console_socket")
    state = create(store, container_id, bundle, share_caller_tty=shares_tty, **create_options)
    forwarded = forward_signals(state.pid, skip=TTY_SIGNALS if shares_tty else set())
    try:
        _start_or_delete(store, container_id)
        exit_code = wait_for(state.pid)
    finally:
        for sig, previous in forwarded.items():
            signal.signal(sig, previous)
    delete(store, container_id, force=True)
    return exit_code


def become_subreaper() -> None:
    """Orphaned descendants (init, once stage1 exits) are re-parented to us, so we can wait."""
    check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


def _start_or_delete(store: Store, container_id: str) -> None:
    try:
        start(store, container_id)
    except BaseException:
        delete(store, container_id, force=True)
        raise


def forward_signals(pid: int, skip: set) -> dict:
    """Pass the signals we receive on to pid; returns the handlers they replaced."""
    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    forwarded = {}
    # SIGPIPE and SIGCHLD concern our own pipes and children, not the container's.
    for sig in signal.valid_signals() - skip - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD,
                                                 signal.SIGPIPE}:
        try:
            forwarded[sig] = signal.signal(sig, forward)
        except (OSError, ValueError):
            continue
    return forwarded


def wait_for(init_pid: int) -> int:
    """Reap children until init exits; its exit code, or 128+N if signal N killed it."""
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            logger.warning(f"lost track of container init {init_pid}")
            return 255
        if pid == init_pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code
