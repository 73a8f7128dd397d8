"""Pieces several operations share: waiting for init to go, tearing a container down."""

import os
import signal
import time

from ..errors import OciError
from ..log import logger
from ..state import ContainerState, Store, process_start_time


def wait_gone(pid: int, start_time: int, timeout: float = 10.0) -> bool:
    """Wait until pid (started at start_time) has exited; reap it if it is our child."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        if process_start_time(pid) != start_time:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def kill_init(state: ContainerState, sig: int = signal.SIGKILL) -> None:
    if state.pid and process_start_time(state.pid) == state.pid_start:
        try:
            os.kill(state.pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL and not wait_gone(state.pid, state.pid_start):
            raise OciError(f"container {state.id}: init {state.pid} did not exit after SIGKILL")


def load_manager(state: ContainerState):
    if not state.cgroup:
        return None
    from ..cgroups import manager_from_state
    return manager_from_state(state.cgroup)


def teardown(store: Store, state: ContainerState, run_poststop: bool = True) -> None:
    """Kill what is left of a container, remove its cgroup, run poststop, forget it.

    Every process in the cgroup is killed, not only init: without a pid
    namespace, init's children would otherwise outlive the container.
    """
    manager = load_manager(state)
    if manager is not None:
        from ..cgroups import signal_all
        if manager.pids():
            signal_all(manager, signal.SIGKILL)
    kill_init(state)
    if manager is not None:
        deadline = time.monotonic() + 10
        while manager.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        manager.destroy()
    if run_poststop:
        from ..hooks import run_hooks
        run_hooks(state.config, "poststop", state.spec_state("stopped"), warn=logger.warning)
    store.remove(state.id)
